"""Processing the media items of one task (DESIGN.md flows 3 and 4): claim
them (catalog/transitions.py), then the images as one batch
(media_pipeline/image_pipeline.py) and each video on its own
(media_pipeline/video_pipeline.py). Results are written in transactions that
first remove any earlier frames and vectors, so a re-run never duplicates them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from catalog import transitions
from catalog.models import Media
from media_pipeline.image_pipeline import process_images
from media_pipeline.outcomes import Outcome
from media_pipeline.video_pipeline import process_video

logger = logging.getLogger(__name__)


def process_batch(media_ids: Sequence[int], token: str) -> list[Outcome]:
    """Process the items of task `token`, one Outcome per id, in order.

    A batch delivered again (its worker died, or a transient error is being
    retried) goes one item at a time, each claimed only when its turn comes:
    an item that kills the worker then costs the others at most one more
    attempt, and is failed alone after MEDIA_MAX_ATTEMPTS."""
    ids = list(dict.fromkeys(media_ids))
    if len(ids) > 1 and Media.objects.held_by(token).filter(pk__in=ids).exists():
        return [outcome for media_id in ids for outcome in process_batch([media_id], token)]
    claimed = transitions.claim(ids, token)
    outcomes: dict[int, Outcome] = {}
    for media_id in set(ids) - {media.pk for media in claimed}:
        logger.info("media %s is not pending for task %s: skipped", media_id, token)
        outcomes[media_id] = Outcome(media_id, "skipped")
    images = [media for media in claimed if media.kind == Media.Kind.IMAGE]
    if images:
        outcomes.update(process_images(images, token))
    for video in (media for media in claimed if media.kind == Media.Kind.VIDEO):
        outcomes[video.pk] = process_video(video, token)
    return [outcomes[media_id] for media_id in ids]
