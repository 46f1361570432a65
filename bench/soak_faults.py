"""Faults during an ingest: nothing may be lost.

    .venv/bin/python bench/soak_faults.py [--items 2000] [--rate 8] [--kills 5] [--outage 15] [--seed 1]

A deployment as production runs it, on loopback: S3 and SQS (moto's server,
storage included), the SQS bridge, a Celery worker (media and maintenance
queues), beat (the stuck sweeper every SWEEP_INTERVAL_SECONDS) and the web app
under gunicorn, over the demo's PostgreSQL and Redis in a database and a Redis
database of their own. `--items` files are fed at `--rate` a second: three in
four put in the bucket (S3 event -> SQS -> bridge -> worker), one in four
uploaded through the HTTP API by a client that retries 5xx answers (videos:
one in two). A few are
videos and a few are bad files (truncated, empty, a decompression bomb, noise,
a photo named .mp4), which must end `failed` with their reason.

While they are fed, at random moments (seeded): the worker is killed with
SIGKILL `--kills` times (whole worker and pool child in turn; a supervisor
starts it again two seconds later); Redis is stopped and started again; so is
PostgreSQL (each down `--outage` seconds); and the first bridge kills itself
between enqueueing a message's media and deleting the message, a fresh bridge
taking over. Then nobody touches anything until every item is `ready` or
`failed`: the sweeper, redeliveries and retries must recover it all.

The checks, in SQL: every object and every accepted upload has exactly one
media row, every row is `ready` or `failed` with a reason, with exactly one
set of vectors (an image one, a video one per kept frame, no two frames at one
timestamp, a failed item none), both SQS queues are empty.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import soak_files
from bench.common import Table, emit, use_bench_database
from bench.soak_common import (
    LOG_DIR,
    SOAK_DIR,
    Beat,
    BridgeProcess,
    DemoServices,
    Moto,
    Server,
    Worker,
    alive_children,
    check_items,
    end,
    flush_redis_database,
    kill,
    settled_counts,
    tiny_model,
    use_redis_database,
)
from config.queues import QUEUE_MAINTENANCE, QUEUE_MEDIA

DATABASE = "stockmind_soak_faults"
REDIS_DATABASE = 5
TENANT = "soak-faults"
PRODUCTS = 40
BUCKET = "stockmind-soak-faults"
# Short enough for a run of minutes; production keeps its defaults (README).
SETTINGS = {
    "SWEEP_INTERVAL_SECONDS": "10",
    "PENDING_REQUEUE_MINUTES": "1",
    "CELERY_UNACKED_RESTORE_SECONDS": "5",
    "CELERY_VISIBILITY_TIMEOUT": "120",
    "SQS_WAIT_SECONDS": "1",
}
STUCK_AFTER_MINUTES = 1  # the least the tenant's thresholds allow
SQS_VISIBILITY_TIMEOUT_S = 20
RESTART_AFTER_S = 2.0  # a supervisor's delay before starting a killed worker again
HTTP_RETRY_PAUSE_S = 1.0


@dataclass
class Fault:
    at: float  # seconds after the feed began
    kind: str  # "worker", "worker child", "redis", "postgres", "bridge"; "... exit": died on its own
    detail: str = ""
    held: list[int] = field(default_factory=list)  # media `processing` at the moment
    ended_at: float | None = None


@dataclass
class Feed:
    """What was sent: objects put in the bucket, uploads through the API."""

    started: float = 0.0
    s3_keys: dict[str, soak_files.SoakFile] = field(default_factory=dict)
    http_ids: dict[int, soak_files.SoakFile] = field(default_factory=dict)
    http_answers: list[tuple[float, int]] = field(default_factory=list)  # (t, status; 0: no answer)
    http_rejected: list[tuple[str, int, str]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.started


def make_files(items: int, seed: int) -> list[tuple[soak_files.SoakFile, str]]:
    """(file, path) for each item: "s3" or "http"; videos and bad files spread
    over the run, the bad ones through S3 only (the API refuses them at once)."""
    rng = random.Random(seed)
    videos = max(2, items // 250)
    bad = soak_files.bad_files()
    files = [soak_files.video(seed * 1000 + n) for n in range(videos)]
    files += [soak_files.image(seed * 100_000 + n) for n in range(items - videos - len(bad))]
    rng.shuffle(files)
    plan, counted = [], Counter()
    for f in files:  # one image in four and one clip in two through the API
        counted[f.kind] += 1
        plan.append((f, "http" if counted[f.kind] % (4 if f.kind == "image" else 2) == 0 else "s3"))
    for f in bad:
        plan.insert(rng.randrange(len(plan) + 1), (f, "s3"))
    return plan


def feed_s3(plan: list[tuple[float, soak_files.SoakFile]], feed: Feed, seed: int) -> None:
    from django.conf import settings

    from catalog.aws import s3_client

    s3 = s3_client()
    rng = random.Random(seed)
    for n, (at, f) in enumerate(plan):
        time.sleep(max(0.0, at - feed.now()))
        key = f"clients/{TENANT}/products/SKU-{rng.randrange(PRODUCTS)}/media/{f.kind}/{n:05d}-{f.name}"
        s3.put_object(Bucket=settings.S3_BUCKET_NAME, Key=key, Body=f.data, ContentType=f.content_type)
        feed.s3_keys[key] = f


def feed_http(plan: list[tuple[float, soak_files.SoakFile]], feed: Feed, server: Server, key: str, seed: int) -> None:
    """A client that uploads each file, retrying (as clients do) while the
    server answers 5xx or not at all."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    rng = random.Random(seed)
    for at, f in plan:
        time.sleep(max(0.0, at - feed.now()))
        sku = f"SKU-{rng.randrange(PRODUCTS)}"
        while True:
            try:
                response = session.post(
                    server.url("/api/v1/media/"),
                    data={"product": sku},
                    files={"file": (f.name, f.data, f.content_type)},
                    timeout=60,
                )
                status = response.status_code
            except requests.RequestException:
                status = 0
            feed.http_answers.append((feed.now(), status))
            if status in (200, 202):
                feed.http_ids[response.json()["id"]] = f
                break
            if status and status < 500 and status != 429:
                feed.http_rejected.append((f.name, status, response.text[:200]))
                break
            time.sleep(HTTP_RETRY_PAUSE_S)


