"""One video: its frames sampled in a decoding thread while this one embeds
those kept so far, thumbnails stored beside it, frames and vectors written in
one transaction that replaces any earlier run's."""

from __future__ import annotations

import logging
import queue
from typing import IO

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
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
        sampled, vectors = _sample_and_embed(file, embedder)
    thumbnail_keys = [_store_thumbnail(media, frame.index, frame.image) for frame in sampled.frames]
    logger.info(
        "video %s: %d frames decoded, %d sampled, %d kept",
        media.pk,
        sampled.decoded,
        sampled.sampled,
        len(sampled.frames),
    )
    if not _store(media, token, sampled, vectors, thumbnail_keys, embedder.model_name, sha256):
        return claim_lost(media)
    return finished([media])[media.pk]


def _sample_and_embed(file: IO[bytes], embedder: ClipEmbedder) -> tuple[SampledVideo, np.ndarray]:
    """Sample the video in a decoding thread while this one embeds the frames
    kept so far, VIDEO_EMBED_CHUNK at a time: decoding and embedding overlap."""
    kept: queue.SimpleQueue[SampledFrame] = queue.SimpleQueue()
    decoding = decoder_pool().submit(
        sample_video,
        file,
        sample_seconds=settings.VIDEO_SAMPLE_SECONDS,
        max_frames=settings.VIDEO_MAX_FRAMES,
        max_seconds=settings.MAX_VIDEO_SECONDS,
        output_size=embedder.preprocess.resized_size,
        on_keep=kept.put,
    )
    vectors: list[np.ndarray] = []
    chunk: list[Image.Image] = []
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


def _store_thumbnail(media: Media, index: int, image: Image.Image) -> str:
    return save_overwriting(frame_thumbnail_key(media.storage_key, index), ContentFile(thumbnail_jpeg(image)))


def _store(
    media: Media,
    token: str,
    sampled: SampledVideo,
    vectors: np.ndarray,
    thumbnail_keys: list[str],
    model_name: str,
    sha256: str,
) -> bool:
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
                thumbnail_key=key,
                is_keyframe=frame.is_keyframe,
                phash=perceptual_hash(frame.image),
            )
            for frame, key in zip(sampled.frames, thumbnail_keys, strict=True)
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
