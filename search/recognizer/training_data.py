"""What a recognizer version learns from: the vectors of the tenant's media
assigned to products, and the held-out split that measures it. The split
holds out whole media (frames of one video are near copies of each other:
splitting them would measure memory, not recognition), stratified by product."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from catalog.models import EMBEDDING_DIMENSIONS, Embedding, Media, Tenant

# Share of each product's media held out for evaluation (at least one media
# of every product that has two or more).
HOLDOUT_FRACTION = 0.2
SPLIT_SEED = 0
# Vectors read per round trip while loading.
LOAD_CHUNK = 2000


@dataclass(frozen=True)
class TrainingData:
    vectors: np.ndarray  # (n, EMBEDDING_DIMENSIONS), unit rows
    media_ids: np.ndarray  # (n,)
    labels: np.ndarray  # (n,) class index
    product_ids: np.ndarray  # (classes,)


def load_training_data(tenant: Tenant, embedding_model: str) -> TrainingData:
    rows = (
        Embedding.objects.filter(
            tenant=tenant,
            model_name=embedding_model,
            product__isnull=False,
            media__status=Media.Status.READY,
            media__product__isnull=False,
        )
        .order_by("media_id", "frame_id")
        .values_list("media_id", "media__product_id", "vector")
    )
    media_ids, products, vectors = [], [], []
    for media_id, product_id, vector in rows.iterator(chunk_size=LOAD_CHUNK):
        media_ids.append(media_id)
        products.append(product_id)
        vectors.append(vector)
    product_ids, labels = np.unique(np.asarray(products, dtype=np.int64), return_inverse=True)
    return TrainingData(
        vectors=np.asarray(vectors, dtype=np.float32).reshape(-1, EMBEDDING_DIMENSIONS),
        media_ids=np.asarray(media_ids, dtype=np.int64),
        labels=labels.astype(np.int64),
        product_ids=product_ids,
    )


def held_out_media(media_ids: np.ndarray, labels: np.ndarray, fraction: float = HOLDOUT_FRACTION) -> set[int]:
    """Media held out for evaluation: a seeded `fraction` of each product's
    media, at least one of every product with two or more, never all of one."""
    by_class: dict[int, set[int]] = defaultdict(set)
    for media_id, label in zip(media_ids.tolist(), labels.tolist(), strict=True):
        by_class[label].add(media_id)
    rng = np.random.default_rng(SPLIT_SEED)
    held: set[int] = set()
    for label in sorted(by_class):
        media = sorted(by_class[label])
        if len(media) < 2:
            continue
        count = min(len(media) - 1, max(1, round(len(media) * fraction)))
        held.update(int(m) for m in rng.permutation(media)[:count])
    return held