def schedule_faults(kills: int, window: float, outage: float, seed: int) -> list[tuple[float, str]]:
    """One fault per slot of the feed window, at a random moment in it (a
    Redis or PostgreSQL outage ends inside its slot), in a random order."""
    rng = random.Random(seed)
    kinds = ["worker" if n % 2 == 0 else "worker child" for n in range(kills)] + ["redis", "postgres"]
    rng.shuffle(kinds)
    start, stop = 0.05 * window, 0.9 * window
    slot = (stop - start) / len(kinds)
    faults = []
    for n, kind in enumerate(kinds):
        room = slot - (outage + 2 if kind in ("redis", "postgres") else 1)
        faults.append((start + n * slot + rng.uniform(0, max(0.0, room)), kind))
    return faults


class Deployment:
    """The processes under test, and the supervisor that starts a killed worker
    or bridge again."""

    def __init__(self, env: dict[str, str], die_at_delete: int):

        self.env = env
        self.queues = [QUEUE_MEDIA, QUEUE_MAINTENANCE]
        self.workers = 0
        self.bridges = 0
        self.marker = SOAK_DIR / "faults-bridge-died.json"
        self.marker.unlink(missing_ok=True)
        self.worker = self._worker()
        self.beat = Beat(env, LOG_DIR / "faults-beat.log", SOAK_DIR / "faults-beat-schedule")
        self.bridge = self._bridge(die_at_delete)
        self.server = Server({"SEARCH_PRELOAD": "0", **env}, 1, LOG_DIR / "faults-gunicorn.log", threads=4)
        self.worker_died_at: float | None = None
        self.worker_killed = False
        self.bridge_died: dict = {}

    def _worker(self) -> Worker:
        self.workers += 1
        return Worker(self.queues, self.env, LOG_DIR / f"faults-worker-{self.workers}.log", loglevel="INFO")

    def _bridge(self, die_at_delete: int = 0) -> BridgeProcess:
        self.bridges += 1
        log = LOG_DIR / f"faults-bridge-{self.bridges}.log"
        return BridgeProcess(self.env, log, die_at_delete=die_at_delete, marker=self.marker)

    def supervise(self, feed: Feed, faults: list[Fault]) -> None:
        """Start again what died, as systemd or Kubernetes would."""
        if self.worker.process.poll() is not None:
            if self.worker_died_at is None:
                self.worker_died_at = time.monotonic()
                if not self.worker_killed:
                    code = self.worker.process.returncode
                    faults.append(Fault(feed.now(), "worker exit", f"the worker exited on its own (status {code})"))
            elif time.monotonic() - self.worker_died_at >= RESTART_AFTER_S:
                end(self.worker)
                self.worker = self._worker()
                self.worker_died_at = None
                self.worker_killed = False
        if self.bridge.process.poll() is not None:
            end(self.bridge)
            if self.marker.exists() and not self.bridge_died:
                self.bridge_died = json.loads(self.marker.read_text())
                names = ", ".join(k.rsplit("/", 1)[1] for k in self.bridge_died.get("keys", []))
                detail = (
                    f"SIGKILL between enqueueing and deleting message {self.bridge_died.get('message_id', '?')} "
                    f"({names}); a fresh bridge started"
                )
                died_ago = time.time() - self.marker.stat().st_mtime  # noticed late while an outage was on
                faults.append(Fault(feed.now() - died_ago, "bridge", detail))
            else:
                code = self.bridge.process.returncode
                faults.append(Fault(feed.now(), "bridge exit", f"the bridge exited on its own (status {code})"))
            self.bridge = self._bridge()

    def kill_worker(self, whole: bool) -> str:
        main = self.worker.process.pid
        pool = alive_children(main)
        self.worker_killed = whole
        kill([main, *pool] if whole else pool)
        if whole:
            return f"SIGKILL to the worker (pid {main}) and its pool child ({', '.join(map(str, pool))})"
        return f"SIGKILL to the pool child ({', '.join(map(str, pool))}) of the worker (pid {main})"

    def stop(self) -> None:
        for service in (self.bridge, self.server, self.worker, self.beat):
            end(service)


