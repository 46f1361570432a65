"""A 60-second 1280x720 H.264 clip at 30 fps, from upload to `ready`.

    .venv/bin/python bench/video.py [--rounds 3]

Generates the clip once (under .data/bench/; ten 6-second shots, each a
slow pan over a different scene), then, per round, uploads it through the
real HTTP API (gunicorn) and times until the item is `ready`, processed by a
real Celery worker (warm: model loaded). Reports the median and the frames
decoded, sampled and kept, read from the worker's log line for the item.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    ROOT,
    Server,
    Table,
    Worker,
    emit,
    median,
    new_tenant,
    use_bench_database,
    verdict,
    vit_b_32,
    wait_settled,
)
from config.queues import QUEUE_MEDIA

BENCH_DIR = ROOT / ".data" / "bench"
CLIP = BENCH_DIR / "clip-720p-60s.mp4"
WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 30, 60
SHOT_SECONDS = 6
TARGET_SECONDS = 4.0


def make_clip() -> Path:
    """Ten shots; in each, a camera pans across a scene with an object in it."""
    import av

    if CLIP.exists():
        return CLIP
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    partial = CLIP.with_suffix(".partial.mp4")
    with av.open(str(partial), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for _ in range(SECONDS // SHOT_SECONDS):
            # A scene twice as wide as the frame: a gradient, a band, an object.
            scene = np.zeros((HEIGHT, 2 * WIDTH, 3), dtype=np.uint8)
            colours = rng.integers(0, 255, (2, 3))
            ramp = np.linspace(0, 1, 2 * WIDTH)[None, :, None]
            scene[:] = (colours[0] * (1 - ramp) + colours[1] * ramp).astype(np.uint8)
            band = int(rng.integers(0, HEIGHT - 120))
            scene[band : band + 120] = rng.integers(0, 255, 3)
            x, y = int(rng.integers(200, 2 * WIDTH - 400)), int(rng.integers(100, HEIGHT - 300))
            scene[y : y + 200, x : x + 200] = rng.integers(0, 255, 3)
            texture = rng.integers(-8, 8, scene.shape, dtype=np.int16)
            scene = np.clip(scene.astype(np.int16) + texture, 0, 255).astype(np.uint8)
            for index in range(SHOT_SECONDS * FPS):
                offset = int(index * WIDTH / (SHOT_SECONDS * FPS))
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(scene[:, offset : offset + WIDTH]), "rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(CLIP)
    return CLIP


def upload(server: Server, key: str, data: bytes, sku: str) -> int:
    """Upload the clip for a new product (the same bytes for the same product
    would return the existing item)."""
    import requests

    headers = {"Authorization": f"Bearer {key}"}
    requests.post(server.url("/api/v1/products/"), headers=headers, json={"sku": sku, "title": sku}, timeout=30)
    response = requests.post(
        server.url("/api/v1/media/"),
        headers=headers,
        data={"product": sku},
        files={"file": ("clip.mp4", data, "video/mp4")},
        timeout=120,
    )
    response.raise_for_status()
    return response.json()["id"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    use_bench_database("stockmind_bench_video")
    os.environ["MEDIA_ROOT"] = str(BENCH_DIR / "video-media")
    os.environ["CLIP_MODEL"] = str(vit_b_32())
    os.environ.pop("CLIP_PRECISION", None)
    (BENCH_DIR / "logs").mkdir(parents=True, exist_ok=True)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from catalog.models import Media

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    data = make_clip().read_bytes()
    print(f"clip: {len(data) / 1e6:.1f} MB ({time.perf_counter() - started:.0f} s to have it)", flush=True)
    _, key = new_tenant("bench-video", "bench video")

    log = BENCH_DIR / "logs" / "video-worker.log"
    worker = Worker([QUEUE_MEDIA], {}, log, loglevel="INFO")
    server = Server({}, 1, BENCH_DIR / "logs" / "video-gunicorn.log")
    seconds, counts = [], []
    try:
        wait_settled([upload(server, key, data, "warm-up")], timeout=300)  # warm-up: the worker loads the model
        for round_ in range(args.rounds):
            started = time.perf_counter()
            media_id = upload(server, key, data, f"round-{round_}")
            seconds.append(wait_settled([media_id], timeout=300) - started)
            counts.append(_frame_counts(log, media_id))
            print(f"round {round_ + 1}: {seconds[-1]:.2f} s, frames decoded/sampled/kept {counts[-1]}", flush=True)
        media = Media.objects.get(pk=media_id)
    finally:
        server.stop()
        worker.stop()

    taken = median(seconds)
    decoded, sampled, kept = counts[-1]
    table = Table(
        "video",
        f"Video: a {SECONDS} s {WIDTH}x{HEIGHT} H.264 clip at {FPS} fps ({len(data) / 1e6:.1f} MB), upload to ready, "
        f"median of {args.rounds}",
        ["upload to ready, s", "target", "verdict", "x real time", "frames in clip", "decoded", "sampled", "kept"],
    )
    table.add(
        taken,
        f"<= {TARGET_SECONDS:.0f} s",
        verdict(taken, TARGET_SECONDS, at_least=False),
        f"{SECONDS / taken:.0f}x",
        SECONDS * FPS,
        decoded,
        sampled,
        kept,
    )
    table.notes.append(
        f"Sampling: one frame every {settings.VIDEO_SAMPLE_SECONDS:g} s plus scene changes, near-identical frames "
        f"dropped; non-reference frames are not decoded. Stored: {media.duration_ms} ms, {media.width}x{media.height}."
    )
    emit(table)


def _frame_counts(log: Path, media_id: int) -> tuple[int, int, int]:
    pattern = re.compile(rf"video {media_id}: (\d+) frames decoded, (\d+) sampled, (\d+) kept")
    for _ in range(20):
        match = pattern.search(log.read_text())
        if match:
            return tuple(int(n) for n in match.groups())
        time.sleep(0.1)
    return (0, 0, 0)


if __name__ == "__main__":
    main()
