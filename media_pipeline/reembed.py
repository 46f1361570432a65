"""Re-embedding the catalog with another CLIP model, beside the current vectors.

Vectors are stored per model name, and searches read only the current
model's (`CLIP_MODEL`), so a new model's vectors can be written while the old
ones still serve. A media item is done once it has vectors of the new model;
each item is written in its own transaction, so an interrupted run loses at
most the batch in hand and the next run carries on where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from PIL import Image

from catalog.batches import id_batches, scoped
from catalog.errors import FileRejected
from catalog.models import Embedding, Media, Tenant, VideoFrame
from media_pipeline.embedder import ClipEmbedder
from media_pipeline.images import load_image
from media_pipeline.storage import open_local
from media_pipeline.video import frames_at

logger = logging.getLogger(__name__)


@dataclass
class ReembedReport:
    embedded: int = 0
    busy: int = 0  # being processed again right now: the next run takes them
    unreadable: list[tuple[int, str]] = field(default_factory=list)


def missing(model_name: str, tenant: Tenant | None = None) -> QuerySet[Media]:
    """Ready media without vectors of `model_name`."""
    has_vectors = Embedding.objects.filter(media=OuterRef("pk"), model_name=model_name)
    return scoped(Media.objects.ready().exclude(Exists(has_vectors)), tenant)


def other_models(model_name: str, tenant: Tenant | None = None) -> QuerySet[Embedding]:
    """Vectors of every model but `model_name`."""
    return scoped(Embedding.objects.exclude(model_name=model_name), tenant)


def _video_images(media: Media, frames: list[VideoFrame], embedder: ClipEmbedder) -> list[Image.Image]:
    with open_local(media.storage_key) as file:
        decoded = frames_at(file, [frame.timestamp_ms for frame in frames], embedder.preprocess.resized_size)
    images = []
    for frame in frames:
        image = decoded.get(frame.timestamp_ms)
        if image is None:
            # Past what decodes now (a video that stopped on corrupt data):
            # its stored thumbnail stands in.
            with default_storage.open(frame.thumbnail_key) as thumbnail:
                image = Image.open(thumbnail).convert("RGB")
        images.append(image)
    return images


def _store(media: Media, frames: Sequence[VideoFrame | None], vectors: np.ndarray, model_name: str) -> bool:
    """Write the vectors if the item is still ready with the same frames."""
    with transaction.atomic():
        locked = Media.objects.ready().select_for_update().filter(pk=media.pk).first()
        if locked is None:
            return False
        current = set(VideoFrame.objects.filter(media=media).values_list("pk", flat=True))
        if {frame.pk for frame in frames if frame is not None} != current:
            return False  # processed again since its frames were read
        Embedding.objects.filter(media=media, model_name=model_name).delete()
        media.product_id = locked.product_id  # assigned meanwhile, perhaps
        try:
            Embedding.objects.bulk_create(Embedding.build(media, frames, vectors, model_name))
        except IntegrityError:
            return False
    return True


def reembed_batch(ids: list[int], embedder: ClipEmbedder, report: ReembedReport) -> None:
    """Vectors of `embedder`'s model for the given media: the images of the
    batch in one pass through the model, each video on its own."""
    media = list(Media.objects.ready().filter(pk__in=ids).order_by("pk"))
    report.busy += len(ids) - len(media)
    images: list[tuple[Media, Image.Image]] = []
    for item in media:
        try:
            if item.kind == Media.Kind.IMAGE:
                with open_local(item.storage_key) as file:
                    images.append((item, load_image(file)[0]))
                continue
            frames = list(VideoFrame.objects.filter(media=item).order_by("index"))
            vectors = embedder.embed_images(_video_images(item, frames, embedder))
        except (FileRejected, FileNotFoundError, OSError) as exc:
            report.unreadable.append((item.pk, getattr(exc, "message", None) or str(exc)))
            continue
        if _store(item, frames, vectors, embedder.model_name):
            report.embedded += 1
        else:
            report.busy += 1
    if images:
        vectors = embedder.embed_images([image for _, image in images])
        for (item, _), vector in zip(images, vectors, strict=True):
            if _store(item, [None], vector[None, :], embedder.model_name):
                report.embedded += 1
            else:
                report.busy += 1


def reembed(
    embedder: ClipEmbedder,
    tenant: Tenant | None,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> ReembedReport:
    """Give every ready media of the scope vectors of `embedder`'s model."""
    report = ReembedReport()
    for ids in id_batches(missing(embedder.model_name, tenant), batch_size):
        reembed_batch(ids, embedder, report)
        if progress:
            progress(len(ids))
    return report


def drop_other_models(model_name: str, tenant: Tenant | None, batch_size: int) -> int:
    """Delete the vectors of every model but `model_name` in the scope."""
    return sum(
        Embedding.objects.filter(pk__in=ids).delete()[0]
        for ids in id_batches(other_models(model_name, tenant), batch_size)
    )
