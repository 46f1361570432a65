import threading

import numpy as np
import pytest
from PIL import Image

from media_pipeline.embedder import ClipEmbedder, ModelUnavailable, check_model_config, get_embedder


def test_tiny_model_loads_from_a_directory_with_from_pretrained(settings, tiny_model):
    settings.CLIP_MODEL = str(tiny_model)
    embedder = get_embedder()
    assert embedder is get_embedder()  # once per process
    assert embedder.model_name == "clip-tiny"
    images = embedder.embed_images([Image.new("RGB", (300, 200), c) for c in ("red", "blue", "red")])
    texts = embedder.embed_texts(["red suede sneaker", "a mug"])
    assert images.shape == (3, 512) and texts.shape == (2, 512)
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    assert np.allclose(images[0], images[2], atol=1e-5) and not np.allclose(images[0], images[1])


def test_a_hub_id_goes_through_the_same_loader(settings):
    # Offline (as here), the same from_pretrained call names what it could not load.
    with pytest.raises(ModelUnavailable, match="openai/clip-vit-base-patch32"):
        ClipEmbedder("openai/clip-vit-base-patch32")


def test_batches_give_the_same_vectors_as_single_images(tiny_model):
    embedder = ClipEmbedder(str(tiny_model), batch_size=2)
    images = [Image.new("RGB", (64 + i, 48), (i * 40, 90, 200 - i * 30)) for i in range(5)]
    batched = embedder.embed_images(images)
    single = np.concatenate([embedder.embed_images([image]) for image in images])
    assert np.allclose(batched, single, atol=1e-5)


def test_preprocessing_matches_the_clip_processor(tiny_model):
    from transformers import AutoProcessor

    embedder = ClipEmbedder(str(tiny_model))
    processor = AutoProcessor.from_pretrained(str(tiny_model))
    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (333, 517, 3), dtype=np.uint8))
    expected = processor.image_processor(images=image, return_tensors="np")["pixel_values"][0]
    assert np.abs(embedder.preprocess(image) - expected).max() < 1e-4


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precisions_stay_close_to_fp32(tiny_model, precision):
    images = [
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (240, 320, 3), dtype=np.uint8)) for i in range(4)
    ]
    reference = ClipEmbedder(str(tiny_model), "fp32").embed_images(images)
    reduced = ClipEmbedder(str(tiny_model), precision).embed_images(images)
    cosines = np.sum(reference * reduced, axis=1)
    assert cosines.min() > 0.95


def test_projection_size_mismatch_is_a_clear_error(tmp_path):
    from transformers import CLIPConfig

    CLIPConfig(projection_dim=256).save_pretrained(tmp_path)
    with pytest.raises(ModelUnavailable, match=r"projects to 256 dimensions.*vector\(512\)"):
        check_model_config(str(tmp_path))


def test_unknown_precision_is_refused(tiny_model):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="CLIP_PRECISION"):
        ClipEmbedder(str(tiny_model), "fp8")


def test_build_clip_model_command(tmp_path):
    from io import StringIO

    from django.core.management import call_command
    from transformers import AutoTokenizer

    call_command("build_clip_model", str(tmp_path / "m"), "--size", "tiny", stdout=StringIO())
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "m"))
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("Red suede sneaker!")["input_ids"])
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"
    assert "sneaker</w>" in tokens  # learnt merges, CLIP's end-of-word mark
    assert tokenizer("emoji 👟 and 日本")["input_ids"]  # byte-level: nothing is unknown
    assert check_model_config(str(tmp_path / "m")) == 512


def test_web_process_preloads_the_model_when_asked(tiny_model):
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import config.wsgi, media_pipeline.embedder as e; "
        "print('loaded' if e._embedder is not None else 'lazy', e._embedder and e._embedder[1].model_name)"
    )
    env = {**os.environ, "CLIP_MODEL": str(tiny_model), "DJANGO_SETTINGS_MODULE": "config.settings"}
    root = Path(__file__).resolve().parent.parent

    def run(preload: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            env={**env, "SEARCH_PRELOAD": preload},
            capture_output=True,
            text=True,
            timeout=120,
        )
        return result.stdout.strip() or result.stderr

    assert run("1") == "loaded clip-tiny"
    assert run("0").startswith("lazy")


def test_an_extreme_strip_is_cut_before_resizing(tiny_model):
    embedder = ClipEmbedder(str(tiny_model))
    assert embedder.preprocess.resized_size(12000, 1) == (896, 224)
    pixels = embedder.preprocess(Image.new("RGB", (12000, 1), "red"))
    assert pixels.shape == (3, 224, 224)


def test_torch_work_runs_on_one_thread_whichever_thread_asks(clip):
    """Forward passes from many threads (a threaded web server) all run on the
    process's one torch thread, with the same results as from this thread."""
    from concurrent.futures import ThreadPoolExecutor

    from media_pipeline.embedder import on_torch_thread

    expected = clip.embed_texts(["red boot"])[0]
    with ThreadPoolExecutor(4) as pool:
        names = set(pool.map(lambda _: on_torch_thread(lambda: threading.current_thread().name), range(8)))
        vectors = list(pool.map(lambda _: clip.embed_texts(["red boot"])[0], range(8)))
    assert len(names) == 1 and names.pop().startswith("torch")
    assert all(np.allclose(vector, expected, atol=1e-6) for vector in vectors)
