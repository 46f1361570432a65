"""One video: its frames sampled in a decoding thread while this one
prepares those kept so far (pixels, thumbnail, hash) and the model's thread
embeds them, frames and vectors written in one transaction that replaces
any earlier run's."""

from __future__ import annotations

import logging
import queue
from concurrent.futures import Future
from dataclasses import dataclass
from typing import IO

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image

from catalog import transitions
from catalog.models import Embedding, Media, VideoFrame
from catalog.storage_keys import delete_files_on_commit, frame_thumbnail_key
from media_pipeline.decoders import decoder_pool
from media_pipeline.embedder import ClipEmbedder, get_embedder
from media_pipeline.fingerprints import perceptual_hash, thumbnail_jpeg
from media_pipeline.outcomes import Outcome, claim_lost, failed, finished
from media_pipeline.probe import check_unprobed
from media_pipeline.storage import open_local, save_overwriting
from media_pipeline.uploads import sha256_of
from media_pipeline.video import SampledFrame, SampledVideo, sample_video

logger = logging.getLogger(__name__)

# A video's kept frames are embedded this many at a time while decoding goes on.
VIDEO_EMBED_CHUNK = 16


def process_video(media: Media, token: str) -> Outcome:
    """Sample, embed and store the claimed video `media`."""
    try:
        return _embed(media, token)
    except Exception as exc:
        return failed(media, token, exc)


def _embed(media: Media, token: str) -> Outcome:
    embedder = get_embedder()
    with open_local(media.storage_key) as file:
        check_unprobed(media, file)
        # Objects that arrived through S3 were not hashed on the way in.
        sha256 = media.sha256 or sha256_of(file)
        sampled, vectors, kept = _sample_and_embed(media, file, embedder)
    logger.info(
        "video %s: %d frames decoded, %d sampled, %d kept",
        media.pk,
        sampled.decoded,
        sampled.sampled,
        len(sampled.frames),
    )
    if not _store(media, token, sampled, vectors, kept, embedder.model_name, sha256):
        return claim_lost(media)
    return finished([media])[media.pk]


@dataclass(frozen=True)
class _Kept:
    """What a kept frame leaves besides its vector: its stored thumbnail and its hash."""

    thumbnail_key: str
    phash: int


def _sample_and_embed(
    media: Media, file: IO[bytes], embedder: ClipEmbedder
) -> tuple[SampledVideo, np.ndarray, list[_Kept]]:
    """Sample the video in a decoding thread; meanwhile this one preprocesses
    each kept frame, stores its thumbnail and hashes it, and queues the frames
    on the model's thread VIDEO_EMBED_CHUNK at a time without waiting for
    their vectors: decoding, the frames' own work and embedding overlap. The
    thumbnails of a video whose decoding fails are deleted again."""
    frames: queue.SimpleQueue[SampledFrame] = queue.SimpleQueue()
    decoding = decoder_pool().submit(
        sample_video,
        file,
        sample_seconds=settings.VIDEO_SAMPLE_SECONDS,
        max_frames=settings.VIDEO_MAX_FRAMES,
        max_seconds=settings.MAX_VIDEO_SECONDS,
        output_size=embedder.preprocess.resized_size,
        on_keep=frames.put,
    )
    embedding: list[Future[np.ndarray]] = []
    kept: list[_Kept] = []
    chunk: list[np.ndarray] = []
    try:
        while True:
            try:
                frame = frames.get(timeout=0.02)
            except queue.Empty:
                if decoding.done() and frames.empty():
                    break
                continue
            chunk.append(embedder.preprocess(frame.image))
            kept.append(_Kept(_store_thumbnail(media, frame.index, frame.image), perceptual_hash(frame.image)))
            if len(chunk) >= VIDEO_EMBED_CHUNK:
                embedding.append(embedder.embed_pixels_later(chunk))
                chunk = []
        sampled = decoding.result()  # raises what decoding raised
    except Exception:
        # Frames of an earlier run keep theirs (a frame's key is its index's).
        earlier = set(VideoFrame.objects.filter(media=media).values_list("thumbnail_key", flat=True))
        for thumbnail in kept:
            if thumbnail.thumbnail_key not in earlier:
                default_storage.delete(thumbnail.thumbnail_key)
        raise
    embedding.append(embedder.embed_pixels_later(chunk))
    return sampled, np.concatenate([vectors.result() for vectors in embedding]), kept


def _store_thumbnail(media: Media, index: int, image: Image.Image) -> str:
    return save_overwriting(frame_thumbnail_key(media.storage_key, index), ContentFile(thumbnail_jpeg(image)))


def _store(
    media: Media,
    token: str,
    sampled: SampledVideo,
    vectors: np.ndarray,
    kept: list[_Kept],
    model_name: str,
    sha256: str,
) -> bool:
    thumbnail_keys = [frame.thumbnail_key for frame in kept]
    with transaction.atomic():
        held = transitions.lock_claims([media.pk], token)
        if media.pk not in held:
            return False
        media.product_id = held[media.pk]
        previous = VideoFrame.objects.filter(media=media)
        delete_files_on_commit(set(previous.values_list("thumbnail_key", flat=True)) - set(thumbnail_keys))
        Embedding.objects.filter(media=media).delete()
        previous.delete()
        frames = VideoFrame.objects.bulk_create(
            VideoFrame(
                tenant=media.tenant,
                media=media,
                index=frame.index,
                timestamp_ms=frame.timestamp_ms,
                thumbnail_key=own.thumbnail_key,
                is_keyframe=frame.is_keyframe,
                phash=own.phash,
            )
            for frame, own in zip(sampled.frames, kept, strict=True)
        )
        Embedding.objects.bulk_create(Embedding.build(media, frames, vectors, model_name))
        return transitions.mark_ready(
            media.pk,
            token,
            width=sampled.width,
            height=sampled.height,
            duration_ms=sampled.duration_ms,
            error=sampled.warning,
            thumbnail_key=thumbnail_keys[0] if thumbnail_keys else "",
            sha256=sha256,
        )
