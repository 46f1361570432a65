"""Where CLIP's forward passes run: torch, ONNX Runtime or OpenVINO, at a
precision, on the CPU or a CUDA GPU.

Each runtime gives the same two towers: image (preprocessed pixels ->
embeddings) and text (token ids and mask -> embeddings), unnormalized,
float32. The ONNX runtimes read the export made on first load
(media_pipeline/onnx_export.py) and load a tower only when it is first used:
a worker, which embeds images only, never loads the text tower.

Which one runs (`CLIP_RUNTIME` and `CLIP_PRECISION`, both `auto` by default)
is the first of this CPU's list in CPU_DEFAULTS that is installed and fits
what is set; each list is the runtimes ordered by speed as bench/ingest.py
measured them on such a CPU (docs/BENCHMARKS.md section 2: images/s, and a
text query's time between two within 5% on images), keeping only those whose
vectors keep a mean cosine to fp32's of at least 0.99 raw and 0.95 centred.
`make bench` prints the same table on any machine, with the default it
picks and whether that is still the fastest, so a CPU on which the order
differs shows it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from django.core.exceptions import ImproperlyConfigured

RUNTIMES = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "int8", "fp16")
DEVICES = ("cpu", "cuda")
# What each runtime runs here (fp16 only on CUDA; ONNX Runtime's int8 is its
# dynamic quantization; OpenVINO's bf16 needs the CPU's bf16 or AMX units).
SUPPORTED = {
    ("torch", "cpu"): ("fp32", "bf16", "int8"),
    ("torch", "cuda"): ("fp32", "bf16", "fp16"),
    ("onnxruntime", "cpu"): ("fp32", "int8"),
    ("openvino", "cpu"): ("fp32", "bf16"),
}
# The documented defaults, fastest first, by the best vector unit the CPU
# has. avx2: measured on a 2-core AMD EPYC (ViT-B/32, images at batch 16):
# ONNX Runtime fp32 20.1 images/s, int8 19.3, torch int8 19.4, OpenVINO fp32
# 18.1, torch fp32 15.7, torch bf16 1.7 (emulated); ONNX Runtime int8 comes
# first all the same: its text tower takes 4.5 ms a query to fp32's 8.1 and
# its two towers hold a third of fp32's memory (222 MiB for the image tower
# to 669), for 4% fewer images/s. avx512_vnni:
# measured on a 2-core machine with AVX-512 VNNI and bf16: torch int8 111,
# ONNX Runtime int8 99, OpenVINO bf16 91, ONNX Runtime fp32 47, torch fp32 22.
# amx: not measured yet; it takes avx512_vnni's order (those CPUs have both).
CPU_DEFAULTS: dict[str, tuple[tuple[str, str], ...]] = {
    "avx512_vnni": (
        ("torch", "int8"),
        ("onnxruntime", "int8"),
        ("openvino", "bf16"),
        ("onnxruntime", "fp32"),
        ("torch", "fp32"),
    ),
    "avx2": (
        ("onnxruntime", "int8"),
        ("onnxruntime", "fp32"),
        ("torch", "int8"),
        ("openvino", "fp32"),
        ("torch", "fp32"),
    ),
}
CPU_DEFAULTS["amx"] = CPU_DEFAULTS["avx512_vnni"]
CUDA_DEFAULTS = (("torch", "fp16"), ("torch", "bf16"), ("torch", "fp32"))
# Images or texts per forward pass when CLIP_BATCH_SIZE is not set. On a CPU
# 16 run as fast as 32 (bench/ingest.py) and a task's batches take turns
# with its reads and stores sooner (media_pipeline/image_pipeline.py).
DEFAULT_BATCH = {"cpu": 16, "cuda": 128}
VECTOR_UNITS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


@cache
def cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def vector_units() -> list[str]:
    """This CPU's vector units of note for inference, as /proc/cpuinfo names them."""
    return [unit for unit in VECTOR_UNITS if unit in cpu_flags()]


