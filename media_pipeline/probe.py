"""What a file really is, read from its content: never from its name or the
client's content type. Used on upload, on S3 ingest and by the workers.

`probe(file, size)` returns a `Probe` or raises `FileRejected` with the code a
client sees (API.md): `unsupported_media_type`, `file_too_large`,
`image_too_large`, `corrupt_file`, `video_too_long`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from catalog import formats
from catalog.errors import FileRejected
from catalog.formats import GIF, JPEG, MOV, MP4, PNG, WEBM, WEBP, FileFormat
from catalog.models import Media

SNIFF_BYTES = 64


@dataclass(frozen=True)
class Probe:
    type: FileFormat
    width: int
    height: int
    duration_ms: int | None = None

    @property
    def kind(self) -> str:
        return self.type.kind


def sniff(head: bytes) -> FileFormat | None:
    """The file type from its first bytes (magic numbers)."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp":
        return MOV if head[8:12] == b"qt  " else MP4
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        # EBML: WebM declares DocType "webm"; a plain Matroska file is not accepted.
        return WEBM if b"webm" in head else None
    return None


def _read_head(file: IO[bytes]) -> bytes:
    file.seek(0)
    head = file.read(SNIFF_BYTES)
    file.seek(0)
    return head


def probe(file: IO[bytes], size: int, *, max_bytes: int | None = None, images_only: bool = False) -> Probe:
    max_bytes = max_bytes or settings.MAX_UPLOAD_BYTES
    if size > max_bytes:
        raise FileRejected(
            f"The file is {size} bytes; the limit is {max_bytes} bytes.",
            code="file_too_large",
            detail={"size": size, "limit": max_bytes},
        )
    if size == 0:
        raise FileRejected("The file is empty.", code="corrupt_file")
    file_type = sniff(_read_head(file))
    allowed = formats.describe(Media.Kind.IMAGE if images_only else None)
    if file_type is None or (images_only and file_type.kind != Media.Kind.IMAGE):
        raise FileRejected(f"The content is not a supported type ({allowed}).", code="unsupported_media_type")
    if file_type.kind == Media.Kind.IMAGE:
        limit = min(formats.max_bytes(Media.Kind.IMAGE), max_bytes)
        if size > limit:
            raise FileRejected(
                f"The image is {size} bytes; the limit for images is {limit} bytes.",
                code="file_too_large",
                detail={"size": size, "limit": limit},
            )
        return _probe_image(file, file_type)
    return _probe_video(file, file_type)


@contextmanager
def pillow_rejections() -> Iterator[None]:
    """Pillow's failures as FileRejected with the API's codes. Its
    decompression-bomb warning is an error here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            reason = f"The image has too many pixels to decode safely ({exc})."
            raise FileRejected(reason, code="image_too_large") from exc
        except UnidentifiedImageError as exc:
            raise FileRejected("The file is not an image Pillow can read.", code="corrupt_file") from exc
        except FileNotFoundError:
            raise  # the stored file is gone: not the content's fault
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise FileRejected(f"The image is truncated or corrupt ({exc}).", code="corrupt_file") from exc


def _check_pixels(width: int, height: int) -> None:
    max_side, max_pixels = settings.MAX_IMAGE_SIDE, settings.MAX_IMAGE_PIXELS
    if width > max_side or height > max_side or width * height > max_pixels:
        raise FileRejected(
            f"The image is {width}x{height} pixels; the limit is {max_side} px a side "
            f"and {max_pixels // 1_000_000} megapixels.",
            code="image_too_large",
            detail={"width": width, "height": height},
        )


def _probe_image(file: IO[bytes], file_type: FileFormat) -> Probe:
    file.seek(0)
    try:
        with pillow_rejections(), Image.open(file) as image:
            if image.format != file_type.pil_format:
                raise FileRejected("The file's content does not match its image type.", code="corrupt_file")
            width, height = image.size
            # The header alone decides the pixel limit, before any decoding.
            _check_pixels(width, height)
            # Decode everything (at 1/8 scale for JPEG: the draft mode reads
            # every byte, so truncation is caught, at a fraction of the cost).
            image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
        if file_type == PNG:
            # Pillow decodes a PNG without checking its chunks' checksums;
            # verify() does, so a damaged PNG is refused like other corrupt files.
            file.seek(0)
            with pillow_rejections(), Image.open(file) as image:
                image.verify()
    finally:
        file.seek(0)
    return Probe(file_type, width, height)


def _probe_video(file: IO[bytes], file_type: FileFormat) -> Probe:
    import av

    file.seek(0)
    try:
        with av.open(file, mode="r") as container:
            streams = container.streams.video
            if not streams:
                raise FileRejected("The file has no video stream (is it audio only?).", code="unsupported_media_type")
            stream = streams[0]
            length_ms = duration_ms(container, stream)
            if length_ms is not None and length_ms > settings.MAX_VIDEO_SECONDS * 1000:
                raise FileRejected(
                    f"The video lasts {length_ms / 1000:.0f} s; the limit is {settings.MAX_VIDEO_SECONDS} s.",
                    code="video_too_long",
                    detail={"duration_ms": length_ms},
                )
            # One decoded frame proves the stream is decodable; the worker does the rest.
            frame = next(container.decode(stream), None)
            if frame is None:
                raise FileRejected("The video stream has no decodable frame.", code="corrupt_file")
            width, height = frame.width, frame.height
    except FileRejected:
        raise
    except (av.error.FFmpegError, ValueError, StopIteration) as exc:
        raise FileRejected(f"The video cannot be read ({exc}).", code="corrupt_file") from exc
    finally:
        file.seek(0)
    return Probe(file_type, width, height, length_ms)


def duration_ms(container, stream) -> int | None:
    if stream.duration is not None and stream.time_base is not None:
        return int(stream.duration * stream.time_base * 1000)
    if container.duration is not None:
        return int(container.duration / 1000)  # container.duration is in microseconds
    return None


def check_unprobed(media: Media, file: IO[bytes]) -> None:
    """Check a stored object by its content if it was not checked before it
    was stored: direct uploads are probed on upload, objects that arrived
    another way (S3) here, in the worker, with the same rules."""
    if media.source != Media.Source.UPLOAD or media.width is None:
        size = file.seek(0, io.SEEK_END)
        file.seek(0)
        probed = probe(file, size)
        if probed.kind != media.kind:
            raise FileRejected(f"The content is a {probed.kind}, not a {media.kind}.", code="unsupported_media_type")
