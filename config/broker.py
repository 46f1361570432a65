"""A client of the broker's Redis (CELERY_BROKER_URL), for reads outside
Celery: queue depths, workers' heartbeats, the readiness check."""

from __future__ import annotations

import redis
from django.conf import settings


def broker_client(timeout_s: float) -> redis.Redis:
    """A Redis client that gives up after `timeout_s`, connecting or reading:
    a dashboard or a probe must answer while the broker hangs. Close it (or
    use it as a context manager) when done."""
    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
