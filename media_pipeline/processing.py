"""Processing one media item: claim it, turn it into vectors, record the result.

Status changes are conditional updates, so two workers handed the same item
never both process it, and results are written in one transaction that first
removes any earlier frames and embeddings, so a re-run never duplicates them.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from catalog.errors import FileRejected
from catalog.models import Media, VideoFrame
from catalog.storage_keys import delete_files_on_commit
from media_pipeline.duplicates import link_near_duplicate
from media_pipeline.embedder import get_embedder
from media_pipeline.images import load_image
from media_pipeline.probe import probe
from media_pipeline.storage import open_local, save_overwriting
from media_pipeline.video import SampledVideo, sample_video
from search.models import Embedding
from search.recognizer import predict_media

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 320
THUMBNAIL_QUALITY = 85


@dataclass(frozen=True)
class Outcome:
    media_id: int
    status: str  # "ready", "failed" or "skipped" (not ours to process)
    detail: str = ""


def claim(media_id: int, token: str) -> Media | None:
    """Take the `processing` claim, or None when the item is not ours to process:
    gone, done, failed, or held by another task. The same task delivered again
    (its worker was lost) may take it again, up to MEDIA_MAX_ATTEMPTS claims:
    an item that kills its worker every time is failed, not retried forever."""
    redelivered = Q(status=Media.Status.PROCESSING, claim_token=token, attempts__lt=settings.MEDIA_MAX_ATTEMPTS)
    taken = Media.objects.filter(Q(status=Media.Status.PENDING) | redelivered, pk=media_id).update(
        status=Media.Status.PROCESSING,
        claim_token=token,
        processing_started_at=timezone.now(),
        attempts=F("attempts") + 1,
        error="",
    )
    if taken:
        return Media.objects.select_related("tenant", "product").get(pk=media_id)
    attempts = (
        Media.objects.filter(pk=media_id, status=Media.Status.PROCESSING, claim_token=token)
        .values_list("attempts", flat=True)
        .first()
    )
    if attempts is not None:
        fail(media_id, token, f"Gave up after {attempts} attempts: the worker processing it stopped each time.")
    return None


def _release(media_id: int, token: str, **fields) -> bool:
    """Leave `processing` with `fields`, if the claim is still `token`'s."""
    return bool(
        Media.objects.filter(pk=media_id, status=Media.Status.PROCESSING, claim_token=token).update(
            claim_token="", processed_at=timezone.now(), **fields
        )
    )


@transaction.atomic
def fail(media_id: int, token: str, reason: str) -> bool:
    """Mark the item failed with `reason`; vectors and frames of an earlier run
    go too, so a failed item is not found by search."""
    logger.info("media %s failed: %s", media_id, reason)
    if not _release(media_id, token, status=Media.Status.FAILED, error=reason[:2000]):
        return False
    frames = VideoFrame.objects.filter(media_id=media_id)
    delete_files_on_commit(frames.exclude(thumbnail_key="").values_list("thumbnail_key", flat=True))
    frames.delete()
    Embedding.objects.filter(media_id=media_id).delete()
    return True


def process_media(media_id: int, token: str) -> Outcome:
    media = claim(media_id, token)
    if media is None:
        logger.info("media %s is not pending for task %s: skipped", media_id, token)
        return Outcome(media_id, "skipped")
    try:
        if media.kind == Media.Kind.IMAGE:
            stored = _process_image(media)
        else:
            stored = _process_video(media)
    except FileRejected as exc:
        fail(media_id, token, exc.message)
        return Outcome(media_id, "failed", exc.message)
    except FileNotFoundError:
        reason = "The stored file is missing."
        fail(media_id, token, reason)
        return Outcome(media_id, "failed", reason)
    if not stored(token):
        logger.warning("media %s lost its claim while processing: result discarded", media_id)
        return Outcome(media_id, "skipped", "claim lost")
    media.refresh_from_db()
    if media.kind == Media.Kind.IMAGE:
        link_near_duplicate(media)
    _predict_product(media)
    return Outcome(media_id, "ready")


def _predict_product(media: Media) -> None:
    try:
        predict_media(media)
    except Exception:
        # The item is ready and stays so; without a prediction it is simply
        # unassigned until the recognizer's next run over unassigned media.
        logger.exception("recognizer prediction for media %s failed", media.pk)


