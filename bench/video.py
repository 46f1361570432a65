"""A 60-second 1280x720 H.264 clip at 30 fps, from upload to `ready`.

    .venv/bin/python bench/video.py [--rounds 3]

Generates the clip once (under .data/bench/; ten 6-second shots, each a
slow pan over a different scene), then, per round, uploads it through the
real HTTP API (gunicorn) and times until the item is `ready`, processed by a
real Celery worker (warm: model loaded). Reports the median and the frames
decoded, sampled and kept, read from the worker's log line for the item.

In the same run, in this process: decoding alone (the worker's sampling of
the clip, every frame it keeps scaled for CLIP) and embedding alone (those
kept frames, on the backend a worker gets here). The worker overlaps the two,
so upload to ready is held to the larger of them.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    BENCH_DIR,
    BENCH_LOG_DIR,
    Server,
    Worker,
    api_session,
    clear_clip_settings,
    median,
    new_tenant,
    set_up_django,
    upload,
    use_bench_database,
    vit_b_32,
    wait_settled,
)
from bench.report import Table, emit, verdict
from config.queues import QUEUE_MEDIA

CLIP = BENCH_DIR / "clip-720p-60s.mp4"
WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 30, 60
SHOT_SECONDS = 6
TARGET_RATIO = 1.3  # upload to ready over the larger of decoding alone and embedding alone
SETTLE_TIMEOUT_S = 300
UPLOAD_TIMEOUT_S = 120


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


def upload_clip(session, server: Server, data: bytes, sku: str) -> int:
    """Upload the clip for a new product (the same bytes for the same product
    would return the existing item)."""
    session.post(server.url("/api/v1/products/"), json={"sku": sku, "title": sku}, timeout=30)
    response = upload(session, server, sku, "clip.mp4", data, "video/mp4", timeout=UPLOAD_TIMEOUT_S)
    response.raise_for_status()
    return response.json()["id"]


@dataclass
class Rounds:
    seconds: list[float]  # upload to ready, each round
    frames: tuple[int, int, int]  # decoded, sampled, kept in the last round
    duration_ms: int  # as stored, with the size
    width: int
    height: int


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    use_bench_database("stockmind_bench_video")
    os.environ["MEDIA_ROOT"] = str(BENCH_DIR / "video-media")
    os.environ["CLIP_MODEL"] = str(vit_b_32())
    clear_clip_settings()
    BENCH_LOG_DIR.mkdir(parents=True, exist_ok=True)
    set_up_django()
    started = time.perf_counter()
    data = make_clip().read_bytes()
    print(f"clip: {len(data) / 1e6:.1f} MB ({time.perf_counter() - started:.0f} s to have it)", flush=True)
    _, key = new_tenant("bench-video", "bench video")
    rounds = upload_rounds(data, key, args.rounds)
    emit(video_table(args, len(data), rounds, alone(args.rounds)))


@dataclass
class Alone:
    decode_s: float  # sampling the clip, median of the rounds
    embed_s: float  # embedding the frames it kept
    kept: int
    backend: str


def alone(rounds: int) -> Alone:
    """Decoding and embedding the clip one after the other, each timed alone."""
    from django.conf import settings

    from media_pipeline.embedder import get_embedder
    from media_pipeline.video import sample_video

    embedder = get_embedder()
    decode, embed = [], []
    for _ in range(rounds + 1):  # the first warms up
        with open(CLIP, "rb") as file:
            started = time.perf_counter()
            sampled = sample_video(
                file,
                sample_seconds=settings.VIDEO_SAMPLE_SECONDS,
                max_frames=settings.VIDEO_MAX_FRAMES,
                max_seconds=settings.MAX_VIDEO_SECONDS,
                output_size=embedder.preprocess.resized_size,
            )
            decode.append(time.perf_counter() - started)
        started = time.perf_counter()
        embedder.embed_images([frame.image for frame in sampled.frames])
        embed.append(time.perf_counter() - started)
    return Alone(median(decode[1:]), median(embed[1:]), len(sampled.frames), str(embedder.backend))


def upload_rounds(data: bytes, key: str, rounds: int) -> Rounds:
    """The clip uploaded once to warm the worker up (it loads the model), then
    once a round, each timed until ready."""
    from catalog.models import Media

    log = BENCH_LOG_DIR / "video-worker.log"
    worker = Worker([QUEUE_MEDIA], {}, log, loglevel="INFO")
    server = Server({}, 1, BENCH_LOG_DIR / "video-gunicorn.log")
    session = api_session(key)
    seconds, counts = [], []
    try:
        wait_settled([upload_clip(session, server, data, "warm-up")], SETTLE_TIMEOUT_S)
        for round_ in range(rounds):
            started = time.perf_counter()
            media_id = upload_clip(session, server, data, f"round-{round_}")
            seconds.append(wait_settled([media_id], SETTLE_TIMEOUT_S) - started)
            counts.append(_frame_counts(log, media_id))
            print(f"round {round_ + 1}: {seconds[-1]:.2f} s, frames decoded/sampled/kept {counts[-1]}", flush=True)
        media = Media.objects.get(pk=media_id)
    finally:
        server.stop()
        worker.stop()
    return Rounds(seconds, counts[-1], media.duration_ms, media.width, media.height)


def video_table(args, size: int, rounds: Rounds, parts: Alone) -> Table:
    from django.conf import settings

    taken = median(rounds.seconds)
    decoded, sampled, kept = rounds.frames
    ratio = taken / max(parts.decode_s, parts.embed_s)
    table = Table(
        "video",
        f"Video: a {SECONDS} s {WIDTH}x{HEIGHT} H.264 clip at {FPS} fps ({size / 1e6:.1f} MB), upload to ready, "
        f"median of {args.rounds} ({parts.backend})",
        [
            "upload to ready, s",
            "decode alone, s",
            "embed alone, s",
            "x the larger",
            "target",
            "verdict",
            "x real time",
            "frames in clip",
            "decoded",
            "sampled",
            "kept",
        ],
    )
    table.add(
        taken,
        parts.decode_s,
        parts.embed_s,
        f"{ratio:.2f}x",
        f"<= {TARGET_RATIO}x",
        verdict(ratio, TARGET_RATIO, at_least=False),
        f"{SECONDS / taken:.0f}x",
        SECONDS * FPS,
        decoded,
        sampled,
        kept,
    )
    table.notes.append(
        f"Sampling: one frame every {settings.VIDEO_SAMPLE_SECONDS:g} s plus scene changes, near-identical frames "
        f"dropped; non-reference frames are not decoded. Stored: {rounds.duration_ms} ms, "
        f"{rounds.width}x{rounds.height}. Decode alone and embed alone: this process, the same clip, one after "
        f"the other ({parts.kept} frames kept), median of {args.rounds}."
    )
    return table


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
