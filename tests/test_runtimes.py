"""The runtimes CLIP runs on (media_pipeline/runtimes.py), the ONNX export
they read (media_pipeline/onnx_export.py) and what each machine gets."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from media_pipeline.embedder import ClipEmbedder, ModelUnavailable
from media_pipeline.onnx_export import ensure_exported
from media_pipeline.runtimes import Backend, choose

ROOT = Path(__file__).resolve().parent.parent
AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512_VNNI = AVX2 | {"avx512f", "avx512_vnni", "avx512_bf16"}
AMX = AVX512_VNNI | {"amx_int8", "amx_bf16", "amx_tile"}
TEXTS = ["red suede sneaker", "a", "A MUCH longer query, with punctuation: boots & laces " * 12, "emoji 👟 日本"]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    return [Image.fromarray(rng.integers(0, 255, (180 + 20 * i, 240, 3), dtype=np.uint8)) for i in range(5)]


def _everything(available: str = "torch onnxruntime openvino"):
    return lambda runtime: runtime in available.split()


@pytest.mark.parametrize(
    "flags, expected",
    [
        (AVX2, Backend("onnxruntime", "int8")),
        (AVX512_VNNI, Backend("torch", "int8")),
        (AMX, Backend("torch", "int8")),
        (frozenset(), Backend("onnxruntime", "int8")),  # less than AVX2: the nearest order
    ],
)
def test_each_cpu_gets_its_documented_default(flags, expected):
    assert choose(flags=flags, has_cuda=False, available=_everything()) == expected


def test_what_is_set_narrows_the_choice_and_what_is_missing_is_skipped():
    assert choose(precision="fp32", flags=AVX2, has_cuda=False, available=_everything()) == Backend(
        "onnxruntime", "fp32"
    )
    assert choose(runtime="openvino", flags=AVX2, has_cuda=False, available=_everything()) == Backend(
        "openvino", "fp32"
    )
    assert choose(runtime="torch", flags=AVX2, has_cuda=False, available=_everything()) == Backend("torch", "int8")
    # Without ONNX Runtime installed, an AVX2 machine takes the next it has.
    assert choose(flags=AVX2, has_cuda=False, available=_everything("torch")) == Backend("torch", "int8")
    assert choose("torch", "bf16", "cpu", flags=AVX2, available=_everything()) == Backend("torch", "bf16")


def test_a_gpu_runs_torch_at_half_precision():
    assert choose(flags=AVX2, has_cuda=True, available=_everything()) == Backend("torch", "fp16", "cuda")
    assert choose(precision="bf16", has_cuda=True, available=_everything()) == Backend("torch", "bf16", "cuda")
    assert choose(device="cpu", flags=AVX2, has_cuda=True, available=_everything()).device == "cpu"
    # What only the CPU runs keeps to it on a machine with a GPU.
    assert choose(runtime="onnxruntime", flags=AVX2, has_cuda=True, available=_everything()) == Backend(
        "onnxruntime", "int8"
    )
    assert choose(precision="int8", flags=AVX512_VNNI, has_cuda=True, available=_everything()) == Backend(
        "torch", "int8"
    )


@pytest.mark.parametrize(
    "settings_, message",
    [
        ({"runtime": "tensorrt"}, "CLIP_RUNTIME must be auto or one of torch, onnxruntime, openvino"),
        ({"precision": "fp8"}, "CLIP_PRECISION must be auto or one of"),
        ({"device": "tpu"}, "CLIP_DEVICE must be auto or one of cpu, cuda"),
        ({"device": "cuda"}, "CLIP_DEVICE=cuda, but torch sees no CUDA device here"),
        ({"runtime": "onnxruntime", "precision": "bf16"}, "CLIP_RUNTIME=onnxruntime runs fp32, int8 on cpu"),
        ({"precision": "fp16"}, "no runtime runs CLIP_PRECISION=fp16 on cpu"),
        ({"runtime": "openvino", "precision": "fp32"}, "openvino is not installed"),
    ],
)
def test_settings_no_machine_can_run_are_clear_errors(settings_, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        choose(**settings_, flags=AVX2, has_cuda=False, available=_everything("torch onnxruntime"))


def test_an_unknown_runtime_in_the_environment_stops_the_process_at_start_up():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "CLIP_RUNTIME": "tensorrt"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "CLIP_RUNTIME must be one of" in result.stderr


@pytest.mark.parametrize(
    "runtime, precision, floor",
    [
        ("onnxruntime", "fp32", 0.9999),
        ("onnxruntime", "int8", 0.99),
        ("openvino", "fp32", 0.9999),
        ("torch", "int8", 0.99),
    ],
)
def test_every_runtime_gives_torch_fp32_vectors(tiny_model, runtime, precision, floor):
    reference = ClipEmbedder(str(tiny_model), "fp32", batch_size=3, runtime="torch")
    other = ClipEmbedder(str(tiny_model), precision, batch_size=3, runtime=runtime)
    images, texts = _images(), TEXTS  # batches of 3: the texts pad to different lengths
    for theirs, ours in (
        (reference.embed_images(images), other.embed_images(images)),
        (reference.embed_texts(texts), other.embed_texts(texts)),
    ):
        assert ours.shape == theirs.shape
        assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-4)
        assert np.sum(ours * theirs, axis=1).min() > floor


def test_the_tokenizer_matches_transformers(tiny_model):
    from transformers import AutoTokenizer

    expected = AutoTokenizer.from_pretrained(str(tiny_model))(
        TEXTS, padding=True, truncation=True, max_length=77, return_tensors="np"
    )
    for runtime in ("torch", "onnxruntime"):
        ids, mask = ClipEmbedder(str(tiny_model), "fp32", runtime=runtime).tokenize(TEXTS)
        assert ids.shape[1] == 77  # the long text is cut to the model's length
        assert np.array_equal(ids, expected["input_ids"]) and np.array_equal(mask, expected["attention_mask"])


def test_an_onnx_runtime_loads_only_the_towers_it_uses(tiny_model):
    embedder = ClipEmbedder(str(tiny_model), "int8", runtime="onnxruntime")
    embedder.embed_images(_images()[:1])
    assert embedder.towers.loaded == ["vision"]
    embedder.embed_texts(["a mug"])
    assert sorted(embedder.towers.loaded) == ["text", "vision"]


def test_a_web_process_on_onnx_runtime_never_imports_torch(tiny_model):
    code = (
        "import sys, config.wsgi, media_pipeline.embedder as e; "
        "e.get_embedder().embed_texts(['a mug']); "
        "print(e.get_embedder().backend, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CLIP_MODEL": str(tiny_model),
        "CLIP_RUNTIME": "onnxruntime",
        "CLIP_PRECISION": "int8",
        "SEARCH_PRELOAD": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "onnxruntime int8 on cpu False False", result.stderr[-2000:]


@pytest.fixture
def model_copy(tmp_path, tiny_model) -> Path:
    """A model of its own, so that its export can be changed and broken."""
    copy = tmp_path / "clip-copy"
    shutil.copytree(tiny_model, copy, ignore=shutil.ignore_patterns("onnx"))
    return copy


def test_the_export_is_made_once_and_again_when_the_model_changes(model_copy):
    directory = ensure_exported(str(model_copy))
    assert directory == model_copy / "onnx"
    made = (directory / "vision-fp32.onnx").stat().st_mtime_ns
    assert ensure_exported(str(model_copy)) == directory
    assert (directory / "vision-fp32.onnx").stat().st_mtime_ns == made  # cached: not made again
    weights = model_copy / "model.safetensors"
    os.utime(weights, ns=(made + 10**9, made + 10**9))  # new weights written in place
    ensure_exported(str(model_copy))
    assert (directory / "vision-fp32.onnx").stat().st_mtime_ns != made
    assert not list(directory.glob(".*.partial"))


def test_an_export_that_fails_says_why_and_is_not_tried_again_for_the_same_files(model_copy, monkeypatch):
    from media_pipeline import onnx_export

    (model_copy / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ModelUnavailable, match=r"the ONNX export of .* failed"):
        ClipEmbedder(str(model_copy), "fp32", runtime="onnxruntime")
    assert not (model_copy / "onnx" / "manifest.json").exists()

    def no_second_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export.subprocess, "run", no_second_export)
    with pytest.raises(ModelUnavailable, match=r"the ONNX export of .* failed"):
        ClipEmbedder(str(model_copy), "fp32", runtime="onnxruntime")  # a health probe asks again: at once


def test_the_export_goes_where_clip_export_dir_says_and_the_model_stays_as_it_was(model_copy, tmp_path, settings):
    settings.CLIP_EXPORT_DIR = str(tmp_path / "exports")
    embedder = ClipEmbedder(str(model_copy), "int8", runtime="onnxruntime")
    assert embedder.embed_texts(["a mug"]).shape == (1, 512)
    [directory] = (tmp_path / "exports").iterdir()
    assert directory.name.startswith("clip-copy-") and (directory / "manifest.json").exists()
    assert not (model_copy / "onnx").exists()


def test_a_read_only_model_directory_is_exported_into_the_users_cache(model_copy, tmp_path, monkeypatch):
    from media_pipeline import onnx_export

    monkeypatch.setattr(onnx_export.os, "access", lambda path, mode: False)  # as a read-only mount answers
    monkeypatch.setenv("HOME", str(tmp_path))
    directory = onnx_export.export_directory(model_copy)
    assert directory.parent == tmp_path / ".cache" / "stockmind" / "clip-exports"
    assert directory != onnx_export.export_directory(model_copy.parent / "another" / model_copy.name)
