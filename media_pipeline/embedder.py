"""CLIP image and text embeddings: L2-normalized, 512-d, batched.

The model is loaded once per process, lazily and under a lock, from
`settings.CLIP_MODEL`: a hub id such as `openai/clip-vit-base-patch32` or a
local directory (e.g. one written by `manage.py build_clip_model`) — the same
`from_pretrained` call either way.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from catalog.models import EMBEDDING_DIMENSIONS

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
T = TypeVar("T")
# Images wider or taller than this ratio are cut to it before resizing (the
# centre crop would discard the rest anyway).
MAX_ASPECT = 4


class ModelUnavailable(ImproperlyConfigured):
    """CLIP_MODEL cannot be loaded or does not fit the embedding column."""


def model_name_for(source: str) -> str:
    """The name stored on each Embedding: a hub id as is, a directory by its name."""
    path = Path(source)
    return path.name if path.is_dir() else source


def current_model_name() -> str:
    """The name under which the pipeline stores vectors now, and which searches
    read: CLIP_MODEL's (without loading the model)."""
    return model_name_for(settings.CLIP_MODEL)


def check_model_config(source: str | None = None) -> int:
    """Read only the model's config and fail loudly if its projection size is not
    the vector column's. Cheap: workers call it at start-up."""
    from transformers import CLIPConfig

    source = source or settings.CLIP_MODEL
    try:
        config = CLIPConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"CLIP_MODEL={source!r} cannot be loaded: {exc}") from exc
    if config.projection_dim != EMBEDDING_DIMENSIONS:
        raise ModelUnavailable(
            f"CLIP_MODEL={source!r} projects to {config.projection_dim} dimensions, but the embedding "
            f"column is vector({EMBEDDING_DIMENSIONS}): use a ViT-B/32-sized CLIP (projection_dim "
            f"{EMBEDDING_DIMENSIONS}) or migrate the column."
        )
    return config.projection_dim


@dataclass(frozen=True)
class Preprocessing:
    """CLIP's image preprocessing, read from the model's processor config."""

    shortest_edge: int
    crop: tuple[int, int]  # (height, width)
    mean: np.ndarray
    std: np.ndarray
    resample: int

    @classmethod
    def from_processor(cls, image_processor) -> Preprocessing:
        size, crop = image_processor.size, image_processor.crop_size
        return cls(
            shortest_edge=int(size["shortest_edge"]),
            crop=(int(crop["height"]), int(crop["width"])),
            mean=np.asarray(image_processor.image_mean, dtype=np.float32).reshape(3, 1, 1),
            std=np.asarray(image_processor.image_std, dtype=np.float32).reshape(3, 1, 1),
            resample=int(getattr(image_processor, "resample", Image.Resampling.BICUBIC)),
        )

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) with the short side at `shortest_edge`, as CLIP resizes;
        the long side is capped at MAX_ASPECT times the short one, so a 12000x1
        strip cannot become a gigapixel intermediate image."""
        short, long = (width, height) if width <= height else (height, width)
        new_short = self.shortest_edge
        new_long = min(int(new_short * long / max(short, 1)), new_short * MAX_ASPECT)
        return (new_short, new_long) if width <= height else (new_long, new_short)

    def __call__(self, image: Image.Image) -> np.ndarray:
        """An RGB PIL image -> a (3, H, W) float32 array, as CLIP expects."""
        width, height = image.size
        short = max(min(width, height), 1)
        if max(width, height) > MAX_ASPECT * short:
            # Only the centre survives CLIP's crop anyway: cut an extreme strip
            # to MAX_ASPECT first, keeping the resize proportional.
            keep = short * MAX_ASPECT
            if width > height:
                image = image.crop(((width - keep) // 2, 0, (width - keep) // 2 + keep, height))
            else:
                image = image.crop((0, (height - keep) // 2, width, (height - keep) // 2 + keep))
        if image.size != self.resized_size(*image.size):
            image = image.resize(self.resized_size(*image.size), resample=self.resample)
        crop_h, crop_w = self.crop
        left, top = (image.width - crop_w) // 2, (image.height - crop_h) // 2
        pixels = np.asarray(image.crop((left, top, left + crop_w, top + crop_h)), dtype=np.float32)
        pixels = pixels.transpose(2, 0, 1) * np.float32(1 / 255)
        return (pixels - self.mean) / self.std


class ClipEmbedder:
    def __init__(self, source: str, precision: str = "fp32", batch_size: int = 32):
        import torch
        from transformers import AutoProcessor, CLIPModel
        from transformers.utils import logging as hf_logging

        if precision not in PRECISIONS:
            raise ImproperlyConfigured(f"CLIP_PRECISION must be one of {PRECISIONS}, got {precision!r}")
        check_model_config(source)
        hf_logging.set_verbosity_error()  # e.g. the note that torchvision is absent
        hf_logging.disable_progress_bar()
        try:
            model = CLIPModel.from_pretrained(source)
            processor = AutoProcessor.from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"CLIP_MODEL={source!r} cannot be loaded: {exc}") from exc
        model.eval()
        if precision == "bf16":
            model = model.to(torch.bfloat16)
        elif precision == "int8":
            with warnings.catch_warnings():
                # torch marks eager dynamic quantization deprecated in favour of
                # torchao, which is not part of this stack; it still works.
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", UserWarning)
                # In place: a copy would hold two fp32 models at the peak (1.7 GB
                # resident instead of 1.1 GB for ViT-B/32; bench/ingest.py).
                model = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
                )
        self.torch = torch
        self.model = model
        self.tokenizer = processor.tokenizer
        self.preprocess = Preprocessing.from_processor(processor.image_processor)
        self.source = source
        self.model_name = model_name_for(source)
        self.precision = precision
        self.batch_size = batch_size
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.max_text_tokens = int(model.config.text_config.max_position_embeddings)
        logger.info("loaded CLIP %s (%s, batch %d)", source, precision, batch_size)

    def _features(self, output):
        # transformers 5 returns a model output whose pooler_output is the projection.
        return output if isinstance(output, self.torch.Tensor) else output.pooler_output

    def _normalized(self, features) -> np.ndarray:
        features = features.float()
        features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return features.numpy().astype(np.float32)

    def embed_pixels(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        """Preprocessed (3, H, W) arrays -> (n, 512) unit vectors."""
        if not pixels:
            return np.zeros((0, EMBEDDING_DIMENSIONS), dtype=np.float32)

        def run() -> np.ndarray:
            out = []
            for start in range(0, len(pixels), self.batch_size):
                batch = self.torch.from_numpy(np.stack(pixels[start : start + self.batch_size])).to(self.dtype)
                out.append(self._normalized(self._features(self.model.get_image_features(pixel_values=batch))))
            return np.concatenate(out)

        return self._on_model_thread(run)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB PIL images -> (n, 512) unit vectors."""
        return self.embed_pixels([self.preprocess(image) for image in images])

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBEDDING_DIMENSIONS), dtype=np.float32)

        def run() -> np.ndarray:
            out = []
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_text_tokens,
                    return_tensors="pt",
                )
                features = self.model.get_text_features(
                    input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
                )
                out.append(self._normalized(self._features(features)))
            return np.concatenate(out)

        return self._on_model_thread(run)

    def _on_model_thread(self, run: Callable[[], np.ndarray]) -> np.ndarray:
        def in_inference_mode() -> np.ndarray:
            with self.torch.inference_mode():
                return run()

        return on_torch_thread(in_inference_mode)


