"""Repairs of what lost its counterpart (`manage.py cleanup_orphans`): each
walks its part of the catalog or the storage in batches, never holding more
than a batch in memory, changes nothing with `dry_run`, and returns how many
items it found. Vectors and frames cannot outlive their media: the database
cascades those deletions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import islice

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from catalog import transitions
from catalog.batches import id_batches, scoped
from catalog.media import delete_results
from catalog.models import Embedding, Media, Tenant, VideoFrame
from catalog.storage_keys import image_of_thumbnail
from media_pipeline.outcomes import MISSING_FILE

# A stored file this young may belong to an upload whose row is not committed yet.
ORPHAN_GRACE = timedelta(hours=1)

# (items done, items in all or None when unknown before the walk ends)
Progress = Callable[[int, int | None], None]


def _quiet(done: int, total: int | None) -> None:
    pass


def stored_keys(prefix: str) -> Iterator[str]:
    """Every stored key under `prefix`, recursively, one directory listing at a time."""
    try:
        directories, files = default_storage.listdir(prefix)
    except FileNotFoundError:  # nothing stored under the prefix yet
        return
    for name in files:
        yield f"{prefix}{name}"
    for directory in directories:
        yield from stored_keys(f"{prefix}{directory}/")


def _batched(keys: Iterator[str], size: int) -> Iterator[list[str]]:
    while batch := list(islice(keys, size)):
        yield batch


def delete_orphan_files(tenant: Tenant | None, *, dry_run: bool, batch_size: int, progress: Progress = _quiet) -> int:
    """Stored files under clients/ that no media row (its file or its
    thumbnail) or frame thumbnail names, older than ORPHAN_GRACE: deleted."""
    prefix = f"clients/{tenant.slug}/" if tenant else "clients/"
    cutoff = timezone.now() - ORPHAN_GRACE
    found = seen = 0
    for keys in _batched(stored_keys(prefix), batch_size):
        known = set(Media.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True))
        # An image's thumbnail is known by its image's key (storage_key is indexed, thumbnail_key is not).
        images = {image for key in keys if (image := image_of_thumbnail(key))}
        known |= set(Media.objects.filter(storage_key__in=images).values_list("thumbnail_key", flat=True))
        known |= set(VideoFrame.objects.filter(thumbnail_key__in=keys).values_list("thumbnail_key", flat=True))
        orphans = [key for key in keys if key not in known and default_storage.get_modified_time(key) < cutoff]
        found += len(orphans)
        if not dry_run:
            for key in orphans:
                default_storage.delete(key)
        seen += len(keys)
        progress(seen, None)
    return found


def _walk(media: QuerySet[Media], batch_size: int, progress: Progress) -> Iterator[list[int]]:
    total = media.count()
    done = 0
    for ids in id_batches(media, batch_size):
        yield ids
        done += len(ids)
        progress(done, total)


def fail_missing_files(tenant: Tenant | None, *, dry_run: bool, batch_size: int, progress: Progress = _quiet) -> int:
    """Media (not failed) whose stored file is gone: failed with the reason.
    Not those being processed: their worker records the failure itself."""
    found = 0
    for ids in _walk(scoped(Media.objects.not_failed(), tenant), batch_size, progress):
        rows = Media.objects.filter(pk__in=ids).values_list("pk", "storage_key")
        gone = [pk for pk, key in rows if not default_storage.exists(key)]
        found += len(gone)
        if gone and not dry_run:
            transitions.fail(Media.objects.not_processing().filter(pk__in=gone), MISSING_FILE)
    return found


def reprocess_missing_thumbnails(
    tenant: Tenant | None, *, dry_run: bool, batch_size: int, progress: Progress = _quiet
) -> int:
    """Ready media whose thumbnail, or one of whose frames' thumbnails, is
    gone: processed again, which writes them again. (Media processed before
    thumbnails were made have none to lose: reprocess those to get them.)"""
    ready = scoped(Media.objects.ready(), tenant)
    found = 0
    for ids in _walk(ready, batch_size, progress):
        frames = VideoFrame.objects.filter(media_id__in=ids).exclude(thumbnail_key="")
        keys = [*frames.values_list("media_id", "thumbnail_key")]
        keys += Media.objects.filter(pk__in=ids).exclude(thumbnail_key="").values_list("pk", "thumbnail_key")
        broken = {media_id for media_id, key in keys if not default_storage.exists(key)}
        found += len(broken)
        if broken and not dry_run:
            transitions.back_to_pending(Media.objects.ready().filter(pk__in=broken))
    return found


def delete_leftovers_of_failed(
    tenant: Tenant | None, *, dry_run: bool, batch_size: int, progress: Progress = _quiet
) -> int:
    """Vectors and frames on failed media (kept by releases before every path
    to `failed` removed them): deleted, with the frames' thumbnails."""
    found = 0
    for ids in _walk(scoped(Media.objects.failed(), tenant), batch_size, progress):
        with transaction.atomic():
            # Locked and read again: an item reprocessed meanwhile keeps its new vectors.
            still = list(Media.objects.failed().filter(pk__in=ids).select_for_update().values_list("pk", flat=True))
            if dry_run:
                found += Embedding.objects.filter(media_id__in=still).count()
                found += VideoFrame.objects.filter(media_id__in=still).count()
            else:
                found += delete_results(still)
    return found


# NULL-safe "differs": one side set and the other not, or both set apart.
PRODUCT_DIFFERS = (
    Q(product__isnull=True, media__product__isnull=False)
    | Q(product__isnull=False, media__product__isnull=True)
    | (Q(product__isnull=False, media__product__isnull=False) & ~Q(product_id=F("media__product_id")))
)


def realign_vector_products(
    tenant: Tenant | None, *, dry_run: bool, batch_size: int, progress: Progress = _quiet
) -> int:
    """Vectors whose product differs from their media's: given the media's,
    a batch of media at a time (one UPDATE each)."""
    found = 0
    media_product = Media.objects.filter(pk=OuterRef("media_id")).values("product_id")[:1]
    for ids in _walk(scoped(Media.objects.all(), tenant), batch_size, progress):
        misaligned = Embedding.objects.filter(media_id__in=ids).filter(PRODUCT_DIFFERS)
        found += misaligned.update(product_id=Subquery(media_product)) if not dry_run else misaligned.count()
    return found
