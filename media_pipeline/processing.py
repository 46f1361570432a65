"""Processing one media item: claim it, turn it into vectors, record the result.

Status changes are conditional updates, so two workers handed the same item
never both process it, and results are written in one transaction that first
removes any earlier frames and embeddings, so a re-run never duplicates them.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
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
from media_pipeline.duplicates import link_near_duplicates
from media_pipeline.embedder import get_embedder
from media_pipeline.errors import TRANSIENT_ERRORS
from media_pipeline.images import load_image
from media_pipeline.lifecycle import back_to_pending
from media_pipeline.probe import probe
from media_pipeline.storage import open_local, save_overwriting
from media_pipeline.video import SampledFrame, SampledVideo, sample_video
from search.models import Embedding
from search.recognizer import predict_media

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 320
THUMBNAIL_QUALITY = 85
# A video's kept frames are embedded this many at a time while decoding goes on.
VIDEO_EMBED_CHUNK = 16


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
    return process_batch([media_id], token)[0]


def process_batch(media_ids: Sequence[int], token: str) -> list[Outcome]:
    """Process several items under one claim token, one Outcome per id.

    Images are read and preprocessed in parallel threads, embedded in one
    batch and stored in one transaction; videos, which batch their own frames,
    go one by one. A batch delivered again (its worker died, or a transient
    error is being retried) goes one item at a time, each claimed only when its
    turn comes: an item that kills the worker then costs the others at most
    one more attempt, and is failed alone after MEDIA_MAX_ATTEMPTS."""
    ids = list(dict.fromkeys(media_ids))
    if len(ids) > 1 and Media.objects.filter(pk__in=ids, status=Media.Status.PROCESSING, claim_token=token).exists():
        return [outcome for media_id in ids for outcome in process_batch([media_id], token)]
    claimed = [media for media in [claim(ids[0], token)] if media] if len(ids) == 1 else _claim_pending(ids, token)
    outcomes: dict[int, Outcome] = {}
    for media_id in set(ids) - {media.pk for media in claimed}:
        logger.info("media %s is not pending for task %s: skipped", media_id, token)
        outcomes[media_id] = Outcome(media_id, "skipped")
    images = [media for media in claimed if media.kind == Media.Kind.IMAGE]
    if images:
        outcomes.update(_process_images(images, token))
    for video in (media for media in claimed if media.kind == Media.Kind.VIDEO):
        outcomes[video.pk] = _process_video(video, token)
    return [outcomes[media_id] for media_id in ids]


def _claim_pending(media_ids: list[int], token: str) -> list[Media]:
    """claim() for the `pending` ones among `media_ids`, in two statements."""
    with transaction.atomic():
        pending = list(
            Media.objects.select_for_update()
            .filter(pk__in=media_ids, status=Media.Status.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        Media.objects.filter(pk__in=pending).update(
            status=Media.Status.PROCESSING,
            claim_token=token,
            processing_started_at=timezone.now(),
            attempts=F("attempts") + 1,
            error="",
        )
    return list(Media.objects.select_related("tenant", "product").filter(pk__in=pending))


def _held(media_ids: Sequence[int], token: str):
    return Media.objects.filter(pk__in=list(media_ids), status=Media.Status.PROCESSING, claim_token=token)


def fail_claimed(media_ids: Sequence[int], token: str, reason: str) -> int:
    """Fail the items that `token` still holds (its task ended on an error
    that is no item's fault); returns how many."""
    return sum(fail(media_id, token, reason) for media_id in _held(media_ids, token).values_list("pk", flat=True))


def release_claimed(media_ids: Sequence[int], token: str) -> list[int]:
    """Put the items that `token` still holds back to `pending`, unclaimed (its
    task gave up on a transient error); returns their ids. They are not sent:
    the sweeper sends pending items that waited PENDING_REQUEUE_MINUTES."""
    return back_to_pending(_held(media_ids, token), send=False)


def _rejection(media_id: int, exc: Exception) -> str:
    """The reason an item failed on `exc`: the file's fault, or a bug (logged).
    Transient errors (storage, database) are raised on, so the task retries."""
    if isinstance(exc, TRANSIENT_ERRORS):
        raise exc
    if isinstance(exc, FileRejected):
        return exc.message
    if isinstance(exc, FileNotFoundError):
        return "The stored file is missing."
    logger.error("processing media %s failed", media_id, exc_info=exc)
    return f"Processing error: {type(exc).__name__}: {exc}"


def _failed(media: Media, token: str, exc: Exception) -> Outcome:
    reason = _rejection(media.pk, exc)
    fail(media.pk, token, reason)
    return Outcome(media.pk, "failed", reason)


def _finish(stored: list[Media]) -> dict[int, Outcome]:
    """After the results are stored: near-duplicates (of images) and the recognizer."""
    fresh = Media.objects.select_related("tenant").in_bulk([media.pk for media in stored])
    link_near_duplicates([fresh[media.pk] for media in stored if media.kind == Media.Kind.IMAGE])
    for media in stored:
        _predict_product(fresh[media.pk])
    return {media.pk: Outcome(media.pk, "ready") for media in stored}


def _claim_lost(media: Media) -> Outcome:
    logger.warning("media %s lost its claim while processing: result discarded", media.pk)
    return Outcome(media.pk, "skipped", "claim lost")


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


@dataclass
class _Decoded:
    media: Media
    pixels: np.ndarray | None = None
    size: tuple[int, int] = (0, 0)
    error: Exception | None = None


_decoders: ThreadPoolExecutor | None = None
_decoders_lock = threading.Lock()


def _decoder_pool() -> ThreadPoolExecutor:
    """Threads that read and preprocess images: Pillow and NumPy release the
    GIL, so a batch's decoding uses every core, not one."""
    global _decoders
    with _decoders_lock:
        if _decoders is None:
            _decoders = ThreadPoolExecutor(settings.MEDIA_DECODE_THREADS, thread_name_prefix="decode")
        return _decoders


def _decode(media: Media, preprocess) -> _Decoded:
    try:
        with open_local(media.storage_key) as file:
            _validate(media, file)
            image, size = load_image(file)
        return _Decoded(media, preprocess(image), size)
    except Exception as exc:
        return _Decoded(media, error=exc)


def _process_images(images: list[Media], token: str) -> dict[int, Outcome]:
    embedder = get_embedder()
    decode = partial(_decode, preprocess=embedder.preprocess)
    decoded = list(_decoder_pool().map(decode, images)) if len(images) > 1 else [decode(images[0])]
    outcomes = {item.media.pk: _failed(item.media, token, item.error) for item in decoded if item.error}
    good = [item for item in decoded if item.error is None]
    if not good:
        return outcomes
    vectors = embedder.embed_pixels([item.pixels for item in good])
    stored = _store_images(good, vectors, token, embedder.model_name)
    outcomes.update(_finish([item.media for item in good if item.media.pk in stored]))
    outcomes.update({item.media.pk: _claim_lost(item.media) for item in good if item.media.pk not in stored})
    return outcomes


def _store_images(items: list[_Decoded], vectors: np.ndarray, token: str, model_name: str) -> set[int]:
    """Write the vectors of the items `token` still holds, in one transaction
    and one bulk insert; returns the ids stored."""
    with transaction.atomic():
        held = _lock_claims([item.media for item in items], token)
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
                _release(item.media.pk, token, status=Media.Status.READY, width=width, height=height)
    return held


def frame_thumbnail_key(media: Media, index: int) -> str:
    """Thumbnails sit beside the video: <key without extension>.frames/00012.jpg."""
    key = PurePosixPath(media.storage_key)
    return str(key.with_name(f"{key.stem}.frames") / f"{index:05d}.jpg")


def _process_video(media: Media, token: str) -> Outcome:
    try:
        return _embed_video(media, token)
    except Exception as exc:
        return _failed(media, token, exc)


def _embed_video(media: Media, token: str) -> Outcome:
    embedder = get_embedder()
    with open_local(media.storage_key) as file:
        _validate(media, file)
        sampled, vectors = _sample_and_embed(file, embedder)
    thumbnail_keys = [_store_thumbnail(media, frame.index, frame.image) for frame in sampled.frames]
    logger.info(
        "video %s: %d frames decoded, %d sampled, %d kept",
        media.pk,
        sampled.decoded,
        sampled.sampled,
        len(sampled.frames),
    )
    if not _store_video(media, token, sampled, vectors, thumbnail_keys, embedder.model_name):
        return _claim_lost(media)
    return _finish([media])[media.pk]


def _sample_and_embed(file, embedder) -> tuple[SampledVideo, np.ndarray]:
    """Sample the video in a decoding thread while this one embeds the frames
    kept so far, VIDEO_EMBED_CHUNK at a time: decoding and embedding overlap."""
    kept: queue.SimpleQueue[SampledFrame] = queue.SimpleQueue()
    decoding = _decoder_pool().submit(
        sample_video,
        file,
        sample_seconds=settings.VIDEO_SAMPLE_SECONDS,
        max_frames=settings.VIDEO_MAX_FRAMES,
        max_seconds=settings.MAX_VIDEO_SECONDS,
        output_size=embedder.preprocess.resized_size,
        on_keep=kept.put,
    )
    vectors, chunk = [], []
    while True:
        try:
            chunk.append(kept.get(timeout=0.02).image)
        except queue.Empty:
            if decoding.done() and kept.empty():
                break
            continue
        if len(chunk) >= VIDEO_EMBED_CHUNK:
            vectors.append(embedder.embed_images(chunk))
            chunk = []
    sampled = decoding.result()  # raises what decoding raised
    vectors.append(embedder.embed_images(chunk))
    return sampled, np.concatenate(vectors)


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
        if not _lock_claims([media], token):
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


def _lock_claims(media: list[Media], token: str) -> set[int]:
    """Lock the rows whose claim `token` still holds, and refresh their product:
    the recognizer or an operator may have assigned one while they were
    processed. Returns the ids locked."""
    by_id = {item.pk: item for item in media}
    rows = (
        Media.objects.select_for_update()
        .filter(pk__in=list(by_id), status=Media.Status.PROCESSING, claim_token=token)
        .order_by("pk")
        .values_list("pk", "product_id")
    )
    held = set()
    for pk, product_id in rows:
        by_id[pk].product_id = product_id
        held.add(pk)
    return held
