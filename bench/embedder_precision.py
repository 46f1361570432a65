"""Embedding speed and fidelity per CLIP_PRECISION on a ViT-B/32-shaped model.

    .venv/bin/python bench/embedder_precision.py [--images 48] [--repeats 3]

Prints a table: images/s (median of the repeats, all precisions measured in
the same run, interleaved) and the cosine of each precision's vectors to fp32's.
Random weights: the speed is that of the real model; the fidelity is indicative.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")

MODEL_DIR = ROOT / ".data" / "models" / "clip-vit-b-32"


def sample_images(count: int):
    from PIL import Image

    rng = np.random.default_rng(0)
    images = []
    for i in range(count):
        base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)  # smooth, photo-like content
        image = Image.fromarray(base).resize((320 + 16 * (i % 5), 240 + 8 * (i % 7)), Image.Resampling.BICUBIC)
        images.append(image)
    return images


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    import django

    django.setup()
    import torch

    from media_pipeline.clip_builder import build_clip_model
    from media_pipeline.embedder import PRECISIONS, ClipEmbedder

    if not (MODEL_DIR / "model.safetensors").exists():
        build_clip_model(MODEL_DIR, "vit-b-32")
    images = sample_images(args.images)
    embedders = {p: ClipEmbedder(str(MODEL_DIR), p, args.batch_size) for p in PRECISIONS}
    pixels = [embedders["fp32"].preprocess(image) for image in images]
    vectors = {p: e.embed_pixels(pixels[: args.batch_size]) for p, e in embedders.items()}  # warm-up
    timings: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for _ in range(args.repeats):
        for precision, embedder in embedders.items():
            start = time.perf_counter()
            vectors[precision] = embedder.embed_pixels(pixels)
            timings[precision].append(time.perf_counter() - start)

    print(
        f"ViT-B/32-shaped CLIP, {args.images} images, batch {args.batch_size}, torch threads "
        f"{torch.get_num_threads()}, median of {args.repeats}"
    )
    print(f"{'precision':<10} {'images/s':>9} {'mean cos':>9} {'min cos':>9}")
    for precision in PRECISIONS:
        cosines = np.sum(vectors[precision] * vectors["fp32"], axis=1)
        rate = args.images / statistics.median(timings[precision])
        print(f"{precision:<10} {rate:>9.1f} {cosines.mean():>9.4f} {cosines.min():>9.4f}")


if __name__ == "__main__":
    main()
