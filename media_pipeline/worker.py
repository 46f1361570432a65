"""What a Celery worker process does besides its tasks: refuse to start with a
model it cannot load, and mark itself alive for the dashboard. Connected by
MediaPipelineConfig.ready(), which runs in a worker before these signals."""

from __future__ import annotations

import sys
from typing import Any

from celery.signals import heartbeat_sent, worker_init, worker_shutdown

from media_pipeline import heartbeat
from media_pipeline.embedder import ModelUnavailable, check_model_config


@worker_init.connect
def check_clip_model(**kwargs: Any) -> None:
    """A worker whose model cannot be loaded, or does not fit the vector column,
    stops at start-up with the reason, instead of failing every item later."""
    try:
        check_model_config()
    except ModelUnavailable as exc:
        print(f"Stock Mind worker cannot start: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc


@heartbeat_sent.connect
def record_heartbeat(sender: Any, **kwargs: Any) -> None:
    """Each heartbeat marks the worker alive for the dashboard."""
    heartbeat.record(sender.eventer.hostname)


@worker_shutdown.connect
def forget_worker(sender: Any, **kwargs: Any) -> None:
    heartbeat.forget(sender.hostname)
