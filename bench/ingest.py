"""Image ingest end to end, tuned against a naive baseline, and the fidelity of
the tuned embeddings.

    .venv/bin/python bench/ingest.py [--images 96] [--rounds 3]

Stores `--images` JPEGs of mixed sizes (800 to 3000 px on the long side) and,
per configuration, creates their `pending` rows in a fresh tenant, enqueues
them as the API does (media_pipeline.queue.send_processing) and times until
the last one is `ready`, through a real Celery worker process started as
`make run` starts it, database writes, near-duplicate checks and all. Each
configuration gets its own worker, warmed up first (model loaded); rounds
interleave the configurations, so the machine's noise falls on all of them,
and each figure is the median of the rounds.

Configurations, from the naive baseline to the tuned defaults, one lever
added at a time: a task per image with torch fp32 at batch size 1 and
full-size decoding; 16 images a task embedded as one batch and read by
parallel threads; JPEGs decoded at reduced size (draft); this CPU's default
runtime and precision (media_pipeline/runtimes.py); 64 images a task, so that
the model embeds each batch of 16 while the worker reads the next and stores
the last (media_pipeline/image_pipeline.py).

Then the runtimes side by side in this process on identical pixels: torch
fp32, bf16 and int8, ONNX Runtime fp32 and int8, OpenVINO fp32 and bf16, each
one's images/s alone and its vectors against torch fp32's, with the default
this CPU gets and the fastest that keeps fidelity. The pipeline's efficiency
is the tuned ingest's images/s over the default's own, at the same batch.
Also each configuration's vectors against the baseline's, image by image, and
the peak resident memory of the tuned worker.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    BENCH_DIR,
    BENCH_LOG_DIR,
    Worker,
    clear_clip_settings,
    median,
    new_tenant,
    set_up_django,
    timed_ms,
    use_bench_database,
    vit_b_32,
    wait_settled,
)
from bench.report import Table, emit, verdict
from config.queues import QUEUE_MEDIA

MEDIA_DIR = BENCH_DIR / "media"
# Targets as ratios measured in the same run (absolute figures depend on the CPU).
TARGET_EFFICIENCY = 0.80  # end-to-end images/s over the model's own at the same backend and batch
TARGET_SPEEDUP = 8.0
TARGET_MEAN_COS, TARGET_CENTRED_MEAN_COS = 0.99, 0.95
TARGET_WORKER_MIB = 1000
DEFAULT_SLACK = 0.05  # the default may give up this share of images/s for faster text queries
SETTLE_TIMEOUT_S = 600
WARM_UP_IMAGES = 16  # a batch, ingested before each timed run: the worker has loaded its model
FIDELITY_IMAGES = 48
EMBED_BATCH = 16  # the model's batch in every configuration (DEFAULT_BATCH on a CPU)
TASK_BATCH = 64  # the tuned ingest's images a task (MEDIA_TASK_BATCH_SIZE's default)
BASELINE = "naive: a task per image, torch fp32, batch 1, full-size decode"
TUNED = "tuned: + 64 images a task, each batch embedded while the next is read and the last stored (the defaults)"
TORCH_FP32 = {"CLIP_RUNTIME": "torch", "CLIP_PRECISION": "fp32"}
# name -> (task batch size for the sender, the worker's environment)
CONFIGS: dict[str, tuple[int, dict[str, str]]] = {
    BASELINE: (
        1,
        {**TORCH_FP32, "CLIP_BATCH_SIZE": "1", "IMAGE_DRAFT_MIN_SIDE": "0", "MEDIA_DECODE_THREADS": "1"},
    ),
    "+ 16 images a task: parallel reads, one torch fp32 batch": (16, {**TORCH_FP32, "IMAGE_DRAFT_MIN_SIDE": "0"}),
    "+ JPEGs decoded at reduced size (draft)": (16, TORCH_FP32),
    "+ this CPU's default runtime and precision": (16, {}),
    TUNED: (TASK_BATCH, {}),
}


def photo(rng, width: int, height: int) -> bytes:
    """A photo-like JPEG: smooth colour fields, an object, sensor noise."""
    from PIL import Image, ImageDraw

    base = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    draw = ImageDraw.Draw(base)
    box = [int(width * rng.uniform(0.2, 0.4)), int(height * rng.uniform(0.2, 0.4))]
    box += [box[0] + width // 3, box[1] + height // 3]
    draw.ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    pixels = np.asarray(base, dtype=np.int16) + rng.integers(-10, 10, (height, width, 3), dtype=np.int16)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def store_images(count: int) -> list[dict]:
    """Write `count` JPEGs into the media storage; their row fields."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    rng = np.random.default_rng(7)
    files = []
    for i in range(count):
        long_side = int(800 + (3000 - 800) * i / max(1, count - 1))
        aspect = rng.choice([4 / 3, 3 / 2, 1.0, 3 / 4])
        width, height = (long_side, int(long_side / aspect)) if aspect >= 1 else (int(long_side * aspect), long_side)
        data = photo(rng, width, height)
        key = default_storage.save(f"bench/images/{i:04d}.jpg", ContentFile(data))
        files.append({"storage_key": key, "size": len(data), "width": width, "height": height})
    rng.shuffle(files)  # sizes mixed in every batch
    return files


