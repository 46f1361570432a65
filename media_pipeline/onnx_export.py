"""ONNX exports of CLIP's two towers, made on first load and cached beside the
model, for the runtimes that read ONNX (media_pipeline/runtimes.py).

The model is still loaded with `from_pretrained` on a hub id or a directory;
the export traces it once into `<model directory>/onnx/` (for a hub id, the
snapshot directory the hub's cache holds it in; for a directory that cannot
be written, or with CLIP_EXPORT_DIR set, a directory of its own elsewhere:
export_directory):

- `vision-fp32.onnx`: pixel values (n, 3, H, W) -> image embeddings (n, 512);
- `text-fp32.onnx`: input ids and attention mask (n, tokens) -> text embeddings;
- `vision-int8.onnx`, `text-int8.onnx`: the same with ONNX Runtime's dynamic
  quantization of the MatMul weights;
- `tokenizer.json` and `clip.json`: the model's tokenizer and what its
  processor and config say (the image preprocessing, the text length, the
  projection size), so that a process running the export needs neither
  torch nor transformers (each costs about 150 MiB resident);
- `manifest.json`: what the export was made from; when the model's files
  change, the next load exports again.

The export runs in a process of its own (`python -m media_pipeline.onnx_export
SOURCE`): the process that serves then never holds the fp32 torch model, only
the towers it runs. A lock file keeps two processes that start together from
exporting twice; each file is written under a temporary name and renamed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

EXPORT_VERSION = 1
OPSET = 17
TOWERS = ("vision", "text")
EXPORT_PRECISIONS = ("fp32", "int8")
EXPORT_TIMEOUT_S = 900
DIRECTORY_NAME = "onnx"
TOKENIZER_FILE = "tokenizer.json"
DESCRIPTION_FILE = "clip.json"
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".json")


class ExportFailed(RuntimeError):
    """The ONNX export of a model could not be made."""


def model_directory(source: str) -> Path:
    """The directory holding the model's files: `source` itself, or for a hub
    id the snapshot in the hub's local cache (no download: offline, a model
    not in the cache is an OSError)."""
    path = Path(source)
    if path.is_dir():
        return path
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, "config.json")
    if isinstance(cached, str):
        return Path(cached).parent
    # Not in the cache: the hub's own loader fetches it where it can, or says why not.
    from transformers.utils import cached_file

    config = cached_file(source, "config.json")
    if config is None:
        raise OSError(f"{source!r} is not in the local model cache")
    return Path(config).parent


def export_directory(model_dir: Path, export_root: str = "") -> Path:
    """Where `model_dir`'s export goes: beside it, in `onnx/`, unless
    `export_root` is set (CLIP_EXPORT_DIR) or the model's directory cannot be
    written (a read-only mount); then a directory of its own under
    `export_root`, or under ~/.cache/stockmind/clip-exports, named by the
    model's directory."""
    beside = model_dir / DIRECTORY_NAME
    if not export_root and (os.access(model_dir, os.W_OK) or _current(beside, model_dir)):
        return beside
    root = Path(export_root) if export_root else Path.home() / ".cache" / "stockmind" / "clip-exports"
    digest = hashlib.sha256(str(model_dir.resolve()).encode()).hexdigest()[:12]
    return root / f"{model_dir.name}-{digest}"


def tower_path(directory: Path, tower: str, precision: str) -> Path:
    return directory / f"{tower}-{precision}.onnx"


def _fingerprint(model_dir: Path) -> dict:
    """What the export is made from: the model's files by name, size and time."""
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and p.suffix in MODEL_FILE_SUFFIXES)
    return {
        "version": EXPORT_VERSION,
        "opset": OPSET,
        "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files],
    }


def _current(directory: Path, model_dir: Path) -> bool:
    manifest = directory / "manifest.json"
    try:
        recorded = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    files = [tower_path(directory, tower, precision) for tower in TOWERS for precision in EXPORT_PRECISIONS]
    files += [directory / TOKENIZER_FILE, directory / DESCRIPTION_FILE]
    return recorded == _fingerprint(model_dir) and all(path.exists() for path in files)


@contextmanager
def _locked(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# Exports that failed in this process, by directory and the fingerprint of the
# files they were made from: asked again (each health probe asks), the same
# files fail at once instead of starting another export.
_failed: dict[tuple[Path, str], str] = {}


def ensure_exported(source: str, export_root: str = "") -> Path:
    """The export directory of `source` (see export_directory), exporting it
    first (in a process of its own) when it is missing or was made from other
    files. A hub id is exported from the hub (`from_pretrained` downloads what
    the cache lacks); a directory from itself."""
    model_dir = model_directory(source)
    directory = export_directory(model_dir, export_root)
    if _current(directory, model_dir):
        return directory
    remembered = (directory, json.dumps(_fingerprint(model_dir)))
    if remembered in _failed:
        raise ExportFailed(_failed[remembered])
    exported_from = str(model_dir) if Path(source).is_dir() else source
    with _locked(directory):
        if _current(directory, model_dir):  # another process made it while this one waited
            return directory
        for partial in directory.glob(".*.partial"):  # left by an export that was killed
            partial.unlink(missing_ok=True)
        try:
            result = subprocess.run(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "media_pipeline.onnx_export", exported_from, str(directory)],
                capture_output=True,
                text=True,
                timeout=EXPORT_TIMEOUT_S,
            )
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            failure = "" if result.returncode == 0 else " / ".join(tail) or f"exit status {result.returncode}"
        except subprocess.TimeoutExpired:
            failure = f"it took more than {EXPORT_TIMEOUT_S} s"
        if not failure and not _current(directory, model_directory(source)):
            failure = "the files it made do not match the model's"
        if failure:
            _failed[remembered] = f"the ONNX export of {source!r} failed: {failure}"
            raise ExportFailed(_failed[remembered])
    return directory


