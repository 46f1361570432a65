"""A real Celery worker process (as `make run` starts it) for the tests that
need one: killed with SIGKILL, or fed files that might crash a decoder."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from django.conf import settings

from config.celery import worker_argv

ROOT = Path(__file__).resolve().parent.parent


def worker_env(media_root: Path, clip_model: str, **extra) -> dict:
    """The environment of a worker on the test database, broker and storage."""
    db = settings.DATABASES["default"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.CELERY_BROKER_URL,
        MEDIA_ROOT=str(media_root),
        CLIP_MODEL=clip_model,
        DJANGO_SECRET_KEY="worker-test",
        **extra,
    )
    return env


def start_worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        worker_argv(["media"]),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the worker and its pool (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
