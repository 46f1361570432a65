"""The fault run's deployment (bench/soak_faults.py): the files and how they
are fed (objects put in the bucket, uploads through the API), the faults and
their schedule, the processes under test with the supervisor that starts
again what died, and what the database, the queues and the logs say
afterwards. The data the run collects (Result, Outcome) is defined here;
bench/soak_faults_report.py turns it into tables."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from bench import soak_files
from bench.common import (
    SOAK_DIR,
    SOAK_LOG_DIR,
    Beat,
    BridgeProcess,
    DemoServices,
    Server,
    Worker,
    api_session,
    children,
    end,
    kill,
    settled_counts,
    upload,
)
from config.queues import QUEUES

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
# The outcome table's rows: (label, how the item was fed, its kind).
ROUTES = [
    ("images through S3 events", "s3", "image"),
    ("videos through S3 events", "s3", "video"),
    ("images uploaded through the API", "http", "image"),
    ("videos uploaded through the API", "http", "video"),
]


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

    session = api_session(key)
    rng = random.Random(seed)
    for at, f in plan:
        time.sleep(max(0.0, at - feed.now()))
        sku = f"SKU-{rng.randrange(PRODUCTS)}"
        while True:
            try:
                response = upload(session, server, sku, f.name, f.data, f.content_type)
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
        self.queues = list(QUEUES)
        self.workers = 0
        self.bridges = 0
        self.marker = SOAK_DIR / "faults-bridge-died.json"
        self.marker.unlink(missing_ok=True)
        self.worker = self._worker()
        self.beat = Beat(env, SOAK_LOG_DIR / "faults-beat.log", SOAK_DIR / "faults-beat-schedule")
        self.bridge = self._bridge(die_at_delete)
        self.server = Server({"SEARCH_PRELOAD": "0", **env}, 1, SOAK_LOG_DIR / "faults-gunicorn.log", threads=4)
        self.worker_died_at: float | None = None
        self.worker_killed = False
        self.bridge_died: dict = {}

    def _worker(self) -> Worker:
        self.workers += 1
        return Worker(self.queues, self.env, SOAK_LOG_DIR / f"faults-worker-{self.workers}.log", loglevel="INFO")

    def _bridge(self, die_at_delete: int = 0) -> BridgeProcess:
        self.bridges += 1
        log = SOAK_LOG_DIR / f"faults-bridge-{self.bridges}.log"
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
        pool = children(main)
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
    for log in SOAK_LOG_DIR.glob("faults-worker-*.log"):
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
    for log in SOAK_LOG_DIR.glob("faults-bridge-*.log"):
        text = log.read_text(errors="replace")
        for outcome in re.findall(r"message \S+: ([a-z, -]+)$", text, re.MULTILINE):
            for word in outcome.split(", "):
                counts[f"bridge {word}"] += 1
        counts["bridge messages left for retry"] += text.count("left for retry")
        counts["bridge pauses"] += text.count("SQS or database unavailable")
    web = (SOAK_LOG_DIR / "faults-gunicorn.log").read_text(errors="replace")
    counts["web tracebacks"] = web.count("Traceback")
    counts["web key conflicts"] = web.count("IntegrityError: duplicate key value violates unique constraint")
    counts["web throttle errors"] = web.count("rest_framework/throttling.py")
    return counts


def seen_again(message_id: str) -> list[str]:
    """What the bridges that came after made of a message, from their logs."""
    found = []
    for log in sorted(SOAK_LOG_DIR.glob("faults-bridge-*.log"))[1:]:
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


def route_ids(result: Result, path: str, kind: str) -> list[int]:
    """The media of `kind` fed through `path` ("s3" or "http")."""
    return [pk for pk, f in result.ids.items() if f.kind == kind and (pk in result.feed.http_ids) == (path == "http")]


@dataclass
class Outcome:
    """What the database says once the servers are up again, beyond the item check."""

    held_now: list[Counter]  # per fault of Result.faults: where the media it caught ended
    failed_ids: set[int]
    bad_ids: set[int]  # the bad files' media
    route_counts: dict[tuple[str, str], dict[str, int]]  # (path, kind) -> status -> items
    twice: int  # media rows beyond one per storage key
