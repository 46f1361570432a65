"""Celery tasks of the webhooks: ids in, one function call."""

from __future__ import annotations

from celery import shared_task

from catalog import webhooks
from config.queues import DELIVER_WEBHOOK_TASK, SEND_DUE_WEBHOOKS_TASK, send_webhook_deliveries
from config.transient import TRANSIENT_ERRORS


@shared_task(
    name=DELIVER_WEBHOOK_TASK,
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=5,
    retry_backoff=True,
    time_limit=webhooks.ATTEMPT_LIMIT_S,
)
def deliver_webhook(delivery_id: int) -> float | None:
    retry_in = webhooks.attempt_delivery(delivery_id)
    if retry_in is not None:
        send_webhook_deliveries([delivery_id], countdown=retry_in)
    return retry_in


@shared_task(name=SEND_DUE_WEBHOOKS_TASK, acks_late=True, autoretry_for=TRANSIENT_ERRORS, max_retries=3)
def send_due_webhooks() -> int:
    return len(webhooks.send_due())
