"""Images of one task, as a batch: read and preprocessed in parallel threads,
embedded in one pass of the model, stored in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from django.db import transaction

from catalog import transitions
from catalog.models import Embedding, Media
from media_pipeline.decoders import decoder_pool
from media_pipeline.embedder import get_embedder
from media_pipeline.images import load_image
from media_pipeline.outcomes import Outcome, claim_lost, failed, finished
from media_pipeline.probe import check_unprobed
from media_pipeline.storage import open_local


@dataclass
class _Decoded:
    media: Media
    pixels: np.ndarray | None = None
    size: tuple[int, int] = (0, 0)
    error: Exception | None = None


def _decode(media: Media, preprocess: Callable) -> _Decoded:
    try:
        with open_local(media.storage_key) as file:
            check_unprobed(media, file)
            image, size = load_image(file)
        return _Decoded(media, preprocess(image), size)
    except Exception as exc:
        return _Decoded(media, error=exc)


def process_images(images: list[Media], token: str) -> dict[int, Outcome]:
    """Embed and store the claimed `images`; one Outcome each."""
    embedder = get_embedder()
    decode = partial(_decode, preprocess=embedder.preprocess)
    decoded = list(decoder_pool().map(decode, images)) if len(images) > 1 else [decode(images[0])]
    outcomes = {item.media.pk: failed(item.media, token, item.error) for item in decoded if item.error}
    good = [item for item in decoded if item.error is None]
    if not good:
        return outcomes
    vectors = embedder.embed_pixels([item.pixels for item in good if item.pixels is not None])
    stored = _store(good, vectors, token, embedder.model_name)
    outcomes.update(finished([item.media for item in good if item.media.pk in stored]))
    outcomes.update({item.media.pk: claim_lost(item.media) for item in good if item.media.pk not in stored})
    return outcomes


def _store(items: list[_Decoded], vectors: np.ndarray, token: str, model_name: str) -> set[int]:
    """Write the vectors of the items `token` still holds, in one transaction
    and one bulk insert, and mark them ready; returns the ids stored."""
    with transaction.atomic():
        held = transitions.lock_claims([item.media.pk for item in items], token)
        for item in items:
            if item.media.pk in held:
                item.media.product_id = held[item.media.pk]
        Embedding.objects.filter(media_id__in=held).delete()
        Embedding.objects.bulk_create(
            row
            for item, vector in zip(items, vectors, strict=True)
            if item.media.pk in held
            for row in Embedding.build(item.media, [None], [vector], model_name)
        )
        for item in items:
            if item.media.pk in held:
                width, height = item.size
                transitions.mark_ready(item.media.pk, token, width=width, height=height)
    return set(held)