def processing_now() -> list[int]:
    from django.db import connection

    from catalog.models import Media

    try:
        return list(Media.objects.filter(status="processing").values_list("pk", flat=True))
    except Exception:
        connection.close()
        return []


def inject(fault: Fault, deployment: Deployment, services: DemoServices, outage: float) -> None:
    if fault.kind in ("worker", "worker child"):
        fault.held = processing_now()
        fault.detail = deployment.kill_worker(whole=fault.kind == "worker")
    elif fault.kind == "redis":
        services.stop_redis()
        time.sleep(outage)
        services.start_redis()
        fault.detail = f"Redis stopped (SIGTERM) and started again on its port {outage:.0f} s later"
    elif fault.kind == "postgres":
        services.stop_postgres()
        time.sleep(outage)
        services.start_postgres()
        fault.detail = f"PostgreSQL stopped (pg_ctl -m fast) and started again on its port {outage:.0f} s later"


def queue_depths() -> tuple[int, int]:
    """(messages in the event queue, in its dead-letter queue), in flight included."""
    from django.conf import settings

    from catalog.aws import sqs_client

    sqs = sqs_client()
    dlq = sqs.get_queue_url(QueueName=f"{BUCKET}-events-dlq")["QueueUrl"]
    depths = []
    for url in (settings.SQS_QUEUE_URL, dlq):
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        depths.append(sum(int(v) for v in attributes.values()))
    return depths[0], depths[1]


