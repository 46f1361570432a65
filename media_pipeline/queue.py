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


def enqueue_processing(media_ids: Iterable[int]) -> None:
    ids = list(media_ids)
    if not ids:
        return

    def send() -> None:
        from config.celery import app

        for media_id in ids:
            app.send_task(PROCESS_MEDIA_TASK, args=[media_id], queue=settings.QUEUE_MEDIA)
        logger.debug("enqueued %d media for processing", len(ids))

    # robust: a broker outage must not turn a stored upload into a 500; the row
    # stays `pending` and is picked up again by the pending sweeper.
    transaction.on_commit(send, robust=True)
