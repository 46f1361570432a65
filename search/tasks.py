"""Celery tasks of the recognizer: ids in, one function call."""

from __future__ import annotations

import logging

from celery import shared_task

from catalog.models import Tenant
from media_pipeline.errors import TRANSIENT_ERRORS
from media_pipeline.queue import PREDICT_UNASSIGNED_TASK, TRAIN_RECOGNIZER_TASK
from search import recognizer

logger = logging.getLogger(__name__)


@shared_task(
    name=TRAIN_RECOGNIZER_TASK, acks_late=True, autoretry_for=TRANSIENT_ERRORS, max_retries=3, retry_backoff=True
)
def train_recognizer(recognizer_id: int) -> str | None:
    trained = recognizer.train_version(recognizer_id)
    return trained.status if trained else None


@shared_task(
    name=PREDICT_UNASSIGNED_TASK, acks_late=True, autoretry_for=TRANSIENT_ERRORS, max_retries=3, retry_backoff=True
)
def predict_unassigned(tenant_id: int) -> dict | None:
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        logger.info("tenant %s is gone: no predictions", tenant_id)
        return None
    return recognizer.predict_unassigned(tenant).__dict__
