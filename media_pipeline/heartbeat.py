"""Which workers are alive, for the dashboard: every Celery worker refreshes a
key in Redis with each of its heartbeats (every 2 s, from its main loop, the
same loop that would answer a ping), and the key expires when they stop.
Reading them is one SCAN, where a broadcast ping waits out its timeout."""

from __future__ import annotations

import logging
import time

import redis

from config.broker import broker_client

logger = logging.getLogger(__name__)

KEY_PREFIX = "stockmind:worker:"
# A worker that missed five heartbeats in a row no longer counts as alive.
ALIVE_FOR_S = 10
TIMEOUT_S = 1.0


def record(hostname: str) -> None:
    """Called on each heartbeat of worker `hostname`."""
    try:
        with broker_client(TIMEOUT_S) as client:
            client.set(f"{KEY_PREFIX}{hostname}", str(time.time()), ex=ALIVE_FOR_S)
    except redis.exceptions.RedisError as exc:  # the broker is down: the worker cannot work either
        logger.debug("could not record the heartbeat of %s: %s", hostname, exc)


def forget(hostname: str) -> None:
    """Called when worker `hostname` shuts down cleanly."""
    try:
        with broker_client(TIMEOUT_S) as client:
            client.delete(f"{KEY_PREFIX}{hostname}")
    except redis.exceptions.RedisError as exc:
        logger.debug("could not forget worker %s: %s", hostname, exc)


def live_workers() -> list[str] | None:
    """Names of the workers with a recent heartbeat; None when Redis does not answer."""
    try:
        with broker_client(TIMEOUT_S) as client:
            keys = list(client.scan_iter(match=f"{KEY_PREFIX}*", count=1000))
    except redis.exceptions.RedisError:
        return None
    return sorted(key.decode()[len(KEY_PREFIX) :] for key in keys)
