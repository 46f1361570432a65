"""Celery tasks: ids in, one function call, transient errors retried."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from catalog import transitions
from catalog.models import Media
from config.queues import PROCESS_MEDIA_TASK, SWEEP_MEDIA_TASK
from config.transient import TRANSIENT_ERRORS
from media_pipeline import processing, sweeper

logger = logging.getLogger(__name__)

# Transient failures (database, broker, storage unavailable) are retried this
# many times with exponential backoff (1 s, 2 s, 4 s, ... at most 5 minutes,
# each drawn at random up to that: together about ten minutes on average).
TRANSIENT_RETRIES = 10


class ProcessMediaTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        media_ids = args[0] if args else kwargs.get("media_ids", [])
        try:
            if isinstance(exc, TRANSIENT_ERRORS):
                # Retries used up by an outage: nothing is wrong with the items.
                # Back to `pending`; the sweeper sends them again.
                released = transitions.release_claimed(media_ids, task_id)
                logger.warning("media %s back to pending after %s: %s", released, type(exc).__name__, exc)
            else:
                # Not the file's fault and not transient (a bug): the items fail
                # with the reason, the worker goes on.
                transitions.fail(
                    Media.objects.held_by(task_id).filter(pk__in=media_ids),
                    f"Processing error: {type(exc).__name__}: {exc}",
                )
        except Exception:
            logger.exception("could not record the outcome of media %s; the sweeper will", media_ids)


@shared_task(
    name=PROCESS_MEDIA_TASK,
    base=ProcessMediaTask,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=TRANSIENT_RETRIES,
)
def process_media(self: Task, media_ids: list[int]) -> list[str]:
    return [outcome.status for outcome in processing.process_batch(media_ids, token=self.request.id)]


@shared_task(name=SWEEP_MEDIA_TASK, acks_late=True, autoretry_for=TRANSIENT_ERRORS, max_retries=3, retry_backoff=True)
def sweep_media() -> dict[str, Any]:
    return sweeper.sweep().__dict__
