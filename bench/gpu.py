"""CLIP on a CUDA GPU, when torch sees one.

    .venv/bin/python bench/gpu.py [--images 256] [--rounds 3]

The ViT-B/32-shaped model's image tower through the embedder
(`CLIP_DEVICE=cuda`, media_pipeline/runtimes.py) at fp32, bf16 and fp16 and
at batches of 16, 64 and 128: images/s (preprocessed pixels in, unit vectors
out, the copies to and from the GPU included), each precision's vectors
against fp32's on the same pixels, and torch fp32 on the CPU beside them.
Without a GPU the table says it was skipped: tests never need one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import median, vit_b_32
from bench.report import Table, emit

PRECISIONS = ("fp32", "bf16", "fp16")
BATCHES = (16, 64, 128)


def measure(images: int, rounds: int) -> dict[tuple[str, str, int], tuple[float, np.ndarray]]:
    """(device, precision, batch) -> (images/s, vectors)."""
    from media_pipeline.embedder import ClipEmbedder

    rng = np.random.default_rng(11)
    pixels = [rng.standard_normal((3, 224, 224)).astype(np.float32) for _ in range(images)]
    out = {}
    plan = [("cuda", precision, batch) for precision in PRECISIONS for batch in BATCHES] + [("cpu", "fp32", 16)]
    for device, precision, batch in plan:
        embedder = ClipEmbedder(str(vit_b_32()), precision, batch, runtime="torch", device=device)
        subset = pixels if device == "cuda" else pixels[:32]
        embedder.embed_pixels(subset[:batch])  # warm-up: kernels chosen, memory pooled
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            vectors = embedder.embed_pixels(subset)
            timings.append(time.perf_counter() - started)
        out[(device, precision, batch)] = (len(subset) / median(timings), vectors)
        print(f"{device} {precision} batch {batch}: {out[(device, precision, batch)][0]:.0f} images/s", flush=True)
    return out


def gpu_table(results, images: int, rounds: int) -> Table:
    import torch

    table = Table(
        "gpu",
        f"CLIP on {torch.cuda.get_device_name(0)}: ViT-B/32 image tower, {images} images, median of {rounds}",
        ["device", "precision", "batch", "images/s", "x CPU fp32", "mean cos to GPU fp32", "min cos"],
    )
    cpu_rate = results[("cpu", "fp32", 16)][0]
    reference = results[("cuda", "fp32", BATCHES[0])][1]
    for (device, precision, batch), (rate, vectors) in results.items():
        cos = np.sum(vectors * reference[: len(vectors)], axis=1)
        table.add(device, precision, batch, rate, f"{rate / cpu_rate:.1f}x", float(cos.mean()), float(cos.min()))
    table.notes.append(
        "CLIP_DEVICE=auto takes the GPU when torch sees one, at fp16 with batches of 128 (CLIP_BATCH_SIZE unset); "
        "the CPU row: torch fp32 at batch 16 on 32 of the images."
    )
    return table


def skipped_table(reason: str) -> Table:
    table = Table("gpu", "CLIP on a CUDA GPU", ["result"])
    table.add(f"skipped: {reason}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        emit(skipped_table(f"torch {torch.__version__} sees no CUDA device on this machine"))
        return
    import django

    django.setup()  # the embedder reads its settings; no database needed
    emit(gpu_table(measure(args.images, args.rounds), args.images, args.rounds))


if __name__ == "__main__":
    main()
