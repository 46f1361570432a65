"""Near-duplicate images: after an image is embedded, the most similar other
image of the same tenant at or above the tenant's near-duplicate threshold
becomes its original (`duplicate_of`), the newer item pointing at the older."""

from __future__ import annotations

from django.db import connection, transaction
from pgvector.django import CosineDistance

from catalog.models import Media
from search.models import Embedding, Thresholds


def _nearest_other_image(media: Media, vector) -> tuple[int, float] | None:
    """(media id, cosine similarity) of the closest other image of the tenant,
    by an exact scan: an approximate index scan filtered by tenant afterwards can
    miss it in a small tenant."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        nearest = (
            Embedding.objects.filter(tenant=media.tenant_id, frame__isnull=True, media__kind=Media.Kind.IMAGE)
            .exclude(media=media)
            .annotate(distance=CosineDistance("vector", vector))
            .order_by("distance")
            .values_list("media_id", "distance")
            .first()
        )
    if nearest is None:
        return None
    return nearest[0], 1.0 - float(nearest[1])


def link_near_duplicate(media: Media) -> Media | None:
    """Link `media` and its nearest image when they are near-duplicates; returns
    the original, or None."""
    embedding = Embedding.objects.filter(media=media, frame__isnull=True).only("vector").first()
    if embedding is None:
        return None
    nearest = _nearest_other_image(media, embedding.vector)
    threshold = Thresholds.for_tenant(media.tenant).near_duplicate_similarity
    if nearest is None or nearest[1] < threshold:
        Media.objects.filter(pk=media.pk).update(duplicate_of=None, duplicate_similarity=None)
        return None
    other_id, similarity = nearest
    newer_id, older_id = max(media.pk, other_id), min(media.pk, other_id)
    older = Media.objects.get(pk=older_id)
    # Point at the root of a chain, so every copy names the same original.
    original_id = older.duplicate_of_id or older_id
    Media.objects.filter(pk=newer_id).update(duplicate_of=original_id, duplicate_similarity=similarity)
    return Media.objects.get(pk=original_id)
