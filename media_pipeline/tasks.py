"""Celery tasks: ids in, one function call, transient errors retried."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from media_pipeline import processing, sweeper
from media_pipeline.errors import TRANSIENT_ERRORS
from media_pipeline.queue import PROCESS_MEDIA_TASK, SWEEP_MEDIA_TASK

logger = logging.getLogger(__name__)

# Transient failures (database, broker, storage unavailable) are retried this
# many times with exponential backoff (1 s, 2 s, 4 s, ... at most 5 minutes).
TRANSIENT_RETRIES = 6


class ProcessMediaTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # Retries exhausted, or an error that is not the file's fault and not
        # transient (a bug): the item fails with the reason, the worker goes on.
        media_id = args[0] if args else kwargs.get("media_id")
        try:
            processing.fail(media_id, task_id, f"Processing error: {type(exc).__name__}: {exc}")
        except Exception:
            logger.exception("could not record the failure of media %s; the sweeper will", media_id)


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
def process_media(self, media_id: int) -> str:
    return processing.process_media(media_id, token=self.request.id).status


@shared_task(name=SWEEP_MEDIA_TASK, acks_late=True, autoretry_for=TRANSIENT_ERRORS, max_retries=3, retry_backoff=True)
def sweep_media() -> dict:
    return sweeper.sweep().__dict__
