"""Direct uploads (DESIGN.md flow 1): validate by content, store through
Django's storage, create the `pending` Media row, enqueue it after commit."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import IO

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction

from catalog.models import Media, Product, Tenant
from catalog.storage_keys import media_key
from config.queues import enqueue_processing
from media_pipeline.probe import probe

logger = logging.getLogger(__name__)

HASH_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class UploadResult:
    media: Media
    created: bool


def sha256_of(file: IO[bytes]) -> str:
    digest = hashlib.sha256()
    file.seek(0)
    for chunk in iter(lambda: file.read(HASH_CHUNK_BYTES), b""):
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


def _lock_content(tenant: Tenant, sha256: str) -> None:
    # Serializes concurrent uploads of the same bytes in one tenant, so the
    # duplicate check below cannot race; released at commit.
    lock_id = int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True) ^ tenant.pk
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])


def _delete_quietly(key: str) -> None:
    try:
        default_storage.delete(key)
    except Exception:
        logger.exception("could not delete %s, stored by an upload that failed; cleanup_orphans will", key)


def ingest_upload(tenant: Tenant, file: IO[bytes], size: int, filename: str, product: Product | None) -> UploadResult:
    """Store `file` as a new media item of `tenant` (optionally of `product`).

    Raises FileRejected for anything that is not an acceptable image or video.
    The same bytes uploaded again to the same product return the existing item.
    """
    probed = probe(file, size)
    sha256 = sha256_of(file)

    stored_key = ""
    try:
        with transaction.atomic():
            _lock_content(tenant, sha256)
            existing = Media.objects.filter(tenant=tenant, product=product, sha256=sha256).first()
            if existing is not None:
                return UploadResult(existing, created=False)

            key = media_key(tenant.slug, product.sku if product else None, probed.kind, filename, probed.type.extension)
            # The row before the file: the S3 event of the new object may reach the
            # bridge before this transaction commits. Its insert of the same key then
            # waits on this row's unique index and, once this commits, finds an
            # upload and leaves it alone (media_pipeline.bridge), instead of
            # creating a second item that this insert would collide with.
            media = Media.objects.create(
                tenant=tenant,
                product=product,
                kind=probed.kind,
                source=Media.Source.UPLOAD,
                storage_key=key,
                original_filename=filename[:255],
                content_type=probed.type.content_type,
                size=size,
                sha256=sha256,
                width=probed.width,
                height=probed.height,
                duration_ms=probed.duration_ms,
            )
            stored_key = default_storage.save(key, File(file, name=key))
            if stored_key != key:  # a storage that renames rather than overwrites
                Media.objects.filter(pk=media.pk).update(storage_key=stored_key)
                media.storage_key = stored_key
            enqueue_processing([media.pk])
    except Exception:
        # Nothing was recorded (the commit itself may be what failed, the
        # database going away): the file must not stay behind as an object
        # nobody asked for, which the S3 bridge would take for a new upload.
        if stored_key:
            _delete_quietly(stored_key)
        raise
    logger.info("stored %s upload %s for %s as media %s", probed.kind, stored_key, tenant.slug, media.pk)
    return UploadResult(media, created=True)
