"""Celery tasks of the recognizer, of the tenant indexes and of the search
log: ids in, one function call."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from catalog.models import Tenant
from config.queues import (
    PREDICT_UNASSIGNED_TASK,
    PRUNE_SEARCH_LOG_TASK,
    ROLL_UP_SEARCH_DAYS_TASK,
    SYNC_TENANT_INDEXES_TASK,
    TRAIN_RECOGNIZER_TASK,
)
from config.transient import TRANSIENT_ERRORS
from search import search_days, search_log, tenant_indexes
from search.recognizer import predictions, versions

logger = logging.getLogger(__name__)

# The first sync of a large deployment builds many indexes (a 100,000-vector
# tenant's takes about a minute on 2 cores): above CELERY_TASK_TIME_LIMIT, a
# killed build would be left invalid and started over at every run. A copy
# redelivered meanwhile finds the sync's lock taken and does nothing.
SYNC_TIME_LIMIT_S = 6 * 3600


@shared_task(
    name=TRAIN_RECOGNIZER_TASK, acks_late=True, autoretry_for=TRANSIENT_ERRORS, max_retries=3, retry_backoff=True
)
def train_recognizer(recognizer_id: int) -> str | None:
    trained = versions.train_version(recognizer_id)
    return trained.status if trained else None


@shared_task(
    name=PREDICT_UNASSIGNED_TASK, acks_late=True, autoretry_for=TRANSIENT_ERRORS, max_retries=3, retry_backoff=True
)
def predict_unassigned(tenant_id: int) -> dict[str, Any] | None:
    tenant = Tenant.objects.select_related("settings").filter(pk=tenant_id).first()
    if tenant is None:
        logger.info("tenant %s is gone: no predictions", tenant_id)
        return None
    return predictions.predict_unassigned(tenant).__dict__


@shared_task(
    name=SYNC_TENANT_INDEXES_TASK,
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=3,
    retry_backoff=True,
    time_limit=SYNC_TIME_LIMIT_S,
)
def sync_tenant_indexes(tenant_id: int | None = None) -> dict[str, Any]:
    """Build the missing tenant indexes, drop the obsolete ones: of every
    tenant (beat), or of one whose search found its index missing."""
    result = tenant_indexes.sync(tenant_id=tenant_id, progress=logger.info)
    return {"created": result.created, "dropped": result.dropped, "kept": result.kept, "skipped": result.skipped}


@shared_task(
    name=PRUNE_SEARCH_LOG_TASK, acks_late=True, autoretry_for=TRANSIENT_ERRORS, max_retries=3, retry_backoff=True
)
def prune_search_log() -> int:
    """Beat: drop the searches older than SEARCH_LOG_DAYS."""
    return search_log.prune()


@shared_task(
    name=ROLL_UP_SEARCH_DAYS_TASK, acks_late=True, autoretry_for=TRANSIENT_ERRORS, max_retries=3, retry_backoff=True
)
def roll_up_search_days() -> int:
    """Beat: roll up the days of searches just ended, for the analytics."""
    return search_days.roll_up_recent()