def cpu_class(flags: frozenset[str] | None = None) -> str:
    """The CPU_DEFAULTS entry this CPU takes: amx, avx512_vnni or avx2 (also
    for a CPU with less: its order is the one nearest to it)."""
    flags = cpu_flags() if flags is None else flags
    if "amx_int8" in flags:
        return "amx"
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx2"


def installed(runtime: str) -> bool:
    return importlib.util.find_spec(runtime) is not None


def cuda_available() -> bool:
    """A CUDA device torch can use. The driver's file is checked first, so a
    machine without a GPU does not import torch to find out."""
    if not os.path.exists("/proc/driver/nvidia/version"):
        return False
    import torch

    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class Backend:
    runtime: str
    precision: str
    device: str = "cpu"

    def __str__(self) -> str:
        return f"{self.runtime} {self.precision} on {self.device}"


def choose(
    runtime: str = "auto",
    precision: str = "auto",
    device: str = "auto",
    *,
    flags: frozenset[str] | None = None,
    has_cuda: bool | None = None,
    available=installed,
) -> Backend:
    """The backend to run: the settings where they are set, the rest from
    this machine's defaults (see the module's docstring)."""
    for name, value, allowed in (
        ("CLIP_RUNTIME", runtime, RUNTIMES),
        ("CLIP_PRECISION", precision, PRECISIONS),
        ("CLIP_DEVICE", device, DEVICES),
    ):
        if value != "auto" and value not in allowed:
            raise ImproperlyConfigured(f"{name} must be auto or one of {', '.join(allowed)}, got {value!r}")
    if device == "auto":
        gpu = cuda_available() if has_cuda is None else has_cuda
        fits_gpu = any(
            runtime in ("auto", name) and precision in ("auto", supported)
            for name, supported in ((name, p) for name in RUNTIMES for p in SUPPORTED.get((name, "cuda"), ()))
        )
        # A runtime or precision only the CPU runs (ONNX Runtime, int8) keeps to the CPU.
        device = "cuda" if gpu and fits_gpu else "cpu"
    elif device == "cuda" and not (cuda_available() if has_cuda is None else has_cuda):
        raise ImproperlyConfigured("CLIP_DEVICE=cuda, but torch sees no CUDA device here")
    order = CUDA_DEFAULTS if device == "cuda" else CPU_DEFAULTS[cpu_class(flags)]
    # Then every other pair this device runs, for a runtime or precision set
    # that the defaults do not list here.
    order += tuple((name, supported) for name in RUNTIMES for supported in SUPPORTED.get((name, device), ()))
    fitting = [
        (name, supported) for name, supported in order if runtime in ("auto", name) and precision in ("auto", supported)
    ]
    if not fitting and runtime == "auto":
        raise ImproperlyConfigured(f"no runtime runs CLIP_PRECISION={precision} on {device}")
    if not fitting:
        raise ImproperlyConfigured(
            f"CLIP_RUNTIME={runtime} runs {', '.join(SUPPORTED.get((runtime, device), ())) or 'nothing'} "
            f"on {device}, not CLIP_PRECISION={precision}"
        )
    for name, supported in fitting:
        if available(name):
            return Backend(name, supported, device)
    missing = " or ".join(dict.fromkeys(name for name, _ in fitting))
    raise ImproperlyConfigured(f"CLIP_RUNTIME={runtime}, CLIP_PRECISION={precision}: {missing} is not installed")


class _LazyTowers:
    """Each tower loaded on its first use: a process that embeds images only
    (a worker) never holds the text tower."""

    def __init__(self, source: str, backend: Backend, threads: int = 0):
        self.source, self.backend, self.threads = source, backend, threads
        self._loaded: dict[str, object] = {}

    @property
    def loaded(self) -> list[str]:
        """The towers loaded so far."""
        return list(self._loaded)

    def _tower(self, tower: str):
        if tower not in self._loaded:
            self._loaded[tower] = self._load(tower)
            release_freed_memory()
        return self._loaded[tower]

    def _load(self, tower: str):
        raise NotImplementedError


