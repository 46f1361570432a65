"""One vector per media item, as "more like this" and the recognizer see it:
an image's own vector, or the mean direction of a video's frames."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from catalog.errors import Conflict
from catalog.models import EMBEDDING_DIMENSIONS, Embedding, Media


def media_vectors(media_ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (media id, vector), grouped by media: (the ids, sorted, and one
    unit vector per id, the normalized sum of its rows)."""
    ids, inverse = np.unique(media_ids, return_inverse=True)
    sums = np.zeros((len(ids), vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, vectors)
    norms = np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return ids, (sums / norms).astype(np.float32)


def stored_vectors(rows: Iterable[tuple[int, object]]) -> tuple[np.ndarray, np.ndarray]:
    """(media id, vector) rows as read from the database, as two arrays."""
    pairs = list(rows)
    ids = np.array([media_id for media_id, _ in pairs], dtype=np.int64)
    vectors = np.asarray([vector for _, vector in pairs], dtype=np.float32).reshape(-1, EMBEDDING_DIMENSIONS)
    return ids, vectors


def media_vector(media: Media, model_name: str) -> np.ndarray:
    """`media`'s own unit vector among its vectors of `model_name`; Conflict
    while it has none (not processed yet, or failed)."""
    rows = Embedding.objects.filter(media=media, model_name=model_name).values_list("media_id", "vector")
    ids, vectors = stored_vectors(rows)
    if not len(ids):
        raise Conflict(f"Media {media.pk} has no vectors yet (status '{media.status}'): search once it is ready.")
    return media_vectors(ids, vectors)[1][0]


# How far a recommendation moves away from its negative examples: the query is
# the positives' mean direction plus this much of (positives - negatives), as
# Qdrant's average-vector recommendation does.
NEGATIVE_WEIGHT = 1.0


def recommendation_vector(positive: list[Media], negative: list[Media], model_name: str) -> np.ndarray:
    """A unit query near the `positive` media and away from the `negative`
    ones; Conflict naming an example that has no vectors yet."""
    examples = positive + negative
    rows = Embedding.objects.filter(media__in=examples, model_name=model_name).values_list("media_id", "vector")
    ids, unit = media_vectors(*stored_vectors(rows))
    by_id = dict(zip(ids.tolist(), unit, strict=True))
    missing = [m for m in examples if m.pk not in by_id]
    if missing:
        first = missing[0]
        raise Conflict(
            f"Media {first.pk} has no vectors yet (status '{first.status}'): recommend from it once it is ready."
        )
    liked = np.mean([by_id[m.pk] for m in positive], axis=0)
    query = liked
    if negative:
        query = liked + NEGATIVE_WEIGHT * (liked - np.mean([by_id[m.pk] for m in negative], axis=0))
    return (query / max(float(np.linalg.norm(query)), 1e-12)).astype(np.float32)
