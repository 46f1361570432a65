"""What a Celery worker process does besides its tasks: refuse to start with a
model it cannot load or on a pgvector too old, and mark itself alive for the
dashboard. Connected by
MediaPipelineConfig.ready(), which runs in a worker before these signals."""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery.signals import heartbeat_sent, worker_init, worker_shutdown

from catalog.vector_engine import pgvector_problem
from config.replicas import close_pools
from config.transient import TRANSIENT_ERRORS
from media_pipeline import heartbeat
from media_pipeline.embedder import ModelUnavailable, check_model_config

logger = logging.getLogger(__name__)


@worker_init.connect
def check_clip_model(**kwargs: Any) -> None:
    """A worker whose model cannot be loaded, or does not fit the vector column,
    stops at start-up with the reason, instead of failing every item later."""
    try:
        check_model_config()
    except ModelUnavailable as exc:
        print(f"Stock Mind worker cannot start: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc


@worker_init.connect
def check_pgvector(**kwargs: Any) -> None:
    """A worker refuses to start on a pgvector too old for the search plans.
    A database that does not answer yet is not refused: the worker retries its
    tasks, and /health/ready reports it."""
    try:
        problem = pgvector_problem()
    except TRANSIENT_ERRORS as exc:
        logger.warning("pgvector not checked at start-up, the database does not answer: %s", exc)
        return
    finally:
        # The process that forks the worker's processes holds no connection
        # nor pool when it does: a child would share the socket and inherit a
        # pool without its threads. (Celery closes a child's after each task.)
        close_pools()
    if problem:
        print(f"Stock Mind worker cannot start: {problem}", file=sys.stderr)
        raise SystemExit(1)


@heartbeat_sent.connect
def record_heartbeat(sender: Any, **kwargs: Any) -> None:
    """Each heartbeat marks the worker alive for the dashboard."""
    heartbeat.record(sender.eventer.hostname)


@worker_shutdown.connect
def forget_worker(sender: Any, **kwargs: Any) -> None:
    heartbeat.forget(sender.hostname)
