"""The file formats Stock Mind accepts, and the size limit of each kind: one
table read by the content probe, the object-key layout, presigned uploads, the
S3 event configuration and the API's help texts."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from catalog.models import Media


@dataclass(frozen=True)
class FileFormat:
    name: str  # as a client reads it: "JPEG"
    kind: str  # Media.Kind
    content_type: str
    extensions: tuple[str, ...]  # the first one is given to stored files
    pil_format: str = ""  # Pillow's name of the format, for images

    @property
    def extension(self) -> str:
        return self.extensions[0]


JPEG = FileFormat("JPEG", Media.Kind.IMAGE, "image/jpeg", (".jpg", ".jpeg"), "JPEG")
PNG = FileFormat("PNG", Media.Kind.IMAGE, "image/png", (".png",), "PNG")
GIF = FileFormat("GIF", Media.Kind.IMAGE, "image/gif", (".gif",), "GIF")
WEBP = FileFormat("WebP", Media.Kind.IMAGE, "image/webp", (".webp",), "WEBP")
MP4 = FileFormat("MP4", Media.Kind.VIDEO, "video/mp4", (".mp4",))
MOV = FileFormat("MOV", Media.Kind.VIDEO, "video/quicktime", (".mov",))
WEBM = FileFormat("WebM", Media.Kind.VIDEO, "video/webm", (".webm",))
FORMATS = (JPEG, PNG, GIF, WEBP, MP4, MOV, WEBM)

BY_EXTENSION = {extension: fmt for fmt in FORMATS for extension in fmt.extensions}
BY_CONTENT_TYPE = {fmt.content_type: fmt for fmt in FORMATS}


def of_kind(kind: str) -> list[FileFormat]:
    return [fmt for fmt in FORMATS if fmt.kind == kind]


def describe(kind: str | None = None) -> str:
    """The accepted formats in words: 'JPEG, PNG, GIF or WebP images'."""
    kinds = [kind] if kind else [Media.Kind.IMAGE, Media.Kind.VIDEO]
    parts = []
    for each in kinds:
        names = [fmt.name for fmt in of_kind(each)]
        listed = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        parts.append(f"{listed} {each}s")
    return ", ".join(parts)


def max_bytes(kind: str) -> int:
    """The largest file of `kind` that is accepted (MAX_IMAGE_BYTES, MAX_UPLOAD_BYTES)."""
    return settings.MAX_IMAGE_BYTES if kind == Media.Kind.IMAGE else settings.MAX_UPLOAD_BYTES
