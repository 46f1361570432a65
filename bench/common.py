"""What the benchmarks and the soak runs share: the throwaway databases and
Redis databases on the demo's services, the models, the processes of a
deployment (worker, beat, web, bridge, moto) and their memory, the demo's
servers stopped and started again on their ports, waiting for media to
settle and the check that every item ended well, medians and percentiles.

Tables and the pages they make are in bench/report.py. The runs use the
demo's services (`make services`), never the test suite's (.data/test).
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.embedded_services import Postgres, Redis, free_port, port_answers  # noqa: E402
from config.embedded_services import start as start_services  # noqa: E402

DATA_DIR = ROOT / ".data"
SERVICES_ENV = DATA_DIR / "services.env"
BENCH_DB = "stockmind_bench"
BENCH_DIR = DATA_DIR / "bench"
BENCH_LOG_DIR = BENCH_DIR / "logs"
SOAK_DIR = DATA_DIR / "soak"
SOAK_LOG_DIR = SOAK_DIR / "logs"
VIT_B_32_MODEL = DATA_DIR / "models" / "clip-vit-b-32"
TINY_MODEL = DATA_DIR / "models" / "clip-tiny"
# What text queries are made of, three at a time.
QUERY_WORDS = "red blue green leather canvas running shoe boot bag jacket dress watch lamp chair table mug".split()


# --- databases --------------------------------------------------------------------


def read_services_env() -> None:
    """DATABASE_URL and REDIS_URL of the demo's embedded services (`make services`)."""
    import environ

    if not SERVICES_ENV.exists():
        sys.exit("No .data/services.env: run `make services` first.")
    environ.Env.read_env(SERVICES_ENV, overwrite=False)


def _postgres_base_url() -> str:
    """The demo's PostgreSQL server, without a database name."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("No DATABASE_URL: run `make services` first.")
    return url.replace("postgres://", "postgresql://").rsplit("/", 1)[0]


def drop_bench_database(name: str) -> None:
    import psycopg

    with psycopg.connect(_postgres_base_url() + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def use_bench_database(name: str = BENCH_DB) -> str:
    """Drop and create the throwaway database `name` beside the demo's and point
    DATABASE_URL at it (before django.setup()); returns that URL."""
    import psycopg

    read_services_env()
    base = _postgres_base_url()
    drop_bench_database(name)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = f"{base}/{name}"
    return os.environ["DATABASE_URL"]


def set_up_django() -> None:
    """django.setup() and the migrations, once the environment names the
    database, the model and the storage."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


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


class DemoServices:
    """The demo's PostgreSQL and Redis under .data, as `make services` runs them.

    The processes under test hold the servers' URLs, so a restart here uses
    the port each server had (config.embedded_services would pick a free one)."""

    def __init__(self) -> None:
        self.postgres = Postgres(DATA_DIR)
        self.redis = Redis(DATA_DIR)
        pg_port, redis_port = self.postgres.running_port(), self.redis.running_port()
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
            if server.running_port():
                continue
            try:
                server.start(port)
                print(f"{name} started again on port {port}", flush=True)
            except Exception as exc:
                print(f"{name} did not start on port {port} ({exc}): starting both anew", flush=True)
                start_services(DATA_DIR)


# --- models -----------------------------------------------------------------------


def built_model(directory: Path, size: str) -> Path:
    """The CLIP of `size` (`build_clip_model --size`) with random weights,
    built once under `directory`."""
    if not (directory / "model.safetensors").exists():
        import subprocess

        # Its own process: the calling script sets up Django only after
        # choosing its database and media directory.
        subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "manage.py", "build_clip_model", str(directory), "--size", size],
            cwd=ROOT,
            env={**os.environ, "DJANGO_DEBUG": "1"},
            check=True,
        )
    return directory


def vit_b_32() -> Path:
    """The ViT-B/32-shaped CLIP with random weights: speed does not depend on
    the values of the weights."""
    return built_model(VIT_B_32_MODEL, "vit-b-32")


def clear_clip_settings() -> None:
    """Drop CLIP settings this shell may carry: a benchmark measures the
    defaults a machine gets unless it says otherwise."""
    for name in ("CLIP_PRECISION", "CLIP_RUNTIME", "CLIP_DEVICE", "CLIP_BATCH_SIZE"):
        os.environ.pop(name, None)


