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
    import json

    from media_pipeline.onnx_export import model_directory

    source = source or settings.CLIP_MODEL
    try:
        config = json.loads((model_directory(source) / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"CLIP_MODEL={source!r} cannot be loaded: {exc}") from exc
    projection_dim = int(config.get("projection_dim", EMBEDDING_DIMENSIONS))  # transformers' default is 512
    if projection_dim != EMBEDDING_DIMENSIONS:
        raise ModelUnavailable(
            f"CLIP_MODEL={source!r} projects to {projection_dim} dimensions, but the embedding "
            f"column is vector({EMBEDDING_DIMENSIONS}): use a ViT-B/32-sized CLIP (projection_dim "
            f"{EMBEDDING_DIMENSIONS}) or migrate the column."
        )
    return projection_dim


@dataclass(frozen=True)
class Preprocessing:
    """CLIP's image preprocessing, read from the model's processor config."""

    shortest_edge: int
    crop: tuple[int, int]  # (height, width)
    mean: np.ndarray
    std: np.ndarray
    resample: int

    @classmethod
    def from_description(cls, description: dict) -> Preprocessing:
        """From what media_pipeline.onnx_export.describe read off the processor."""
        return cls(
            shortest_edge=int(description["shortest_edge"]),
            crop=(int(description["crop"][0]), int(description["crop"][1])),
            mean=np.asarray(description["mean"], dtype=np.float32).reshape(3, 1, 1),
            std=np.asarray(description["std"], dtype=np.float32).reshape(3, 1, 1),
            resample=int(description["resample"]),
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


class Tokenize:
    """CLIP's tokenizer (a `tokenizers` Tokenizer): texts -> (input ids,
    attention mask), truncated to the model's text length and padded to the
    batch's longest, as transformers' tokenizer does it."""

    def __init__(self, tokenizer, description: dict):
        self.tokenizer = tokenizer
        self.tokenizer.enable_truncation(max_length=int(description["max_text_tokens"]))
        self.tokenizer.enable_padding(pad_id=int(description["pad_id"]), pad_token=description["pad_token"])

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.asarray([encoding.ids for encoding in encodings], dtype=np.int64)
        return ids, np.asarray([encoding.attention_mask for encoding in encodings], dtype=np.int64)


def _description_and_tokenizer(source: str, towers) -> tuple[dict, object]:
    """The model's description and tokenizer: from its ONNX export where the
    towers run one (without importing transformers), else from its processor."""
    from tokenizers import Tokenizer

    from media_pipeline.onnx_export import DESCRIPTION_FILE, TOKENIZER_FILE, describe, read_description

    directory = getattr(towers, "directory", None)
    if directory is not None and (directory / DESCRIPTION_FILE).exists():
        return read_description(directory), Tokenizer.from_file(str(directory / TOKENIZER_FILE))
    from transformers import AutoProcessor, CLIPConfig
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # e.g. the note that torchvision is absent
    hf_logging.disable_progress_bar()
    processor = AutoProcessor.from_pretrained(source)
    tokenizer = Tokenizer.from_str(processor.tokenizer.backend_tokenizer.to_str())  # a copy of its own
    return describe(CLIPConfig.from_pretrained(source), processor), tokenizer


class ClipEmbedder:
    """CLIP's preprocessing and tokenizer, with its towers on the backend
    chosen (media_pipeline/runtimes.py): `auto` for any of runtime,
    precision and device takes this machine's default."""

    def __init__(
        self,
        source: str,
        precision: str = "fp32",
        batch_size: int | None = None,
        runtime: str = "torch",
        device: str = "cpu",
        threads: int = 0,
    ):
        from media_pipeline.onnx_export import ExportFailed
        from media_pipeline.runtimes import DEFAULT_BATCH, choose, load_towers

        backend = choose(runtime, precision, device)
        check_model_config(source)
        try:
            self.towers = load_towers(source, backend, threads)
            description, tokenizer = _description_and_tokenizer(source, self.towers)
        except (OSError, ValueError, ExportFailed) as exc:
            raise ModelUnavailable(f"CLIP_MODEL={source!r} cannot be loaded: {exc}") from exc
        self.backend = backend
        self.tokenize = Tokenize(tokenizer, description)
        self.preprocess = Preprocessing.from_description(description)
        self.source = source
        self.model_name = model_name_for(source)
        self.batch_size = batch_size or DEFAULT_BATCH[backend.device]
        logger.info("loaded CLIP %s (%s, batch %d)", source, backend, self.batch_size)

    @staticmethod
    def _normalized(features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32)
        return features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)

    def embed_pixels(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        """Preprocessed (3, H, W) arrays -> (n, 512) unit vectors."""
        return self.embed_pixels_later(pixels).result()

    def embed_pixels_later(self, pixels: Sequence[np.ndarray]) -> Future[np.ndarray]:
        """embed_pixels queued on the torch thread: the caller goes on (decodes
        the next batch, stores the last) while the model runs."""

        def run() -> np.ndarray:
            if not pixels:
                return np.zeros((0, EMBEDDING_DIMENSIONS), dtype=np.float32)
            out = []
            for start in range(0, len(pixels), self.batch_size):
                batch = np.ascontiguousarray(np.stack(pixels[start : start + self.batch_size]), dtype=np.float32)
                out.append(self._normalized(self.towers.image(batch)))
            return np.concatenate(out)

        return submit_to_torch_thread(run)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB PIL images -> (n, 512) unit vectors."""
        return self.embed_pixels([self.preprocess(image) for image in images])

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_texts_later(texts).result()

    def embed_texts_later(self, texts: Sequence[str]) -> Future[np.ndarray]:
        """embed_texts queued on the torch thread: the caller goes on (a text
        search ranks its keywords) while the model runs."""

        def run() -> np.ndarray:
            if not texts:
                return np.zeros((0, EMBEDDING_DIMENSIONS), dtype=np.float32)
            out = []
            for start in range(0, len(texts), self.batch_size):
                input_ids, attention_mask = self.tokenize(texts[start : start + self.batch_size])
                out.append(self._normalized(self.towers.text(input_ids, attention_mask)))
            return np.concatenate(out)

        return submit_to_torch_thread(run)

    def warm_up(self) -> None:
        """Load both towers (each loads on first use) and run each once, so
        that the first request does not pay for it."""
        self.embed_pixels([np.zeros((3, *self.preprocess.crop), dtype=np.float32)])
        self.embed_texts(["warm up"])


_embedder: tuple[tuple, ClipEmbedder] | None = None  # (the settings it was loaded with, it)
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
    """Queue `run` on the process's torch thread (see on_torch_thread); on
    that thread itself, run it now (queued, it would wait for itself)."""
    global _torch_thread
    if threading.current_thread().name.startswith(TORCH_THREAD_NAME):
        done: Future[T] = Future()
        try:
            done.set_result(run())
        except Exception as exc:
            done.set_exception(exc)
        return done
    with _torch_thread_lock:
        # A forked child (Celery's pool, gunicorn's workers) starts a thread of its own.
        if _torch_thread is None or _torch_thread[0] != os.getpid():
            _torch_thread = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix=TORCH_THREAD_NAME))
        return _torch_thread[1].submit(run)


def _configured() -> tuple[str, str, int | None, str, str, int]:
    return (
        settings.CLIP_MODEL,
        settings.CLIP_PRECISION,
        settings.CLIP_BATCH_SIZE,
        settings.CLIP_RUNTIME,
        settings.CLIP_DEVICE,
        settings.CLIP_TORCH_THREADS,
    )


def get_embedder() -> ClipEmbedder:
    """The process's embedder, loaded on first use (thread-safe)."""
    global _embedder
    wanted = _configured()
    loaded = _embedder
    if loaded is not None and loaded[0] == wanted:
        return loaded[1]
    with _lock:
        loaded = _embedder
        if loaded is None or loaded[0] != wanted:
            embedder = on_torch_thread(lambda: ClipEmbedder(*wanted))
            loaded = _embedder = (wanted, embedder)
        return loaded[1]


def configured_embedder(source: str) -> ClipEmbedder:
    """A new embedder of `source` on the backend the settings choose (e.g. a
    model other than CLIP_MODEL, for re-embedding)."""
    _, precision, batch_size, runtime, device, threads = _configured()
    return on_torch_thread(lambda: ClipEmbedder(source, precision, batch_size, runtime, device, threads))