def expected_ids(feed: Feed) -> tuple[dict[int, soak_files.SoakFile], list[str]]:
    """Media ids of everything fed, and the S3 keys that have no media row."""
    from catalog.models import Media

    by_key = dict(Media.objects.filter(storage_key__in=list(feed.s3_keys)).values_list("storage_key", "pk"))
    ids = {pk: feed.s3_keys[key] for key, pk in by_key.items()}
    ids.update(feed.http_ids)
    return ids, sorted(set(feed.s3_keys) - set(by_key))


def progress(feed: Feed) -> tuple[str, bool]:
    """A line on where the run stands, and whether everything fed is settled
    (the event queue empty included)."""
    from django.db import connection

    try:
        ids, unseen = expected_ids(feed)
        counts = settled_counts(list(ids))
        depth, _ = queue_depths()
    except Exception as exc:  # the database may be down while a fault is on
        connection.close()
        return f"t={feed.now():5.0f} s  ({str(exc).strip()[:80]})", False
    open_items = sum(n for status, n in counts.items() if status in ("pending", "processing"))
    expected = len(feed.s3_keys) + len(feed.http_ids)
    line = f"t={feed.now():5.0f} s  media {len(ids)} of {expected} sent  {counts}  event queue {depth}"
    return line, feed.done.is_set() and not unseen and open_items == 0 and depth == 0 and len(ids) == expected


def wait_recovered(feed: Feed, deployment: Deployment, faults: list[Fault], timeout: float) -> float | None:
    """Supervise until every item fed is settled and the event queue is empty;
    returns when that was first seen (seconds after the feed began), or None."""

    deadline = time.monotonic() + timeout
    last_print = 0.0
    while time.monotonic() < deadline:
        deployment.supervise(feed, faults)
        line, settled = progress(feed)
        if settled:
            print(line, flush=True)
            return feed.now()
        if time.monotonic() - last_print > 10:
            print(line, flush=True)
            last_print = time.monotonic()
        time.sleep(0.5)
    return None


def log_counts() -> Counter:
    """What the processes' logs say the recovery machinery did."""
    counts: Counter = Counter()
    sweep = re.compile(r"sweep: SweepReport\(requeued=(\d+), failed=(\d+), pending_requeued=(\d+)\)")
    for log in LOG_DIR.glob("faults-worker-*.log"):
        text = log.read_text(errors="replace")
        counts["worker retries"] += len(re.findall(r"Retry in \d+", text))
        counts["worker lost"] += text.count("WorkerLostError")
        counts["deliveries skipped"] += len(re.findall(r"is not pending for task .* skipped", text))
        counts["claims lost"] += text.count("lost its claim")
        counts["back to pending"] += len(re.findall(r"media \[[^\]]*\d[^\]]*\] back to pending after", text))
        counts["tracebacks"] += text.count("Traceback")
        counts["broker reconnects"] += text.count("Cannot connect to redis") + text.count("Connection to broker lost")
        for match in sweep.finditer(text):
            counts["sweeper requeued stuck"] += int(match[1])
            counts["sweeper failed stuck"] += int(match[2])
            counts["sweeper requeued pending"] += int(match[3])
    for log in LOG_DIR.glob("faults-bridge-*.log"):
        text = log.read_text(errors="replace")
        for outcome in re.findall(r"message \S+: ([a-z, -]+)$", text, re.MULTILINE):
            for word in outcome.split(", "):
                counts[f"bridge {word}"] += 1
        counts["bridge messages left for retry"] += text.count("left for retry")
        counts["bridge pauses"] += text.count("SQS or database unavailable")
    web = (LOG_DIR / "faults-gunicorn.log").read_text(errors="replace")
    counts["web tracebacks"] = web.count("Traceback")
    counts["web key conflicts"] = web.count("IntegrityError: duplicate key value violates unique constraint")
    counts["web throttle errors"] = web.count("rest_framework/throttling.py")
    return counts


def seen_again(message_id: str) -> list[str]:
    """What the bridges that came after made of a message, from their logs."""
    found = []
    for log in sorted(LOG_DIR.glob("faults-bridge-*.log"))[1:]:
        found += re.findall(rf"message {re.escape(message_id)}: ([a-z, -]+)$", log.read_text(), re.MULTILINE)
    return found