def tiny_model() -> Path:
    """The tiny CLIP of the demo (`make model`): 2,000 items go through a
    worker on 2 cores in minutes, and what the soaks measure is not speed."""
    return built_model(TINY_MODEL, "tiny")


# --- statistics and threads -------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed_ms(function, runs: int) -> float:
    """The median milliseconds of `runs` calls of `function`."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return median(samples)


def operator_client():
    """Django's test client logged in as the bench's superuser (made on first use),
    for timing the console's pages in process."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    users = get_user_model().objects
    user = users.filter(username="bench").first() or users.create_superuser(
        "bench", "bench@example.com", "bench-password-123"
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q))


class Latencies:
    """p50 and p95 of a dataclass's `latencies` (ms)."""

    latencies: list[float]

    @property
    def p50(self) -> float:
        return median(self.latencies)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 95)


def in_threads(items: Sequence, work) -> float:
    """`work(item)` for every item, each in a thread of its own, all at once;
    returns the seconds until the last one finished."""
    import threading

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


# --- processes and their memory ---------------------------------------------------


def _status_mib(pid: int, name: str) -> float:
    """A memory line (VmHWM, VmRSS) of /proc/<pid>/status, in MiB; OSError if
    the process is gone."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of process `pid`, in MiB."""
    return _status_mib(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    """The resident memory (VmRSS) of process `pid` now, in MiB; 0 if it is gone."""
    try:
        return _status_mib(pid, "VmRSS")
    except OSError:
        return 0.0


def children(pid: int) -> list[int]:
    """The child processes of `pid`; none if it is gone."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.extend(int(child) for child in (task / "children").read_text().split())
    except OSError:
        return []
    return found


def kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class _Service:
    """A process of ours started for a benchmark, its output in a log file."""

    child_label = "child"  # what its pool's children are called in peak_rss_mb()

    def _start(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        import subprocess

        self.log = open(log_path, "w")
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv, cwd=ROOT, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT
        )

    def peak_rss_mb(self) -> dict[str, float]:
        """Peak RSS of the main process and of each of its children."""
        peaks = {"main": peak_rss_mb(self.process.pid)}
        for n, child in enumerate(children(self.process.pid)):
            peaks[f"{self.child_label} {n + 1}"] = peak_rss_mb(child)
        return peaks

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except Exception:
                self.process.kill()
        self.log.close()


def end(service: _Service) -> None:
    """Stop a service that may already have died (killed on purpose)."""
    if service.process.poll() is None:
        service.stop()
    else:
        service.log.close()


class Worker(_Service):
    """A real Celery worker process, started as `make run` starts it
    (config.celery.worker_argv: prefork, one child that loads the model),
    with `env` on top of this process's environment."""

    def __init__(self, queues: Sequence[str], env: dict[str, str], log_path: Path, loglevel: str = "WARNING"):
        from config.celery import worker_argv

        self._start(worker_argv(list(queues), loglevel=loglevel), env, log_path)


class Server(_Service):
    """The web app under gunicorn (as the Dockerfile serves it) on a free
    loopback port, the model preloaded in each worker; `env` on top of this
    process's environment."""

    child_label = "worker"
    START_TIMEOUT_S = 180  # the model loads in every worker before it answers

    def __init__(self, env: dict[str, str], workers: int, log_path: Path, threads: int = 1):
        self.port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{self.port}"]
        argv += ["--workers", str(workers), "--threads", str(threads), "--timeout", "120"]
        self._start(argv, {"SEARCH_PRELOAD": "1", **env}, log_path)
        self._wait_answering(workers, log_path)

    def _wait_answering(self, workers: int, log_path: Path) -> None:
        import urllib.request

        deadline = time.monotonic() + self.START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {log_path}")
            try:
                with urllib.request.urlopen(self.url("/health/"), timeout=2):  # noqa: S310 - loopback
                    if len(children(self.process.pid)) >= workers:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"gunicorn did not answer; see {log_path}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class Beat(_Service):
    """`celery -A config beat`, as in Procfile.dev: it schedules the stuck
    sweeper every SWEEP_INTERVAL_SECONDS."""

    def __init__(self, env: dict[str, str], log_path: Path, schedule: Path):
        schedule.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "celery", "-A", "config", "beat", "--schedule", str(schedule)]
        self._start([*argv, "--loglevel", "INFO"], env, log_path)


