"""Object keys for stored media. The layout is the S3 one of API.md for both
storages: clients/{tenant}/products/{sku}/media/{image|video}/{uuid}-{name}."""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.core.files.storage import default_storage
from django.db import transaction

from catalog import formats
from catalog.formats import FileFormat
from catalog.models import SKU_CHARS, TENANT_SLUG_CHARS, Media

logger = logging.getLogger(__name__)

MAX_NAME_LENGTH = 80
UNASSIGNED = "_unassigned"
MEDIA_KEY = re.compile(
    rf"^clients/(?P<tenant>{TENANT_SLUG_CHARS})/products/(?P<sku>{SKU_CHARS})"
    rf"/media/(?P<kind>{'|'.join(Media.Kind.values)})/(?P<name>[^/]+)$"
)


# A video's frame thumbnails sit beside it: <its key without extension>.frames/00012.jpg;
# an image's thumbnail too: <its key>.thumbnail/320.jpg.
FRAMES_SUFFIX = ".frames"
THUMBNAIL_NAME = "{index:05d}.jpg"
IMAGE_THUMBNAIL_SUFFIX = ".thumbnail"
# Objects the application writes itself under clients/: direct uploads without a
# product and thumbnails. Their S3 events are not client uploads.
APP_WRITTEN_KEY = re.compile(
    rf"^clients/[^/]+/(?:{UNASSIGNED}/|.*(?:{re.escape(FRAMES_SUFFIX)}|{re.escape(IMAGE_THUMBNAIL_SUFFIX)})/\d+\.jpg$)"
)


def frame_thumbnail_key(video_key: str, index: int) -> str:
    """Where the thumbnail of frame `index` of the video at `video_key` is stored."""
    key = PurePosixPath(video_key)
    return str(key.with_name(f"{key.stem}{FRAMES_SUFFIX}") / THUMBNAIL_NAME.format(index=index))


def image_thumbnail_key(image_key: str, side: int) -> str:
    """Where the thumbnail (at most `side` pixels a side) of the image at `image_key` is stored."""
    key = PurePosixPath(image_key)
    # The whole name, extension included: shoe.jpg and shoe.png keep apart.
    return str(key.with_name(f"{key.name}{IMAGE_THUMBNAIL_SUFFIX}") / f"{side}.jpg")


IMAGE_THUMBNAIL_KEY = re.compile(rf"^(?P<image>.+){re.escape(IMAGE_THUMBNAIL_SUFFIX)}/\d+\.jpg$")


def image_of_thumbnail(key: str) -> str | None:
    """The key of the image whose thumbnail `key` would be; None for another key."""
    match = IMAGE_THUMBNAIL_KEY.match(key)
    return match["image"] if match else None


def is_app_written(key: str) -> bool:
    return APP_WRITTEN_KEY.match(key) is not None


class KeyRejected(ValueError):
    """An object key outside the layout, or with an extension we do not take."""


@dataclass(frozen=True)
class MediaKey:
    tenant_slug: str
    sku: str
    kind: str
    name: str
    format: FileFormat


def parse_media_key(key: str) -> MediaKey:
    if not key.isprintable():
        raise KeyRejected(f"{key!a} contains control characters.")
    match = MEDIA_KEY.match(key)
    if match is None:
        raise KeyRejected(f"'{key}' is not clients/<tenant>/products/<sku>/media/<image|video>/<name>.")
    found = formats.BY_EXTENSION.get(PurePosixPath(match["name"]).suffix.lower())
    if found is None or found.kind != match["kind"]:
        accepted = ", ".join(e for fmt in formats.of_kind(match["kind"]) for e in fmt.extensions)
        raise KeyRejected(f"'{match['name']}' is not an accepted {match['kind']} file ({accepted}).")
    return MediaKey(match["tenant"], match["sku"], match["kind"], match["name"], found)


def sanitize_filename(name: str, extension: str) -> str:
    """A safe, short file name that keeps the readable part of the client's name
    but never its path, odd characters or claimed extension."""
    stem = PurePosixPath(name.replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_")[:MAX_NAME_LENGTH] or "file"
    return f"{stem}{extension}"


def media_key(tenant_slug: str, sku: str | None, kind: str, filename: str, extension: str) -> str:
    safe = sanitize_filename(filename, extension)
    owner = f"products/{sku}" if sku else UNASSIGNED
    return f"clients/{tenant_slug}/{owner}/media/{kind}/{uuid.uuid4().hex}-{safe}"


def delete_files_on_commit(keys: Iterable[str]) -> None:
    """Delete stored objects once the rows pointing at them are gone for good.
    A failure is logged, not raised: the rows are already deleted."""
    keys = [key for key in keys if key]

    def delete() -> None:
        for key in keys:
            try:
                default_storage.delete(key)
            except Exception:
                logger.exception("could not delete stored file %s", key)

    if keys:
        transaction.on_commit(delete)
