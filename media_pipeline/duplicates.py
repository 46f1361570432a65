"""Near-duplicate images: after an image is embedded, the most similar other
image of the same tenant at or above the tenant's near-duplicate threshold
becomes its original (`duplicate_of`), the newer item pointing at the older."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction

from catalog.models import EMBEDDING_TABLE, MEDIA_TABLE, Media, TenantSettings

# For each given image, its nearest other image of the tenant, by an exact
# scan: an approximate index scan filtered by tenant afterwards can miss it in
# a small tenant. One statement for a whole batch of images.
NEAREST_OTHER_IMAGES = f"""
    SELECT e.media_id, nearest.media_id, 1 - nearest.distance
    FROM {EMBEDDING_TABLE} e
    CROSS JOIN LATERAL (
        SELECT other.media_id, other.vector <=> e.vector AS distance
        FROM {EMBEDDING_TABLE} other
        JOIN {MEDIA_TABLE} m ON m.id = other.media_id
        WHERE other.tenant_id = e.tenant_id AND other.frame_id IS NULL AND m.kind = 'image'
          AND other.media_id <> e.media_id
        ORDER BY distance
        LIMIT 1
    ) nearest
    WHERE e.media_id = ANY(%s) AND e.frame_id IS NULL
"""  # noqa: S608 - the table name is a constant


def _nearest_other_images(media_ids: list[int]) -> dict[int, tuple[int, float]]:
    """media id -> (media id, cosine similarity) of the closest other image."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(NEAREST_OTHER_IMAGES, [media_ids])
        return {media_id: (other_id, float(similarity)) for media_id, other_id, similarity in cursor.fetchall()}


def link_near_duplicates(images: Sequence[Media]) -> dict[int, int | None]:
    """Link each image and its nearest image when they are near-duplicates;
    returns each image's original's id, or None."""
    if not images:
        return {}
    nearest = _nearest_other_images([media.pk for media in images])
    return {
        media.pk: _link(media, nearest.get(media.pk), TenantSettings.of(media.tenant).near_duplicate_similarity)
        for media in images
    }


def _link(media: Media, nearest: tuple[int, float] | None, threshold: float) -> int | None:
    if nearest is None or nearest[1] < threshold:
        if media.duplicate_of_id is not None:
            Media.objects.filter(pk=media.pk).update(duplicate_of=None, duplicate_similarity=None)
        return None
    other_id, similarity = nearest
    newer_id, older_id = max(media.pk, other_id), min(media.pk, other_id)
    # Point at the root of a chain, so every copy names the same original.
    original_id = Media.objects.filter(pk=older_id).values_list("duplicate_of_id", flat=True).first() or older_id
    Media.objects.filter(pk=newer_id).update(duplicate_of=original_id, duplicate_similarity=similarity)
    return original_id