def _validate(media: Media, file) -> None:
    # Direct uploads were probed before they were stored; objects that arrived
    # another way (S3) are checked here by content, with the same rules.
    if media.source != Media.Source.UPLOAD or media.width is None:
        size = file.seek(0, io.SEEK_END)
        file.seek(0)
        probed = probe(file, size)
        if probed.kind != media.kind:
            raise FileRejected(f"The content is a {probed.kind}, not a {media.kind}.", code="unsupported_media_type")


def _process_image(media: Media):
    embedder = get_embedder()
    with open_local(media.storage_key) as file:
        _validate(media, file)
        image, (width, height) = load_image(file)
    vector = embedder.embed_images([image])[0]

    def store(token: str) -> bool:
        with transaction.atomic():
            if not _lock_claim(media, token):
                return False
            Embedding.objects.filter(media=media).delete()
            Embedding.objects.bulk_create(Embedding.build(media, [None], [vector], embedder.model_name))
            return _release(media.pk, token, status=Media.Status.READY, width=width, height=height)

    return store


def frame_thumbnail_key(media: Media, index: int) -> str:
    """Thumbnails sit beside the video: <key without extension>.frames/00012.jpg."""
    key = PurePosixPath(media.storage_key)
    return str(key.with_name(f"{key.stem}.frames") / f"{index:05d}.jpg")


def _process_video(media: Media):
    embedder = get_embedder()
    with open_local(media.storage_key) as file:
        _validate(media, file)
        sampled = sample_video(
            file,
            sample_seconds=settings.VIDEO_SAMPLE_SECONDS,
            max_frames=settings.VIDEO_MAX_FRAMES,
            max_seconds=settings.MAX_VIDEO_SECONDS,
            output_size=embedder.preprocess.resized_size,
        )
    vectors = embedder.embed_images([frame.image for frame in sampled.frames])
    thumbnail_keys = [_store_thumbnail(media, frame.index, frame.image) for frame in sampled.frames]
    logger.info(
        "video %s: %d frames decoded, %d sampled, %d kept",
        media.pk,
        sampled.decoded,
        sampled.sampled,
        len(sampled.frames),
    )

    def store(token: str) -> bool:
        return _store_video(media, token, sampled, vectors, thumbnail_keys, embedder.model_name)

    return store


def _store_thumbnail(media: Media, index: int, image) -> str:
    thumbnail = image.copy()
    thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return save_overwriting(frame_thumbnail_key(media, index), ContentFile(buffer.getvalue()))


def _store_video(
    media: Media, token: str, sampled: SampledVideo, vectors: np.ndarray, thumbnail_keys: list[str], model_name: str
) -> bool:
    with transaction.atomic():
        if not _lock_claim(media, token):
            return False
        previous = VideoFrame.objects.filter(media=media)
        delete_files_on_commit(set(previous.values_list("thumbnail_key", flat=True)) - set(thumbnail_keys))
        previous.delete()  # their embeddings go by cascade
        Embedding.objects.filter(media=media).delete()
        frames = VideoFrame.objects.bulk_create(
            VideoFrame(
                tenant=media.tenant,
                media=media,
                index=frame.index,
                timestamp_ms=frame.timestamp_ms,
                thumbnail_key=key,
                is_keyframe=frame.is_keyframe,
            )
            for frame, key in zip(sampled.frames, thumbnail_keys, strict=True)
        )
        Embedding.objects.bulk_create(Embedding.build(media, frames, vectors, model_name))
        return _release(
            media.pk,
            token,
            status=Media.Status.READY,
            width=sampled.width,
            height=sampled.height,
            duration_ms=sampled.duration_ms,
            error=sampled.warning,
        )


def _lock_claim(media: Media, token: str) -> bool:
    """Lock the row if `token` still holds its claim, and refresh its product:
    the recognizer or an operator may have assigned one while it was processed."""
    rows = list(
        Media.objects.select_for_update()
        .filter(pk=media.pk, status=Media.Status.PROCESSING, claim_token=token)
        .values_list("product_id", flat=True)
    )
    if rows:
        media.product_id = rows[0]
    return bool(rows)
