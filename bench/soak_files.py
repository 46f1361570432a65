"""Files for the soak runs, made on the fly: photos that differ from one another
(gradients, bands and shapes at several sizes, JPEG or PNG), short clips with a
few scenes, and files that pass for media by name only."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class SoakFile:
    name: str  # with the extension that says its kind
    kind: str  # "image" or "video": where its S3 key puts it
    data: bytes
    content_type: str
    bad: bool = False  # must end `failed` with a reason


def image(seed: int) -> SoakFile:
    """A product-like photo: a gradient backdrop, a band, a few shapes; JPEG
    mostly, PNG one time in eight; 160 to 512 px a side."""
    rng = np.random.default_rng(seed)
    width, height = (int(v) for v in rng.integers(160, 512, 2))
    colours = rng.integers(0, 255, (2, 3))
    ramp = np.linspace(0, 1, width)[None, :, None]
    pixels = np.repeat((colours[0] * (1 - ramp) + colours[1] * ramp).astype(np.uint8), height, axis=0)
    picture = Image.fromarray(pixels)
    draw = ImageDraw.Draw(picture)
    for _ in range(int(rng.integers(1, 6))):
        x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        x1, y1 = x0 + int(rng.integers(10, width // 2 + 10)), y0 + int(rng.integers(10, height // 2 + 10))
        fill = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    noise = rng.integers(-6, 7, (height, width, 3), dtype=np.int16)
    picture = Image.fromarray(np.clip(np.asarray(picture) + noise, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    if seed % 8 == 7:
        picture.save(buffer, "PNG")
        return SoakFile(f"photo-{seed}.png", "image", buffer.getvalue(), "image/png")
    picture.save(buffer, "JPEG", quality=int(rng.integers(70, 95)))
    return SoakFile(f"photo-{seed}.jpg", "image", buffer.getvalue(), "image/jpeg")


def video(seed: int, seconds: float = 3.0) -> SoakFile:
    """A 160x120 H.264 clip at 10 fps, a new scene every second."""
    import av

    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        scene = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        for index in range(int(seconds * 10)):
            if index % 10 == 0:
                scene = np.repeat(np.repeat(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), 20, 0), 20, 1)
            frame = np.roll(scene, index % 10 * 4, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return SoakFile(f"clip-{seed}.mp4", "video", buffer.getvalue(), "video/mp4")


def bad_files() -> list[SoakFile]:
    """Files with a media name and no usable media in them: each must end
    `failed` with its reason, never lost and never taking the worker down."""
    import struct
    import zlib

    jpeg = image(0).data if image(0).name.endswith(".jpg") else image(1).data
    clip = video(7).data

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 49 * 16))
        + chunk(b"IEND", b"")
    )
    rng = np.random.default_rng(99)
    return [
        SoakFile("truncated.jpg", "image", jpeg[: len(jpeg) // 3], "image/jpeg", bad=True),
        SoakFile("notes.jpg", "image", b"these are not the pixels you are looking for\n" * 20, "image/jpeg", bad=True),
        SoakFile("empty.png", "image", b"", "image/png", bad=True),
        SoakFile("bomb.png", "image", bomb, "image/png", bad=True),
        SoakFile("noise.webp", "image", rng.bytes(4096), "image/webp", bad=True),
        SoakFile("photo-as-clip.mp4", "video", jpeg, "video/mp4", bad=True),
        SoakFile("truncated.mp4", "video", clip[: len(clip) // 4], "video/mp4", bad=True),
        SoakFile("noise.mov", "video", rng.bytes(8192), "video/quicktime", bad=True),
    ]
