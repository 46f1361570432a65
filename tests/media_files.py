"""Real files for upload tests, made on the fly: valid ones and broken ones."""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction

import av
import numpy as np
from PIL import Image


def jpeg_bytes(width: int = 320, height: int = 240, color=(200, 30, 40), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(0, 25, (height, width, 3)) + np.array(color), 0, 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png_bytes(width: int = 64, height: int = 48, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), "blue" if mode == "RGB" else 0).save(buffer, format="PNG")
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    data = jpeg_bytes(640, 480)
    return data[: len(data) // 2]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_claiming_size(width: int, height: int) -> bytes:
    """A small, well-formed PNG header that claims a huge canvas: a
    decompression bomb must be refused from the header, before decoding."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * (3 * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(row * 16))
        + _png_chunk(b"IEND", b"")
    )


def mp4_video(seconds: float = 1.0, width: int = 160, height: int = 120, fps: int = 10) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(int(seconds * fps)):
            shade = int(255 * index / max(1, seconds * fps))
            image = np.full((height, width, 3), (shade, 80, 255 - shade), dtype="uint8")
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def mp4_audio_only(seconds: float = 1.0, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        samples = int(seconds * rate)
        tone = (np.sin(np.arange(samples) * 2 * np.pi * 440 / rate) * 0.3).astype("float32")
        step = 1024
        for start in range(0, samples, step):
            chunk = tone[start : start + step].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _halves(width: int, height: int, left=(220, 30, 30), right=(30, 30, 220)) -> Image.Image:
    """Left half red, right half blue: shows which way an image was turned."""
    pixels = np.zeros((height, width, 3), dtype="uint8")
    pixels[:, : width // 2] = left
    pixels[:, width // 2 :] = right
    return Image.fromarray(pixels)


def jpeg_with_orientation(orientation: int, width: int = 120, height: int = 60) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(_halves(width, height), "JPEG", exif=exif.tobytes(), quality=92)


def cmyk_jpeg() -> bytes:
    return _save(_halves(96, 64).convert("CMYK"), "JPEG", quality=92)


def rgba_png() -> bytes:
    image = _halves(80, 60).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize((80, 60)))
    return _save(image, "PNG")


def palette_png_with_transparency() -> bytes:
    image = _halves(80, 60).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return _save(image, "PNG", transparency=0)


def grey16_png() -> bytes:
    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    return _save(Image.fromarray(ramp), "PNG")  # uint16 -> mode I;16


def greyscale_jpeg() -> bytes:
    return _save(_halves(64, 64).convert("L"), "JPEG")


def animated(fmt: str) -> bytes:
    frames = [_halves(64, 48, left=(i * 60, 0, 0)) for i in range(4)]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def video_bytes(
    fmt: str = "mp4",
    codec: str = "libx264",
    seconds: float = 3.0,
    width: int = 160,
    height: int = 120,
    fps: int = 10,
    rotation: int = 0,
    noise: bool = False,
) -> bytes:
    """A generated clip, red on the left and blue on the right, the red half's
    shade changing every second; random noise frames (nothing alike) when `noise`."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    pix_fmt = "yuv420p"
    with av.open(buffer, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(int(seconds * fps)):
            if noise:
                image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            else:
                second = index // fps
                image = np.asarray(_halves(width, height, left=(210, 40 + (second * 50) % 200, 30)))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
