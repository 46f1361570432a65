"""Handing media to the workers. Always after commit: a worker must find the
row it is told about, and a rolled-back row must not be processed."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

PROCESS_MEDIA_TASK = "media_pipeline.process_media"
SWEEP_MEDIA_TASK = "media_pipeline.sweep_media"


def send_processing(media_ids: Iterable[int]) -> None:
    """Send now; raises when the broker is unavailable. Call outside transactions."""
    from config.celery import app

    ids = list(media_ids)
    for media_id in ids:
        app.send_task(PROCESS_MEDIA_TASK, args=[media_id], queue=settings.QUEUE_MEDIA)
    logger.debug("enqueued %d media for processing", len(ids))


def enqueue_processing(media_ids: Iterable[int]) -> None:
    """Send once the current transaction commits."""
    ids = list(media_ids)
    if ids:
        # robust: a broker outage must not turn a stored upload into a 500; the
        # row stays `pending` and the sweeper enqueues it again.
        transaction.on_commit(lambda: send_processing(ids), robust=True)
