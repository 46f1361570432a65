"""What the soak runs share (bench/soak_faults.py, bench/soak_load.py): the
demo's PostgreSQL and Redis stopped and started again on the ports they had,
the processes of a deployment (worker, beat, web, bridge, moto), their
resident memory, and the check that every item ended `ready` or `failed` with
a reason and exactly one set of vectors.

The soak runs use the demo's services (`make services`), each in a database and
a Redis database number of its own; never the test suite's (.data/test).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import ROOT, Server, Worker, _Service, built_model, children, free_port, read_services_env
from config.embedded_services import Postgres, Redis, port_answers
from config.embedded_services import start as start_services

DATA_DIR = ROOT / ".data"
SOAK_DIR = DATA_DIR / "soak"
LOG_DIR = SOAK_DIR / "logs"
TINY_MODEL = DATA_DIR / "models" / "clip-tiny"

__all__ = ["Server", "Worker"]


def tiny_model() -> Path:
    """The tiny CLIP of the demo (`make model`): 2,000 items go through a
    worker on 2 cores in minutes, and what is measured here is not speed."""
    return built_model(TINY_MODEL, "tiny")


def use_redis_database(number: int) -> str:
    """Point REDIS_URL (broker, cache, rate limits) at database `number` of the
    demo's Redis, emptied first: a soak's queues never mix with the demo's."""
    import redis

    read_services_env()
    base = os.environ["REDIS_URL"].rsplit("/", 1)[0]
    url = f"{base}/{number}"
    redis.Redis.from_url(url).flushdb()
    os.environ["REDIS_URL"] = url
    return url


def flush_redis_database(url: str) -> None:
    """Drop what a soak left in its Redis database (messages of items that are
    settled, heartbeats), so no later worker on these services picks them up."""
    import redis

    try:
        redis.Redis.from_url(url).flushdb()
    except redis.exceptions.RedisError as exc:
        print(f"could not empty {url}: {exc}", flush=True)


# --- the demo's PostgreSQL and Redis, stopped and started on their ports -----------


class DemoServices:
    """The demo's PostgreSQL and Redis under .data, as `make services` runs them.

    The processes under test hold the servers' URLs, so a restart here uses
    the port each server had (config.embedded_services would pick a free one)."""

    def __init__(self) -> None:
        self.postgres = Postgres(DATA_DIR)
        self.redis = Redis(DATA_DIR)
        pg_port, redis_port = self.postgres._running_port(), self.redis._running_port()
        if not pg_port or not redis_port:
            sys.exit("The demo's PostgreSQL and Redis are not running: run `make services` first.")
        self.pg_port, self.redis_port = pg_port, redis_port

    def stop_postgres(self) -> None:
        self.postgres.stop()

    def start_postgres(self) -> None:
        self.postgres.start(self.pg_port)

    def stop_redis(self) -> None:
        self.redis.stop()

    def start_redis(self) -> None:
        self.redis.start(self.redis_port)

    def ensure_running(self) -> None:
        """Both servers up again, whatever happened: on their ports if possible."""
        for name, server, port in (("PostgreSQL", self.postgres, self.pg_port), ("Redis", self.redis, self.redis_port)):
            if server._running_port():
                continue
            try:
                server.start(port)
                print(f"{name} started again on port {port}", flush=True)
            except Exception as exc:
                print(f"{name} did not start on port {port} ({exc}): starting both anew", flush=True)
                start_services(DATA_DIR)


# --- processes ---------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """The resident memory (VmRSS) of process `pid` now, in MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def alive_children(pid: int) -> list[int]:
    try:
        return children(pid)
    except OSError:
        return []


def kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Beat(_Service):
    """`celery -A config beat`, as in Procfile.dev: it schedules the stuck
    sweeper every SWEEP_INTERVAL_SECONDS."""

    def __init__(self, env: dict[str, str], log_path: Path, schedule: Path):
        schedule.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "celery", "-A", "config", "beat", "--schedule", str(schedule)]
        self._start([*argv, "--loglevel", "INFO"], env, log_path)


