"""Sampling the frames of a video worth embedding (PyAV).

One frame every `VIDEO_SAMPLE_SECONDS`, plus the first frame of each scene
change, capped at `VIDEO_MAX_FRAMES`; a frame nearly identical to the last one
kept is dropped. Kept frames come out upright (rotation metadata honoured) and
already scaled to CLIP's input size, so memory stays small for 4K input.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import Image

from catalog.errors import FileRejected
from media_pipeline.probe import duration_ms

logger = logging.getLogger(__name__)

# Frames are compared as 32x32 greyscale thumbnails, by mean absolute
# difference on a 0-255 scale.
SIGNATURE_SIDE = 32
# Above this, consecutive decoded frames belong to different shots.
SCENE_CHANGE_DIFFERENCE = 30.0
# Below this, a sampled frame adds nothing to the last kept one.
NEAR_IDENTICAL_DIFFERENCE = 2.0
# Scene changes are looked for this many times a second of video (each look
# compares a frame's signature with the last one's), not on every frame.
SCENE_CHECKS_PER_SECOND = 10
# Up to this many pixels a frame, decoding threads split each frame (slices),
# not run frames ahead: for the 720p clip of bench/video.py, 1.23 s of CPU
# where threads across frames take 1.65 for the same frames, CPU the worker's
# embedding needs meanwhile. Larger frames are decoded with both, decoding
# then being the longer part.
SLICE_THREADS_MAX_PIXELS = 1920 * 1080


@dataclass
class SampledFrame:
    index: int
    timestamp_ms: int
    is_keyframe: bool
    image: Image.Image  # RGB, upright, short side at CLIP's input size


@dataclass
class SampledVideo:
    frames: list[SampledFrame]
    width: int  # upright display size
    height: int
    duration_ms: int | None
    decoded: int = 0
    sampled: int = 0
    warning: str = ""


# 8-bit formats whose first plane is the luma: the signature is read from it
# directly, a tiny fraction of the cost of scaling every decoded frame.
LUMA_FIRST_FORMATS = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"}
# Every this-many rows and columns of the luma plane are averaged into the signature.
LUMA_STEP = 4


def _signature(frame) -> np.ndarray:
    """A SIGNATURE_SIDE-square greyscale summary of the frame: block means of its
    luma plane where it has one, else a scaled greyscale copy."""
    if frame.format.name in LUMA_FIRST_FORMATS:
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        luma = luma[::LUMA_STEP, ::LUMA_STEP]
        rows, cols = luma.shape[0] // SIGNATURE_SIDE, luma.shape[1] // SIGNATURE_SIDE
        if rows and cols:
            blocks = luma[: rows * SIGNATURE_SIDE, : cols * SIGNATURE_SIDE].astype(np.float32)
            return blocks.reshape(SIGNATURE_SIDE, rows, SIGNATURE_SIDE, cols).mean(axis=(1, 3))
    small = frame.reformat(width=SIGNATURE_SIDE, height=SIGNATURE_SIDE, format="gray")
    return small.to_ndarray().astype(np.float32)


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


def _frame_seconds(frame, time_base) -> float | None:
    if frame.time is not None:
        return float(frame.time)
    if frame.pts is not None and time_base is not None:
        return float(frame.pts * time_base)
    return None


def sample_video(
    file: IO[bytes],
    *,
    sample_seconds: float,
    max_frames: int,
    max_seconds: float,
    output_size: Callable[[int, int], tuple[int, int]],
    on_keep: Callable[[SampledFrame], None] | None = None,
) -> SampledVideo:
    """Decode `file` and return its kept frames. `output_size(width, height)`
    gives the size each kept frame is scaled to; `on_keep` is called with each
    kept frame as soon as it is kept. Raises FileRejected."""
    import av

    try:
        container = av.open(file, mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise FileRejected(f"The video cannot be read ({exc}).", code="corrupt_file") from exc
    with container:
        if not container.streams.video:
            raise FileRejected("The file has no video stream (is it audio only?).", code="unsupported_media_type")
        stream = container.streams.video[0]
        large = (stream.codec_context.width or 0) * (stream.codec_context.height or 0) > SLICE_THREADS_MAX_PIXELS
        stream.thread_type = "AUTO" if large else "SLICE"
        frame_rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        if frame_rate and sample_seconds * frame_rate >= 2:
            # Most frames will not be sampled: skip decoding frames that no other
            # frame refers to (B-frames), a large share of the work.
            stream.codec_context.skip_frame = "NONREF"
        # Frames end up at CLIP's 224 px: the deblocking filter's work would
        # not survive the downscale (about 15% of H.264 decoding).
        stream.codec_context.options = {"skip_loop_filter": "all"}

        result = SampledVideo(frames=[], width=0, height=0, duration_ms=duration_ms(container, stream))
        next_due = next_check = 0.0
        previous = last_kept = None
        last_seconds = 0.0
        try:
            for frame in container.decode(stream):
                result.decoded += 1
                seconds = _frame_seconds(frame, stream.time_base)
                seconds = last_seconds if seconds is None else max(seconds, 0.0)
                last_seconds = seconds
                if seconds > max_seconds:
                    # A container that does not state its duration is measured as it plays.
                    raise FileRejected(f"The video runs past {max_seconds:.0f} s, the limit.", code="video_too_long")
                due = seconds + 1e-6 >= next_due
                if not due and seconds < next_check:
                    continue
                next_check = seconds + 1 / SCENE_CHECKS_PER_SECOND
                signature = _signature(frame)
                scene_change = previous is not None and _difference(signature, previous) > SCENE_CHANGE_DIFFERENCE
                previous = signature
                if not (due or scene_change):
                    continue
                if due:
                    next_due = (math.floor(seconds / sample_seconds + 1e-6) + 1) * sample_seconds
                result.sampled += 1
                if last_kept is not None and _difference(signature, last_kept) < NEAR_IDENTICAL_DIFFERENCE:
                    continue
                last_kept = signature
                result.frames.append(_keep(frame, len(result.frames), seconds, output_size, result))
                if on_keep is not None:
                    on_keep(result.frames[-1])
                if len(result.frames) >= max_frames:
                    break
        except av.error.FFmpegError as exc:
            if not result.frames:
                raise FileRejected(f"The video cannot be decoded ({exc}).", code="corrupt_file") from exc
            result.warning = f"Decoding stopped at {last_seconds:.1f} s on corrupt data; frames up to there are kept."
            logger.warning("video decoding stopped early: %s", exc)
        if not result.frames:
            raise FileRejected("The video has no decodable frames.", code="corrupt_file")
        if result.duration_ms is None or result.duration_ms <= 0:
            result.duration_ms = int(last_seconds * 1000)
    return result


def _rotation(frame) -> int:
    return int(getattr(frame, "rotation", 0) or 0) % 360


def _upright(frame, output_size) -> Image.Image:
    width, height = output_size(frame.width, frame.height)
    # Area averaging: the right filter for a 3x or larger downscale, at 40% of bicubic's cost.
    image = frame.to_image(width=width, height=height, interpolation="AREA")
    if _rotation(frame):
        # frame.rotation is the counter-clockwise turn that makes the frame upright.
        image = image.rotate(_rotation(frame), expand=True)
    return image


def _keep(frame, index: int, seconds: float, output_size, result: SampledVideo) -> SampledFrame:
    if not result.width:
        upright_swapped = _rotation(frame) in (90, 270)
        result.width, result.height = (frame.height, frame.width) if upright_swapped else (frame.width, frame.height)
    return SampledFrame(index, round(seconds * 1000), bool(frame.key_frame), _upright(frame, output_size))


def frames_at(
    file: IO[bytes], timestamps_ms: list[int], output_size: Callable[[int, int], tuple[int, int]]
) -> dict[int, Image.Image]:
    """The frames that `sample_video` kept at `timestamps_ms`, decoded again
    (upright, scaled by `output_size`): for each timestamp, the first frame
    at or after it. Timestamps past the end are missing from the result."""
    import av

    wanted = sorted(set(timestamps_ms))
    found: dict[int, Image.Image] = {}
    try:
        with av.open(file, mode="r") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            last_seconds = 0.0
            for frame in container.decode(stream):
                seconds = _frame_seconds(frame, stream.time_base)
                last_seconds = last_seconds if seconds is None else max(seconds, 0.0)
                while wanted and round(last_seconds * 1000) >= wanted[0]:
                    found[wanted.pop(0)] = _upright(frame, output_size)
                if not wanted:
                    break
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise FileRejected(f"The video cannot be decoded again ({exc}).", code="corrupt_file") from exc
    return found