def release_freed_memory() -> None:
    """Hand the heap's freed pages back to the system (glibc keeps them
    otherwise): loading a tower frees a model's worth of fp32 weights once it
    is quantized or converted."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass


class TorchTowers(_LazyTowers):
    """CLIP's towers in torch (each from the same checkpoint, with
    `from_pretrained`), at fp32, bf16 or fp16, or int8 (dynamic quantization
    of their Linear layers), on the CPU or CUDA."""

    def __init__(self, source: str, backend: Backend, threads: int = 0):
        import torch

        super().__init__(source, backend, threads)
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = torch.device(backend.device)
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(backend.precision, torch.float32)

    def _load(self, tower: str):
        import warnings

        from transformers import CLIPTextModelWithProjection, CLIPVisionModelWithProjection
        from transformers.utils import logging as hf_logging

        # Quiet: each tower's load reports the other tower's weights it leaves.
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        kind = CLIPVisionModelWithProjection if tower == "vision" else CLIPTextModelWithProjection
        model = kind.from_pretrained(self.source).eval()
        if self.backend.precision == "int8":
            with warnings.catch_warnings():
                # torch marks eager dynamic quantization deprecated in favour of
                # torchao, which is not part of this stack; it still works.
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", UserWarning)
                # In place: a copy would hold both at the peak.
                model = self.torch.ao.quantization.quantize_dynamic(
                    model, {self.torch.nn.Linear}, dtype=self.torch.qint8, inplace=True
                )
            return model
        return model.to(self.device, self.dtype)

    def image(self, pixels: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            batch = self.torch.from_numpy(pixels).to(self.device, self.dtype)
            return self._tower("vision")(pixel_values=batch).image_embeds.float().cpu().numpy()

    def text(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            output = self._tower("text")(
                input_ids=self.torch.from_numpy(input_ids).to(self.device),
                attention_mask=self.torch.from_numpy(attention_mask).to(self.device),
            )
            return output.text_embeds.float().cpu().numpy()


class _OnnxTowers(_LazyTowers):
    """The towers of the ONNX export (made on first load, media_pipeline/onnx_export.py)."""

    def __init__(self, source: str, backend: Backend, threads: int = 0):
        from django.conf import settings

        from media_pipeline.onnx_export import ensure_exported

        super().__init__(source, backend, threads)
        self.directory = ensure_exported(source, settings.CLIP_EXPORT_DIR)


class OnnxRuntimeTowers(_OnnxTowers):
    def _load(self, tower: str):
        import onnxruntime

        from media_pipeline.onnx_export import tower_path

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = False
        # Its threads sleep between parallel steps instead of spinning: the
        # process's other threads (decoding the next frames, answering other
        # requests) need those cores meanwhile.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = tower_path(self.directory, tower, self.backend.precision)
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def image(self, pixels: np.ndarray) -> np.ndarray:
        return self._tower("vision").run(None, {"pixel_values": pixels})[0]

    def text(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        return self._tower("text").run(None, feed)[0]


class OpenVinoTowers(_OnnxTowers):
    def _load(self, tower: str):
        import openvino

        from media_pipeline.onnx_export import tower_path

        config = {"INFERENCE_PRECISION_HINT": "bf16" if self.backend.precision == "bf16" else "f32"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        core = openvino.Core()
        return core.compile_model(str(tower_path(self.directory, tower, "fp32")), "CPU", config)

    def image(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(self._tower("vision")(pixels)[0])

    def text(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        return np.asarray(self._tower("text")(feed)[0])


Towers = TorchTowers | OnnxRuntimeTowers | OpenVinoTowers


def load_towers(source: str, backend: Backend, threads: int = 0) -> Towers:
    kinds: dict[str, type[Towers]] = {
        "torch": TorchTowers,
        "onnxruntime": OnnxRuntimeTowers,
        "openvino": OpenVinoTowers,
    }
    return kinds[backend.runtime](source, backend, threads)