class Moto(_Service):
    """moto's server mode, S3 and SQS on a loopback port, in its own process."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        argv = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        self._start(argv, {}, log_path)
        deadline = time.monotonic() + 60
        while not port_answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start; see {log_path}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class BridgeProcess(_Service):
    """`manage.py sqs_bridge` (bench/soak_bridge.py: the same Bridge, able to die
    on purpose)."""

    def __init__(self, env: dict[str, str], log_path: Path, die_at_delete: int = 0, marker: Path | None = None):
        argv = [sys.executable, str(ROOT / "bench" / "soak_bridge.py"), "--wait-seconds", "1"]
        if die_at_delete:
            argv += ["--die-at-delete", str(die_at_delete), "--marker", str(marker)]
        self._start(argv, env, log_path)


def end(service: _Service) -> None:
    """Stop a service that may already have died (killed on purpose)."""
    if service.process.poll() is None:
        service.stop()
    else:
        service.log.close()


# --- did every item end well ------------------------------------------------------


@dataclass
class ItemCheck:
    """What the database says about a set of media, after the run."""

    expected: int = 0
    found: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    unsettled: list[int] = field(default_factory=list)
    failed_without_reason: list[int] = field(default_factory=list)
    bad_vectors: list[tuple[int, str]] = field(default_factory=list)
    vectors: int = 0
    frames: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unsettled or self.failed_without_reason or self.bad_vectors)


CHECK_SQL = """
SELECT m.id, m.kind, m.status, m.error, m.attempts,
       (SELECT count(*) FROM catalog_embedding e WHERE e.media_id = m.id) AS vectors,
       (SELECT count(*) FROM catalog_embedding e WHERE e.media_id = m.id AND e.frame_id IS NULL) AS image_vectors,
       (SELECT count(DISTINCT e.frame_id) FROM catalog_embedding e WHERE e.media_id = m.id) AS framed,
       (SELECT count(*) FROM catalog_videoframe f WHERE f.media_id = m.id) AS frames,
       (SELECT count(DISTINCT f.timestamp_ms) FROM catalog_videoframe f WHERE f.media_id = m.id) AS timestamps,
       (SELECT count(DISTINCT e.model_name) FROM catalog_embedding e WHERE e.media_id = m.id) AS models
FROM catalog_media m WHERE m.id = ANY(%s)
"""


def check_items(media_ids: list[int]) -> ItemCheck:
    """Every item `ready` or `failed` with a reason, and exactly one set of
    vectors: an image one vector (no frame), a video one per kept frame with no
    two frames at one timestamp, a failed item none."""
    from django.db import connection

    check = ItemCheck(expected=len(set(media_ids)))
    with connection.cursor() as cursor:
        cursor.execute(CHECK_SQL, [sorted(set(media_ids))])
        rows = cursor.fetchall()
    check.found = len(rows)
    check.missing = sorted(set(media_ids) - {row[0] for row in rows})
    for pk, kind, status, error, attempts, vectors, image_vectors, framed, frames, timestamps, models in rows:
        check.by_status[status] = check.by_status.get(status, 0) + 1
        kinds = check.by_kind.setdefault(kind, {})
        kinds[status] = kinds.get(status, 0) + 1
        check.vectors += vectors
        check.frames += frames
        check.attempts[pk] = attempts
        if status not in ("ready", "failed"):
            check.unsettled.append(pk)
            continue
        if status == "failed":
            if not error.strip():
                check.failed_without_reason.append(pk)
            check.reasons[_reason_family(error)] = check.reasons.get(_reason_family(error), 0) + 1
            if vectors or frames:
                check.bad_vectors.append((pk, f"failed with {vectors} vectors, {frames} frames"))
        elif kind == "image" and not (vectors == image_vectors == 1 and frames == 0):
            check.bad_vectors.append((pk, f"image with {vectors} vectors, {frames} frames"))
        elif kind == "video" and not (
            frames >= 1 and vectors == framed == frames == timestamps and image_vectors == 0 and models == 1
        ):
            check.bad_vectors.append(
                (pk, f"video with {vectors} vectors over {framed} frames, {frames} frames at {timestamps} timestamps")
            )
    return check


def _reason_family(error: str) -> str:
    """A failure reason without the numbers and names that vary per item."""
    import re

    first = error.strip().splitlines()[0] if error.strip() else "(no reason)"
    return re.sub(r"\b\d+\b", "N", first)[:200]


def settled_counts(media_ids: list[int]) -> dict[str, int]:
    from django.db.models import Count

    from catalog.models import Media

    rows = Media.objects.filter(pk__in=media_ids).values("status").annotate(n=Count("pk"))
    return {row["status"]: row["n"] for row in rows}