def http_errors_by_window(feed: Feed, faults: list[Fault]) -> dict[str, Counter]:
    windows = [(f.kind, f.at, f.ended_at or f.at) for f in faults if f.kind in ("redis", "postgres")]
    found: dict[str, Counter] = {}
    for at, status in feed.http_answers:
        if status and status < 500 and status != 429:
            continue
        where = next((kind for kind, start, stop in windows if start <= at <= stop + 2), "no outage")
        found.setdefault(where, Counter())[status or "no answer"] += 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=8.0, help="items fed a second")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--outage", type=float, default=15.0, help="seconds Redis and PostgreSQL stay down")
    parser.add_argument("--recovery-timeout", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    began = time.monotonic()
    services = DemoServices()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for old in LOG_DIR.glob("faults-*.log"):
        old.unlink()
    use_bench_database(DATABASE)
    redis_url = use_redis_database(REDIS_DATABASE)
    moto = Moto(LOG_DIR / "faults-moto.log")
    os.environ.update(SETTINGS)
    os.environ.update(
        {
            "CLIP_MODEL": str(tiny_model()),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # moto's
            "S3_BUCKET_NAME": BUCKET,
            "AWS_S3_ENDPOINT_URL": moto.url,
            "AWS_SQS_ENDPOINT_URL": moto.url,
        }
    )
    for name in ("CLIP_PRECISION", "API_RATE_LIMIT", "DJANGO_DEBUG"):
        os.environ.pop(name, None)  # production's defaults
    deployment = None
    try:
        import django

        django.setup()
        key = prepare()
        files = make_files(args.items, args.seed)
        s3_count = sum(1 for _, path in files if path == "s3")
        die_at = random.Random(args.seed).randint(max(1, s3_count // 5), max(1, 3 * s3_count // 5))
        print(f"{len(files)} files made; the first bridge dies before its delete number {die_at}", flush=True)
        deployment = Deployment({name: os.environ[name] for name in (*SETTINGS, "SQS_QUEUE_URL")}, die_at)
        result = run(args, services, deployment, key, files)
    finally:
        services.ensure_running()
        if deployment is not None:
            deployment.stop()
        moto.stop()
        flush_redis_database(redis_url)
    report(args, result, time.monotonic() - began)


def prepare() -> str:
    """The tenant, its thresholds, products and write key, the bucket and its
    event queue; returns the key."""
    from io import StringIO

    from django.conf import settings
    from django.core.management import call_command

    from bench.common import new_tenant
    from catalog.aws import sqs_client
    from catalog.models import Product

    call_command("migrate", verbosity=0)
    out = StringIO()
    call_command("setup_s3_events", "--create-bucket", "--queue-name", f"{BUCKET}-events", stdout=out)
    url = next(line.split("=", 1)[1] for line in out.getvalue().splitlines() if line.startswith("SQS_QUEUE_URL="))
    os.environ["SQS_QUEUE_URL"] = settings.SQS_QUEUE_URL = url
    # A message a bridge died holding comes back after this long.
    sqs_client().set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(SQS_VISIBILITY_TIMEOUT_S)})
    tenant, key = new_tenant(TENANT, "Soak: faults", stuck_after_minutes=STUCK_AFTER_MINUTES)
    Product.objects.bulk_create(Product(tenant=tenant, sku=f"SKU-{n}", title=f"product {n}") for n in range(PRODUCTS))
    return key


@dataclass
class Result:
    feed: Feed
    faults: list[Fault]
    files: list[tuple[soak_files.SoakFile, str]]
    recovered_at: float | None
    window: float
    workers_started: int = 0
    bridges_started: int = 0
    check: object = None
    extra: int = 0
    unseen: list[str] = field(default_factory=list)
    ids: dict = field(default_factory=dict)
    depths: tuple[int, int] = (0, 0)
    bridge_message: dict = field(default_factory=dict)
    bridge_outcomes: list[str] = field(default_factory=list)
    logs: Counter = field(default_factory=Counter)


def run(args, services: DemoServices, deployment: Deployment, key: str, files) -> Result:
    from django.db import connection

    from catalog.models import Media

    window = len(files) / args.rate
    # One upload first: the worker has loaded its model before the clock starts.
    feed = Feed()
    feed.started = time.monotonic()
    feed_http([(0.0, soak_files.image(10**9))], feed, deployment.server, key, args.seed)
    warm_up = list(feed.http_ids)
    while Media.objects.filter(pk__in=warm_up, status__in=["pending", "processing"]).exists():
        time.sleep(0.2)
    feed = Feed()

    plan = {"s3": [], "http": []}
    for n, (f, path) in enumerate(files):
        plan[path].append((n / args.rate, f))
    feed.started = time.monotonic()

    def recorded(target, *arguments) -> None:
        try:
            target(*arguments)
        except Exception as exc:  # reported with the results: what it did not send is missing
            feed.errors.append(f"{target.__name__}: {exc!r}")

    def feeding() -> None:
        threads = [
            threading.Thread(target=recorded, args=(feed_s3, plan["s3"], feed, args.seed), daemon=True),
            threading.Thread(
                target=recorded, args=(feed_http, plan["http"], feed, deployment.server, key, args.seed), daemon=True
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        feed.done.set()

    threading.Thread(target=feeding, daemon=True).start()
    faults: list[Fault] = []
    pending = schedule_faults(args.kills, window, args.outage, args.seed)
    print(f"feeding {len(files)} items over {window:.0f} s; faults at {[f'{t:.0f}' for t, _ in pending]} s", flush=True)
    last_print = time.monotonic()
    while pending or not feed.done.is_set():
        deployment.supervise(feed, faults)
        if time.monotonic() - last_print > 10:
            print(progress(feed)[0], flush=True)
            last_print = time.monotonic()
        if pending and feed.now() >= pending[0][0]:
            _, kind = pending.pop(0)
            fault = Fault(feed.now(), kind)
            faults.append(fault)
            inject(fault, deployment, services, args.outage)
            fault.ended_at = feed.now()
            print(f"t={fault.at:5.0f} s  {kind}: {fault.detail}", flush=True)
            connection.close()
        time.sleep(0.1)
    print(f"t={feed.now():5.0f} s  everything fed; waiting for the recovery", flush=True)
    recovered_at = wait_recovered(feed, deployment, faults, args.recovery_timeout)
    result = Result(feed, faults, files, recovered_at, window, deployment.workers, deployment.bridges)
    result.ids, result.unseen = expected_ids(feed)
    result.check = check_items(list(result.ids))
    result.extra = Media.objects.filter(tenant__slug=TENANT).exclude(pk__in=[*result.ids, *warm_up]).count()
    result.depths = queue_depths()
    if deployment.bridge_died:
        result.bridge_message = dict(deployment.bridge_died)
        result.bridge_message["media"] = list(
            Media.objects.filter(storage_key__in=result.bridge_message["keys"]).values_list("pk", "status")
        )
    deployment.stop()
    result.logs = log_counts()
    if result.bridge_message:
        result.bridge_outcomes = seen_again(result.bridge_message["message_id"])
    return result


def report(args, result: Result, seconds: float) -> None:
    from catalog.models import Media

    check = result.check
    feed = result.feed
    timeline = Table(
        "faults",
        f"Faults injected while {len(result.files):,} items were fed over {result.window:.0f} s",
        ["t, s", "fault", "what was done", "items it caught", "those items now"],
    )
    for fault in sorted(result.faults, key=lambda f: f.at):
        now = Counter(
            f"{status} (attempts {attempts})"
            for status, attempts in Media.objects.filter(pk__in=fault.held).values_list("status", "attempts")
        )
        caught = f"{len(fault.held)} processing" if fault.kind.startswith("worker") else ""
        if fault.kind == "bridge" and result.bridge_message:
            caught = f"media {', '.join(str(pk) for pk, _ in result.bridge_message['media'])}"
            now = Counter(status for _, status in result.bridge_message["media"])
        timeline.add(
            round(fault.at), fault.kind, fault.detail, caught, ", ".join(f"{n} {s}" for s, n in now.items()) or "-"
        )
    timeline.notes.append(
        f"Seed {args.seed}. Worker processes started: {result.workers_started} (the first and one per whole-worker "
        f"kill); bridges started: {result.bridges_started}. Settings: "
        + ", ".join(f"{k}={v}" for k, v in SETTINGS.items())
        + f"; the tenant's stuck threshold {STUCK_AFTER_MINUTES} min; the event queue's visibility timeout "
        f"{SQS_VISIBILITY_TIMEOUT_S} s. Everything else at production's defaults (API_RATE_LIMIT 1200/min included)."
    )
    emit(timeline)

    outcome = Table(
        "faults",
        "Where every item ended",
        ["items", "fed", "media rows", "ready", "failed", "of which bad files", "pending/processing", "missing"],
    )
    bad_ids = {pk for pk, f in result.ids.items() if f.bad}
    failed_ids = set(Media.objects.filter(pk__in=list(result.ids), status="failed").values_list("pk", flat=True))
    for label, path, kind in (
        ("images through S3 events", "s3", "image"),
        ("videos through S3 events", "s3", "video"),
        ("images uploaded through the API", "http", "image"),
        ("videos uploaded through the API", "http", "video"),
    ):
        fed = [f for f, p in result.files if p == path and f.kind == kind]
        ids = [pk for pk, f in result.ids.items() if f.kind == kind and (pk in feed.http_ids) == (path == "http")]
        counts = settled_counts(ids)
        missing = sum(1 for key in result.unseen if f"/media/{kind}/" in key) if path == "s3" else 0
        outcome.add(
            label,
            len(fed),
            len(ids),
            counts.get("ready", 0),
            counts.get("failed", 0),
            len([pk for pk in ids if pk in bad_ids and pk in failed_ids]),
            counts.get("pending", 0) + counts.get("processing", 0),
            missing,
        )
    outcome.notes.append(
        f"Vectors: {check.vectors:,} ({check.frames} of them for video frames). Uploads refused by the API: "
        f"{len(feed.http_rejected)}. {'Feeder errors: ' + '; '.join(feed.errors) + '. ' if feed.errors else ''}"
        "The reasons of the failed:"
    )
    outcome.notes.append("")
    for reason, n in sorted(check.reasons.items(), key=lambda item: -item[1]):
        outcome.notes.append(f"- {n}x: {reason}")
    emit(outcome)

    logs = result.logs
    machinery = Table("faults", "What recovered them (from the processes' logs)", ["mechanism", "count"])
    for label, value in (
        ("transient errors retried by the task (Retry in ...)", logs["worker retries"]),
        ("tasks lost with their worker (WorkerLostError, redelivered)", logs["worker lost"]),
        ("deliveries of items already taken or done, skipped by the claim", logs["deliveries skipped"]),
        ("results discarded: the claim was lost meanwhile", logs["claims lost"]),
        ("tasks out of retries in an outage: their items back to pending", logs["back to pending"]),
        ("sweeper: stuck items requeued", logs["sweeper requeued stuck"]),
        ("sweeper: stuck items failed (out of attempts)", logs["sweeper failed stuck"]),
        ("sweeper: pending items enqueued again", logs["sweeper requeued pending"]),
        ("bridge: messages left for retry (database or broker down)", logs["bridge messages left for retry"]),
        ("bridge: batches not received, the database being down", logs["bridge pauses"]),
        ("bridge: events seen again and recognised (duplicate)", logs["bridge duplicate"]),
        ("bridge: media created", logs["bridge created"]),
        ("web: uploads answered 500 on the media key's unique constraint", logs["web key conflicts"]),
        ("web: requests answered 500 from the rate limiter (its counter in Redis)", logs["web throttle errors"]),
        ("tracebacks in the worker logs / the web log", f"{logs['tracebacks']} / {logs['web tracebacks']}"),
    ):
        machinery.add(label, value)
    for window, statuses in http_errors_by_window(feed, result.faults).items():
        machinery.add(
            f"upload answers that were not 2xx/4xx, during {window}",
            ", ".join(f"{n}x {s}" for s, n in statuses.items()),
        )
    machinery.notes.append(
        "A `pending` item queued behind the backlog for longer than PENDING_REQUEUE_MINUTES is enqueued again by "
        "the sweeper, which cannot tell it from one whose message was lost; the claim skips the extra deliveries."
    )
    if logs["web key conflicts"]:
        machinery.notes.append(
            "500 on the media key's unique constraint: the S3 event of a direct upload's own object reached the "
            "bridge before the upload inserted its row; the bridge made a media of the key first, the upload's "
            "insert failed, it deleted its object and answered 500 (the client's retry was accepted, and the "
            "bridge removed its media on the object's removal event)."
        )
    if logs["web throttle errors"]:
        machinery.notes.append(
            "500 from the rate limiter: while Redis is down, every API request fails in the per-key rate limit "
            "(Django's Redis cache raises), uploads and searches included."
        )
    emit(machinery)

    last_fault = max((f.ended_at or f.at for f in result.faults), default=0.0)
    rows = Media.objects.filter(tenant__slug=TENANT)
    twice = rows.count() - rows.values("storage_key").distinct().count()
    message = result.bridge_message
    again = message.get("media", [])
    sent = len(feed.s3_keys) + len(feed.http_ids)
    # (check, what was found, passed, part of the requirement)
    checks = [
        (
            "every object and accepted upload has its media row",
            f"{len(result.unseen)} missing of {sent:,}",
            not result.unseen and check.found == len(result.ids) == sent,
            True,
        ),
        (
            "no media row nobody sent, none twice",
            f"{result.extra} extra, {twice} twice",
            not result.extra and not twice,
            True,
        ),
        ("every item ready or failed", f"{len(check.unsettled)} pending or processing", not check.unsettled, True),
        (
            "every failed item has its reason",
            f"{len(check.failed_without_reason)} without",
            not check.failed_without_reason,
            True,
        ),
        (
            "exactly one set of vectors each",
            f"{len(check.bad_vectors)} wrong" + (f": {check.bad_vectors[:3]}" if check.bad_vectors else ""),
            not check.bad_vectors,
            True,
        ),
        (
            "bad files failed with their reason",
            f"{len(bad_ids & failed_ids)} of {len(bad_ids)}",
            bad_ids <= failed_ids,
            True,
        ),
        (
            "event queue and dead-letter queue empty",
            f"{result.depths[0]} and {result.depths[1]} messages",
            result.depths == (0, 0),
            True,
        ),
        (
            "the message the bridge died holding: delivered again, recognised, one media",
            f"the next bridge made it {' then '.join(result.bridge_outcomes) or 'nothing (not seen)'}; "
            f"{len(again)} media, {', '.join(s for _, s in again)}"
            if message
            else "the bridge never died",
            bool(message) and bool(result.bridge_outcomes) and len(again) == len(message.get("keys", [])),
            True,
        ),
        (
            "recovered with no hand work",
            f"all settled {result.recovered_at - last_fault:.0f} s after the last fault ended"
            if result.recovered_at is not None
            else f"not within {args.recovery_timeout:.0f} s",
            result.recovered_at is not None,
            True,
        ),
        (
            "good files ready (not required: failed with a reason is allowed)",
            f"{len(failed_ids - bad_ids)} failed of {len(result.ids) - len(bad_ids):,}",
            not failed_ids - bad_ids,
            False,
        ),
    ]
    table = Table("faults-verdict", "Faults, nothing lost: the checks", ["check", "found", "verdict"])
    for name, found, ok, required in checks:
        table.add(name, found, "met" if ok else ("MISSED" if required else "no"))
    passed = all(ok for _, _, ok, required in checks if required)
    table.notes.append(
        f"Requirement 1 (faults, nothing lost): **{'met' if passed else 'MISSED'}**. Run time {seconds / 60:.1f} min."
    )
    emit(table)
    if not passed:
        sys.exit(1)


if __name__ == "__main__":
    main()
