"""Images of one task, in batches of the model's size: read and preprocessed
in parallel threads (each image's thumbnail stored and its perceptual hash
taken meanwhile), embedded in one pass of the model, stored in one
transaction; each batch decoded and stored while the model embeds another."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction

from catalog import transitions
from catalog.models import Embedding, Media
from catalog.storage_keys import image_thumbnail_key
from media_pipeline.decoders import decoder_pool
from media_pipeline.embedder import get_embedder
from media_pipeline.fingerprints import THUMBNAIL_SIDE, perceptual_hash, thumbnail_jpeg
from media_pipeline.images import load_image
from media_pipeline.outcomes import Outcome, claim_lost, failed, finished
from media_pipeline.probe import check_unprobed
from media_pipeline.storage import open_local, save_overwriting
from media_pipeline.uploads import sha256_of


@dataclass
class _Decoded:
    media: Media
    pixels: np.ndarray | None = None
    error: Exception | None = None
    # What mark_ready stores with the item: its size, thumbnail, hashes.
    fields: dict[str, Any] = field(default_factory=dict)


def _decode(media: Media, preprocess: Callable) -> _Decoded:
    try:
        with open_local(media.storage_key) as file:
            check_unprobed(media, file)
            # Objects that arrived through S3 were not hashed on the way in.
            sha256 = media.sha256 or sha256_of(file)
            image, (width, height) = load_image(file)
        thumbnail_key = save_overwriting(
            image_thumbnail_key(media.storage_key, THUMBNAIL_SIDE), ContentFile(thumbnail_jpeg(image))
        )
        fields = {
            "width": width,
            "height": height,
            "sha256": sha256,
            "phash": perceptual_hash(image),
            "thumbnail_key": thumbnail_key,
        }
        return _Decoded(media, preprocess(image), fields=fields)
    except Exception as exc:
        return _Decoded(media, error=exc)


def process_images(images: list[Media], token: str) -> dict[int, Outcome]:
    """Embed and store the claimed `images`; one Outcome each.

    They go in batches of the model's size, each embedded on the torch thread
    while this one decodes the next batch and stores the one before and checks
    its duplicates: on a CPU the model's threads and these take turns at the
    cores instead of leaving one idle (bench/ingest.py). Batches are stored in
    order, so an image's earlier copies in the task are ready when it is checked."""
    embedder = get_embedder()
    decode = partial(_decode, preprocess=embedder.preprocess)
    outcomes: dict[int, Outcome] = {}
    embedding: tuple[list[_Decoded], Future[np.ndarray]] | None = None
    for start in range(0, len(images), embedder.batch_size):
        batch = images[start : start + embedder.batch_size]
        decoded = list(decoder_pool().map(decode, batch)) if len(batch) > 1 else [decode(batch[0])]
        outcomes.update({item.media.pk: failed(item.media, token, item.error) for item in decoded if item.error})
        good = [item for item in decoded if item.error is None]
        pixels = [item.pixels for item in good if item.pixels is not None]
        previous, embedding = embedding, (good, embedder.embed_pixels_later(pixels)) if good else None
        if previous is not None:
            outcomes.update(_finish(*previous, token, embedder.model_name))
    if embedding is not None:
        outcomes.update(_finish(*embedding, token, embedder.model_name))
    return outcomes


def _finish(items: list[_Decoded], vectors: Future[np.ndarray], token: str, model_name: str) -> dict[int, Outcome]:
    stored = _store(items, vectors.result(), token, model_name)
    outcomes = finished([item.media for item in items if item.media.pk in stored])
    outcomes.update({item.media.pk: claim_lost(item.media) for item in items if item.media.pk not in stored})
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
                transitions.mark_ready(item.media.pk, token, **item.fields)
    return set(held)