def _replace_into(path: Path, write) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def describe(config, processor) -> dict:
    """What the embedder needs of a model's config and processor (clip.json)."""
    tokenizer, images = processor.tokenizer, processor.image_processor
    return {
        "projection_dim": int(config.projection_dim),
        "max_text_tokens": int(config.text_config.max_position_embeddings),
        # CLIP pads with its end-of-text token where it names no pad token.
        "pad_id": int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id),
        "pad_token": str(tokenizer.pad_token if tokenizer.pad_token is not None else tokenizer.eos_token),
        "shortest_edge": int(images.size["shortest_edge"]),
        "crop": [int(images.crop_size["height"]), int(images.crop_size["width"])],
        "mean": [float(v) for v in images.image_mean],
        "std": [float(v) for v in images.image_std],
        "resample": int(getattr(images, "resample", 3)),  # 3: bicubic
    }


def _describe(model, processor, directory: Path) -> None:
    """tokenizer.json and clip.json (see the module's docstring)."""
    tokenizer = processor.tokenizer.backend_tokenizer
    _replace_into(directory / TOKENIZER_FILE, lambda path: tokenizer.save(str(path)))
    description = describe(model.config, processor)
    _replace_into(directory / DESCRIPTION_FILE, lambda path: path.write_text(json.dumps(description, indent=1)))


def read_description(directory: Path) -> dict:
    return json.loads((directory / DESCRIPTION_FILE).read_text())


def export(source: str, directory: Path) -> None:
    """Trace both towers of the model `source` (a hub id or a directory) to
    ONNX (fp32) in `directory`, quantize each to int8 and write the manifest
    of the model's files last. Needs torch and onnx."""
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoProcessor, CLIPModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    model = CLIPModel.from_pretrained(source).eval()
    processor = AutoProcessor.from_pretrained(source)
    model_dir = model_directory(source)
    directory.mkdir(parents=True, exist_ok=True)
    _describe(model, processor, directory)

    def features(output):
        return output if isinstance(output, torch.Tensor) else output.pooler_output

    class Tower(torch.nn.Module):
        # The model as a submodule: the tracer takes its weights as parameters.
        def __init__(self, method: str):
            super().__init__()
            self.model, self.method = model, method

        def forward(self, *inputs):
            names = ("pixel_values",) if self.method == "get_image_features" else ("input_ids", "attention_mask")
            return features(getattr(self.model, self.method)(**dict(zip(names, inputs, strict=True))))

    side = int(model.config.vision_config.image_size)
    tokens = torch.ones(2, 7, dtype=torch.long)
    graphs = {
        "vision": (
            Tower("get_image_features"),
            (torch.zeros(2, 3, side, side),),
            ["pixel_values"],
            {"pixel_values": {0: "batch"}, "embeds": {0: "batch"}},
        ),
        "text": (
            Tower("get_text_features"),
            (tokens, torch.ones_like(tokens)),
            ["input_ids", "attention_mask"],
            {
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "embeds": {0: "batch"},
            },
        ),
    }
    with warnings.catch_warnings(), torch.inference_mode():
        # The tracer notes the model's shape checks it records as constants;
        # the shapes that vary (batch, tokens) are named dynamic above.
        warnings.simplefilter("ignore")
        for tower, (module, inputs, names, dynamic) in graphs.items():
            fp32 = tower_path(directory, tower, "fp32")
            _replace_into(
                fp32,
                lambda path, module=module, inputs=inputs, names=names, dynamic=dynamic: torch.onnx.export(
                    module,
                    inputs,
                    str(path),
                    input_names=names,
                    output_names=["embeds"],
                    dynamic_axes=dynamic,
                    opset_version=OPSET,
                    dynamo=False,
                ),
            )
            _replace_into(
                tower_path(directory, tower, "int8"),
                lambda path, fp32=fp32: quantize_dynamic(
                    str(fp32), str(path), weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": 1}
                ),
            )
    _replace_into(directory / "manifest.json", lambda path: path.write_text(json.dumps(_fingerprint(model_dir))))


if __name__ == "__main__":
    export(sys.argv[1], Path(sys.argv[2]))
