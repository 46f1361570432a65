"""Celery's queues and task names, and the one way work is handed to them.

Every queue and task name is defined here and imported where it is used
(settings' routes and beat schedule, the tasks' decorators, the senders), so a
lower app can enqueue a higher app's task by name without importing it.
Work is sent after commit: a worker must find the row it is told about, and
a rolled-back row must not be processed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from django.conf import settings

# Imported by config/settings.py for the queue and task names: the senders
# import Celery, the database and the transient errors when they run.

logger = logging.getLogger(__name__)

# Media processing: uploads, S3 events, reprocessing. Workers that embed
# listen here; nothing slow and rare waits behind a burst of uploads...
QUEUE_MEDIA = "media"
# ... and everything else (the sweeper, training, predictions, index builds)
# here, so that a long training never holds back new media.
QUEUE_MAINTENANCE = "maintenance"
# Webhook deliveries: many short waits on the tenants' servers (each at most
# WEBHOOK_TIMEOUT_S), which may run on a worker of their own with a higher
# concurrency and no model.
QUEUE_WEBHOOKS = "webhooks"
QUEUES = (QUEUE_MEDIA, QUEUE_MAINTENANCE, QUEUE_WEBHOOKS)

PROCESS_MEDIA_TASK = "media_pipeline.process_media"
SWEEP_MEDIA_TASK = "media_pipeline.sweep_media"
TRAIN_RECOGNIZER_TASK = "search.train_recognizer"
PREDICT_UNASSIGNED_TASK = "search.predict_unassigned"
SYNC_TENANT_INDEXES_TASK = "search.sync_tenant_indexes"
PRUNE_SEARCH_LOG_TASK = "search.prune_search_log"
ROLL_UP_SEARCH_DAYS_TASK = "search.roll_up_search_days"
DELIVER_WEBHOOK_TASK = "catalog.deliver_webhook"
SEND_DUE_WEBHOOKS_TASK = "catalog.send_due_webhooks"


def send_processing(media_ids: Iterable[int]) -> None:
    """Send now, MEDIA_TASK_BATCH_SIZE ids a task (the worker embeds them as one
    batch); raises when the broker is unavailable. Call outside transactions."""
    from config.celery import app

    ids = list(media_ids)
    size = settings.MEDIA_TASK_BATCH_SIZE
    for start in range(0, len(ids), size):
        app.send_task(PROCESS_MEDIA_TASK, args=[ids[start : start + size]], queue=QUEUE_MEDIA)
    logger.debug("enqueued %d media for processing", len(ids))


def enqueue_processing(media_ids: Iterable[int]) -> None:
    """Send once the current transaction commits."""
    from django.db import transaction

    ids = list(media_ids)
    if ids:
        # robust: a broker outage must not turn a stored upload into a 500; the
        # row stays `pending` and the sweeper enqueues it again.
        transaction.on_commit(lambda: send_processing(ids), robust=True)


def send_webhook_deliveries(delivery_ids: Iterable[int], countdown: float = 0) -> None:
    """Send one delivery task each, now or after `countdown` seconds; raises when the broker is unavailable."""
    from config.celery import app

    for delivery_id in delivery_ids:
        app.send_task(DELIVER_WEBHOOK_TASK, args=[delivery_id], queue=QUEUE_WEBHOOKS, countdown=countdown or None)


def enqueue_webhook_deliveries(delivery_ids: Iterable[int]) -> None:
    """Send once the current transaction commits; a broker outage leaves them to beat's sweep."""
    from django.db import transaction

    ids = list(delivery_ids)
    if ids:
        transaction.on_commit(lambda: send_webhook_deliveries(ids), robust=True)


def enqueue_maintenance(task_name: str, *args: int, on_error: Callable[[Exception], None] | None = None) -> None:
    """Send a maintenance task (training, predictions) once the current
    transaction commits. A broker that refuses it is reported to `on_error`,
    which records it where the operator looks, or raised."""
    from django.db import transaction

    from config.celery import app
    from config.transient import TRANSIENT_ERRORS

    def send() -> None:
        try:
            app.send_task(task_name, args=list(args), queue=QUEUE_MAINTENANCE)
        except TRANSIENT_ERRORS as exc:
            if on_error is None:
                raise
            on_error(exc)

    transaction.on_commit(send)


def request_maintenance(task_name: str, *args: int, every_s: int) -> None:
    """Send a maintenance task now, at most once every `every_s` seconds with
    the same arguments (across processes, through the cache), for work noticed
    on the way to something else (a search). Never raises: a broker or cache
    that refuses is logged, and asked again `every_s` later (so that at most
    one caller a period waits for an unreachable broker's connect timeout). A
    request no worker started within `every_s` expires; the next one replaces it."""
    from django.core.cache import cache

    from config.celery import app

    key = f"maintenance-requested:{task_name}:{':'.join(map(str, args))}"
    try:
        if cache.add(key, 1, timeout=every_s):
            # No retries: the caller is answering a request meanwhile.
            app.send_task(task_name, args=list(args), queue=QUEUE_MAINTENANCE, retry=False, expires=every_s)
            logger.info("requested %s%s", task_name, tuple(args))
    except Exception:  # the caller's answer matters more than this request
        logger.warning("could not request %s%s", task_name, tuple(args), exc_info=True)
