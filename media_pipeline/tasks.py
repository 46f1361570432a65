"""Celery tasks: ids in, one function call, transient errors retried."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from media_pipeline import processing, sweeper
from media_pipeline.errors import TRANSIENT_ERRORS
from media_pipeline.queue import PROCESS_MEDIA_TASK, SWEEP_MEDIA_TASK

logger = logging.getLogger(__name__)

# Transient failures (database, broker, storage unavailable) are retried this
# many times with exponential backoff (1 s, 2 s, 4 s, ... at most 5 minutes,
# each drawn at random up to that: together about ten minutes on average).
TRANSIENT_RETRIES = 10


class ProcessMediaTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        media_ids = _ids(args[0] if args else kwargs.get("media_ids"))
        try:
            if isinstance(exc, TRANSIENT_ERRORS):
                # Retries used up by an outage: nothing is wrong with the items.
                # Back to `pending`; the sweeper sends them again.
                released = processing.release_claimed(media_ids, task_id)
                logger.warning("media %s back to pending after %s: %s", released, type(exc).__name__, exc)
            else:
                # Not the file's fault and not transient (a bug): the items fail
                # with the reason, the worker goes on.
                processing.fail_claimed(media_ids, task_id, f"Processing error: {type(exc).__name__}: {exc}")
        except Exception:
            logger.exception("could not record the outcome of media %s; the sweeper will", media_ids)


def _ids(media_ids: int | list[int]) -> list[int]:
    # A message holds a list of ids; messages queued before batching held one.
    return [media_ids] if isinstance(media_ids, int) else list(media_ids)


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
def process_media(self, media_ids: list[int] | int) -> list[str]:
    return [outcome.status for outcome in processing.process_batch(_ids(media_ids), token=self.request.id)]


@shared_task(name=SWEEP_MEDIA_TASK, acks_late=True, autoretry_for=TRANSIENT_ERRORS, max_retries=3, retry_backoff=True)
def sweep_media() -> dict:
    return sweeper.sweep().__dict__