class Moto(_Service):
    """moto's server mode, S3 and SQS on a loopback port, in its own process."""

    START_TIMEOUT_S = 60

    def __init__(self, log_path: Path):
        self.port = free_port()
        argv = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        self._start(argv, {}, log_path)
        deadline = time.monotonic() + self.START_TIMEOUT_S
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


# --- tenants and the HTTP API -----------------------------------------------------


def new_tenant(slug: str, name: str = "", **settings) -> tuple:
    """A tenant made as every creator makes one (catalog.tenants.create_tenant,
    with its settings, `settings` on top of the defaults) and a write key for
    it: (tenant, the key's plaintext)."""
    from catalog.models import ApiKey, Tenant
    from catalog.tenants import create_tenant

    tenant = create_tenant(Tenant(slug=slug, name=name or slug), **settings)
    return tenant, ApiKey.issue(tenant, "bench", scope=ApiKey.Scope.WRITE)[1]


def add_products(tenant, count: int, sku_prefix: str = "SKU-") -> list:
    """`count` products of `tenant`: SKUs `sku_prefix`0 on, titles "product N"."""
    from catalog.models import Product

    return Product.objects.bulk_create(
        Product(tenant=tenant, sku=f"{sku_prefix}{n}", title=f"product {n}") for n in range(count)
    )


def api_session(key: str):
    """A requests session that sends API key `key` with every request."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def upload(session, server: Server, sku: str, name: str, data: bytes, content_type: str, timeout: float = 60):
    """POST /api/v1/media/ of one file for product `sku`; the response."""
    return session.post(
        server.url("/api/v1/media/"),
        data={"product": sku},
        files={"file": (name, data, content_type)},
        timeout=timeout,
    )


# --- media settling, and did every item end well ----------------------------------


def wait_settled(media_ids: list[int], timeout: float, *, poll: float = 0.02, strict: bool = True) -> float | None:
    """Wait until every item is ready or failed; returns the time.perf_counter()
    at which the last one was seen settled. Strict, a failed item or the timeout
    raises; otherwise the timeout returns None and the caller checks the items
    (check_items)."""
    from catalog.models import Media

    unsettled = Media.objects.filter(pk__in=media_ids).exclude(status__in=[Media.Status.READY, Media.Status.FAILED])
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not unsettled.exists():
            now = time.perf_counter()
            failed = strict and list(Media.objects.filter(pk__in=media_ids).failed().values_list("pk", "error")[:3])
            if failed:
                raise RuntimeError(f"media failed: {failed}")
            return now
        time.sleep(poll)
    if strict:
        raise TimeoutError(f"{len(media_ids)} media not settled within {timeout:.0f} s")
    return None


def settled_counts(media_ids: list[int]) -> dict[str, int]:
    """How many of the items are in each status."""
    from django.db.models import Count

    from catalog.models import Media

    rows = Media.objects.filter(pk__in=media_ids).values("status").annotate(n=Count("pk"))
    return {row["status"]: row["n"] for row in rows}


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


def _check_sql() -> str:
    from catalog.models import EMBEDDING_TABLE

    return f"""
SELECT m.id, m.kind, m.status, m.error, m.attempts,
       (SELECT count(*) FROM {EMBEDDING_TABLE} e WHERE e.media_id = m.id) AS vectors,
       (SELECT count(*) FROM {EMBEDDING_TABLE} e WHERE e.media_id = m.id AND e.frame_id IS NULL) AS image_vectors,
       (SELECT count(DISTINCT e.frame_id) FROM {EMBEDDING_TABLE} e WHERE e.media_id = m.id) AS framed,
       (SELECT count(*) FROM catalog_videoframe f WHERE f.media_id = m.id) AS frames,
       (SELECT count(DISTINCT f.timestamp_ms) FROM catalog_videoframe f WHERE f.media_id = m.id) AS timestamps,
       (SELECT count(DISTINCT e.model_name) FROM {EMBEDDING_TABLE} e WHERE e.media_id = m.id) AS models
FROM catalog_media m WHERE m.id = ANY(%s)
"""  # noqa: S608 - a constant table name


def check_items(media_ids: list[int]) -> ItemCheck:
    """Every item `ready` or `failed` with a reason, and exactly one set of
    vectors: an image one vector (no frame), a video one per kept frame with no
    two frames at one timestamp, a failed item none."""
    from django.db import connection

    check = ItemCheck(expected=len(set(media_ids)))
    with connection.cursor() as cursor:
        cursor.execute(_check_sql(), [sorted(set(media_ids))])
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