def create_rows(tenant_slug: str, files: list[dict]) -> list[int]:
    from catalog.models import Media

    tenant, _ = new_tenant(tenant_slug)
    rows = Media.objects.bulk_create(
        Media(
            tenant=tenant,
            kind=Media.Kind.IMAGE,
            source=Media.Source.UPLOAD,
            content_type="image/jpeg",
            original_filename=Path(f["storage_key"]).name,
            **f,
        )
        for f in files
    )
    return [row.pk for row in rows]


def ingest(slug: str, files: list[dict], batch_size: int) -> float:
    """Seconds from enqueueing `files` as new media to the last one ready."""
    from django.conf import settings

    from config.queues import send_processing

    ids = create_rows(slug, files)
    settings.MEDIA_TASK_BATCH_SIZE = batch_size
    started = time.perf_counter()
    send_processing(ids)
    return wait_settled(ids, SETTLE_TIMEOUT_S) - started


def vectors_by_file(slug: str) -> dict[str, np.ndarray]:
    from catalog.models import Embedding

    rows = Embedding.objects.filter(tenant__slug=slug).values_list("media__storage_key", "vector")
    return {key: np.asarray(vector, dtype=np.float32) for key, vector in rows}


def cosines(vectors: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise cosines of `vectors` to `reference`: as stored, and centred.

    A random-weight model maps different images to vectors 0.93-0.99 apart, so
    a raw cosine near 1 says little. The centred cosine first subtracts the
    reference's mean vector from both: how much of what tells the images apart
    survives."""
    centre = reference.mean(axis=0)
    a, b = vectors - centre, reference - centre
    centred = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return np.sum(vectors * reference, axis=1), centred


def aligned(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    keys = sorted(a)
    return np.stack([a[key] for key in keys]), np.stack([b[key] for key in keys])


# The runtimes side by side (media_pipeline/runtimes.py), on identical pixels.
BACKENDS = [
    ("torch", "fp32"),
    ("torch", "bf16"),
    ("torch", "int8"),
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
]
REFERENCE = ("torch", "fp32")
TEXT_QUERY = "red leather running shoe"
TEXT_RUNS = 30


@dataclass
class RuntimeRun:
    """Each backend's vectors of the same decoded images and its speed alone,
    and the reference's vectors of the images decoded at full size."""

    vectors: dict[tuple[str, str], np.ndarray]
    rates: dict[tuple[str, str], float]  # images/s, embedding alone
    text_ms: dict[tuple[str, str], float]  # one three-word query, tokenizing included
    notes: dict[tuple[str, str], str]
    full_reference: np.ndarray
    images: int
    default: tuple[str, str]


def _runs_natively(runtime: str, precision: str) -> str:
    """'' where the CPU runs `precision` itself, else what happens instead."""
    from media_pipeline.runtimes import cpu_flags

    if precision != "bf16" or {"avx512_bf16", "amx_bf16"} & cpu_flags():
        return ""
    return "no bf16 units: OpenVINO runs fp32" if runtime == "openvino" else "no bf16 units: emulated"


def embed_by_runtime(files: list[dict], repeats: int) -> RuntimeRun:
    """Each backend on identical pixels (draft decoded), timed alone, median of
    `repeats`; one backend loaded at a time."""
    import gc

    from django.core.files.storage import default_storage

    from media_pipeline.embedder import ClipEmbedder
    from media_pipeline.images import load_image
    from media_pipeline.runtimes import choose, installed

    reference = ClipEmbedder(str(vit_b_32()), REFERENCE[1], EMBED_BATCH, runtime=REFERENCE[0])
    full, draft = [], []
    for f in files[:FIDELITY_IMAGES]:
        with default_storage.open(f["storage_key"]) as file:
            full.append(reference.preprocess(load_image(file, min_side=0)[0]))
        with default_storage.open(f["storage_key"]) as file:
            draft.append(reference.preprocess(load_image(file)[0]))
    full_reference = reference.embed_pixels(full)
    del reference
    vectors, rates, text_ms, notes = {}, {}, {}, {}
    for runtime, precision in BACKENDS:
        if not installed(runtime):
            notes[(runtime, precision)] = f"{runtime} is not installed"
            continue
        embedder = ClipEmbedder(str(vit_b_32()), precision, EMBED_BATCH, runtime=runtime)
        embedder.embed_pixels(draft[:EMBED_BATCH])  # warm-up (and an ONNX export's first load)
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            vectors[(runtime, precision)] = embedder.embed_pixels(draft)
            timings.append(time.perf_counter() - started)
        rates[(runtime, precision)] = len(draft) / median(timings)
        text_ms[(runtime, precision)] = timed_ms(
            lambda embedder=embedder: embedder.embed_texts([TEXT_QUERY]), TEXT_RUNS
        )
        notes[(runtime, precision)] = _runs_natively(runtime, precision)
        print(f"{runtime} {precision}: {rates[(runtime, precision)]:.1f} images/s alone", flush=True)
        del embedder
        gc.collect()
    chosen = choose()
    return RuntimeRun(vectors, rates, text_ms, notes, full_reference, len(draft), (chosen.runtime, chosen.precision))


def keeps_fidelity(vectors: np.ndarray, reference: np.ndarray) -> bool:
    raw, centred = cosines(vectors, reference)
    return bool(raw.mean() >= TARGET_MEAN_COS and centred.mean() >= TARGET_CENTRED_MEAN_COS)


def runtime_table(run: RuntimeRun, repeats: int) -> Table:
    """The runtimes side by side: speed alone and fidelity to torch fp32 on identical pixels."""
    from media_pipeline.runtimes import cpu_class, vector_units

    reference = run.vectors[REFERENCE]
    table = Table(
        "fidelity",
        f"The runtimes side by side: ViT-B/32 image tower, batch {EMBED_BATCH}, identical pixels (fidelity target: "
        f"mean cos to torch fp32 >= {TARGET_MEAN_COS} raw and >= {TARGET_CENTRED_MEAN_COS} centred)",
        [
            "runtime",
            "precision",
            "images/s alone",
            "x torch fp32",
            "text query ms",
            "mean cos",
            "centred mean",
            "centred min",
            "fidelity",
            "",
            "note",
        ],
    )
    faithful = {
        backend: rate
        for backend, rate in run.rates.items()
        if keeps_fidelity(run.vectors[backend], reference) and not run.notes[backend]
    }
    fastest = max(faithful, key=faithful.__getitem__) if faithful else None
    for backend in BACKENDS:
        if backend not in run.rates:
            table.add(*backend, "", "", "", "", "", "", "", "", run.notes[backend])
            continue
        raw, centred = cosines(run.vectors[backend], reference)
        marks = [
            mark
            for mark, on in (("default here", backend == run.default), ("fastest faithful", backend == fastest))
            if on
        ]
        table.add(
            *backend,
            run.rates[backend],
            f"{run.rates[backend] / run.rates[REFERENCE]:.2f}x",
            run.text_ms[backend],
            float(raw.mean()),
            float(centred.mean()),
            float(centred.min()),
            "met" if keeps_fidelity(run.vectors[backend], reference) else "missed",
            ", ".join(marks),
            run.notes[backend],
        )
    raw, centred = cosines(run.vectors[run.default], run.full_reference)
    table.notes.append(
        f"{run.images} of the ingest images, draft-decoded, median of {repeats}; one backend loaded at a time. "
        f"This CPU: {', '.join(vector_units()) or 'no AVX2'}, so its default is the `{cpu_class()}` order of "
        "media_pipeline/runtimes.py. "
        + (default_verdict(run, fastest) if fastest else "No backend kept fidelity here.")
        + f" The default with draft decoding against torch fp32 at full-size decoding: mean cos {raw.mean():.4f}, "
        f"centred {centred.mean():.3f}. The ViT-B/32-shaped model has random weights and maps different images to "
        "vectors 0.93-0.99 apart, so the centred cosines (both vectors minus the reference's mean) are the stricter "
        "check."
    )
    return table


def default_verdict(run: RuntimeRun, fastest: tuple[str, str]) -> str:
    """Whether this CPU's default is the fastest faithful backend here: on
    images within DEFAULT_SLACK of the fastest, and no slower on a text query
    than the fastest's."""
    if run.default == fastest:
        return f"The default is the fastest that keeps fidelity here ({' '.join(fastest)})."
    images = run.rates[run.default] / run.rates[fastest]
    text = run.text_ms[run.default] / run.text_ms[fastest]
    fits = images >= 1 - DEFAULT_SLACK and text <= 1
    return (
        f"The default ({' '.join(run.default)}) against the fastest faithful on images ({' '.join(fastest)}): "
        f"{images:.2f}x its images/s, {text:.2f}x its text query time: "
        + (
            f"it stays the default (within {DEFAULT_SLACK:.0%} on images, no slower on text)."
            if fits
            else "CPU_DEFAULTS should change here."
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    use_bench_database("stockmind_bench_ingest")
    shutil.rmtree(MEDIA_DIR, ignore_errors=True)
    BENCH_LOG_DIR.mkdir(parents=True, exist_ok=True)
    os.environ["MEDIA_ROOT"] = str(MEDIA_DIR)
    os.environ["CLIP_MODEL"] = str(vit_b_32())
    clear_clip_settings()
    set_up_django()
    files = store_images(args.images)
    seconds, peaks = ingest_rounds(files, args.rounds)
    runtimes = embed_by_runtime(files, args.rounds)
    emit(ingest_table(args, seconds, cosines_to_baseline(args.rounds), runtimes))
    emit(runtime_table(runtimes, args.rounds))
    emit(memory_table(peaks))


def ingest_rounds(files: list[dict], rounds: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Each configuration's seconds per round, through a worker of its own
    warmed up first; the tuned worker's peak memory."""
    seconds: dict[str, list[float]] = {name: [] for name in CONFIGS}
    peaks: dict[str, float] = {}
    print(f"{len(files)} images, {rounds} rounds, torch threads per worker: torch's default", flush=True)
    for round_ in range(rounds):
        for n, (name, (batch_size, env)) in enumerate(CONFIGS.items()):
            worker = Worker([QUEUE_MEDIA], env, BENCH_LOG_DIR / f"ingest-{n}.log")
            try:
                ingest(f"warm-{round_}-{n}", files[:WARM_UP_IMAGES], batch_size)
                elapsed = ingest(f"run-{round_}-{n}", files, batch_size)
                if name == TUNED:
                    peaks = worker.peak_rss_mb()
            finally:
                worker.stop()
            seconds[name].append(elapsed)
            print(f"round {round_ + 1}: {len(files) / elapsed:6.1f} images/s  {name}", flush=True)
    return seconds, peaks


def cosines_to_baseline(rounds: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each configuration's vectors of the last round against the baseline's,
    image by image: (raw, centred) cosines."""
    last = rounds - 1
    baseline_vectors = vectors_by_file(f"run-{last}-0")
    return {
        name: cosines(*aligned(vectors_by_file(f"run-{last}-{n}"), baseline_vectors)) for n, name in enumerate(CONFIGS)
    }


def ingest_table(
    args,
    seconds: dict[str, list[float]],
    similarity: dict[str, tuple[np.ndarray, np.ndarray]],
    runtimes: RuntimeRun,
) -> Table:
    baseline_rate = args.images / median(seconds[BASELINE])
    table = Table(
        "ingest",
        f"Image ingest end to end: {args.images} JPEGs of 800-3000 px through a Celery worker, median of {args.rounds}",
        ["configuration", "images/s", "x baseline", "cos to baseline: mean", "min", "centred mean", "centred min"],
    )
    for name in CONFIGS:
        rate = args.images / median(seconds[name])
        table.add(
            name,
            rate,
            f"{rate / baseline_rate:.1f}x",
            *(float(f(c)) for c in similarity[name] for f in (np.mean, np.min)),
        )
    tuned_rate = args.images / median(seconds[TUNED])
    alone = runtimes.rates.get(runtimes.default, float("nan"))
    efficiency = tuned_rate / alone
    table.notes.append(
        f"Pipeline efficiency: the tuned ingest's {tuned_rate:.1f} images/s over the model's own {alone:.1f} "
        f"({' '.join(runtimes.default)}, batch {EMBED_BATCH}, in this run's runtime table) = {efficiency:.2f}; target "
        f">= {TARGET_EFFICIENCY} ({verdict(efficiency, TARGET_EFFICIENCY, at_least=True)}). Tuned over naive: "
        f"{tuned_rate / baseline_rate:.1f}x; target >= {TARGET_SPEEDUP:.0f}x "
        f"({verdict(tuned_rate / baseline_rate, TARGET_SPEEDUP, at_least=True)}). Cosines: each configuration's "
        "vectors against the baseline's, image by image."
    )
    return table


def memory_table(peaks: dict[str, float]) -> Table:
    table = Table(
        "memory",
        f"Worker memory: peak resident set of the tuned worker after the ingest (target: <= {TARGET_WORKER_MIB:,} MiB)",
        ["process", "peak RSS, MiB", "verdict"],
    )
    for process, mib in peaks.items():
        role = "pool child (loads the model, embeds)" if process.startswith("child") else "main (consumer)"
        table.add(f"worker {role}", mib, verdict(mib, TARGET_WORKER_MIB, at_least=False))
    return table


if __name__ == "__main__":
    main()
