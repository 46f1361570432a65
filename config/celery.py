import os
import sys

from celery import Celery
from celery.signals import heartbeat_sent, worker_init, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("stockmind")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def worker_argv(queues: list[str], loglevel: str = "INFO") -> list[str]:
    """The command line of one worker process as the demo and the tests start it
    (Procfile.dev says the same): one process, torch uses the cores."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--queues",
        ",".join(queues),
        "--concurrency",
        "1",
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]


@worker_init.connect
def check_clip_model(**kwargs) -> None:
    """A worker whose model cannot be loaded, or does not fit the vector column,
    stops at start-up with the reason, instead of failing every item later."""
    from media_pipeline.embedder import ModelUnavailable, check_model_config

    try:
        check_model_config()
    except ModelUnavailable as exc:
        print(f"Stock Mind worker cannot start: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc


@heartbeat_sent.connect
def record_heartbeat(sender, **kwargs) -> None:
    """Each heartbeat marks the worker alive for the dashboard."""
    from media_pipeline import heartbeat

    heartbeat.record(sender.eventer.hostname)


@worker_shutdown.connect
def forget_worker(sender, **kwargs) -> None:
    from media_pipeline import heartbeat

    heartbeat.forget(sender.hostname)