_embedder: ClipEmbedder | None = None
_lock = threading.Lock()
_torch_thread: tuple[int, ThreadPoolExecutor] | None = None
_torch_thread_lock = threading.Lock()
TORCH_THREAD_NAME = "torch"


def on_torch_thread(run: Callable[[], T]) -> T:
    """Run `run` on the process's one thread for torch work, and return its result.

    torch's OpenMP gives each calling thread a team of threads of its own; once
    the process holds more of them than it has cores, OpenMP stops letting them
    spin between the hundreds of small parallel regions of a forward pass, and
    every pass slows down: a text query took 44 ms instead of 15 once a second
    thread had embedded, and a threaded web server runs requests on many
    (bench/api.py). So loading, every forward pass and the recognizer's
    training run here, one at a time, each over every core."""
    if threading.current_thread().name.startswith(TORCH_THREAD_NAME):
        return run()
    return submit_to_torch_thread(run).result()


def submit_to_torch_thread(run: Callable[[], T]) -> Future[T]:
    """Queue `run` on the process's torch thread (see on_torch_thread)."""
    global _torch_thread
    with _torch_thread_lock:
        # A forked child (Celery's pool, gunicorn's workers) starts a thread of its own.
        if _torch_thread is None or _torch_thread[0] != os.getpid():
            _torch_thread = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix=TORCH_THREAD_NAME))
        return _torch_thread[1].submit(run)


def _configured() -> tuple[str, str, int]:
    return settings.CLIP_MODEL, settings.CLIP_PRECISION, settings.CLIP_BATCH_SIZE


def get_embedder() -> ClipEmbedder:
    """The process's embedder, loaded on first use (thread-safe)."""
    global _embedder
    wanted = _configured()
    embedder = _embedder
    if embedder is not None and (embedder.source, embedder.precision, embedder.batch_size) == wanted:
        return embedder
    with _lock:
        embedder = _embedder
        if embedder is None or (embedder.source, embedder.precision, embedder.batch_size) != wanted:
            embedder = _embedder = on_torch_thread(lambda: _load(*wanted))
        return embedder


def _load(source: str, precision: str, batch_size: int) -> ClipEmbedder:
    if settings.CLIP_TORCH_THREADS:
        import torch

        torch.set_num_threads(settings.CLIP_TORCH_THREADS)
    return ClipEmbedder(source, precision, batch_size)
