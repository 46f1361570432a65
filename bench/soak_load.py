"""Load through the real HTTP server: no 5xx, no upload lost, memory steady.

    .venv/bin/python bench/soak_load.py [--seconds 60] [--burst 500] [--clients 8] [--web-workers 3]

The web app under gunicorn (`--web-workers` processes of 4 threads, the model
preloaded, one torch thread each), a Celery worker (media and maintenance queues) and beat, over the
demo's PostgreSQL and Redis in a database and a Redis database of their own,
files on the filesystem storage, the tiny CLIP. Production's settings
otherwise, the rate limit (1,200 requests a minute per key) included: each
client has its own key, and any 429 is counted apart.

A tenant is seeded through the API (products, photos, a few clips, processed
by the worker). Then `--clients` clients, for `--seconds`, each pick their next
request at random: image search (a photo), text search, "more like this" of a
ready item, an upload (a new photo, now and then a clip), a page of media or
of products. Then a burst of `--burst` uploads, as fast as the clients can
send them. Every accepted upload must end `ready` or `failed` with a reason,
with exactly one set of vectors. Reports p50/p95 per endpoint, every 5xx, and
the resident memory of every process (gunicorn master and workers, the
Celery worker and its pool child, beat) after a warm-up of `--warm-up`
seconds of the same mix and after the run,
growth beyond 10% flagged.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import soak_files
from bench.common import (
    QUERY_WORDS,
    SOAK_DIR,
    SOAK_LOG_DIR,
    Beat,
    DemoServices,
    ItemCheck,
    Server,
    Worker,
    add_products,
    api_session,
    check_items,
    children,
    end,
    flush_redis_database,
    in_threads,
    new_tenant,
    percentile,
    rss_mb,
    set_up_django,
    tiny_model,
    upload,
    use_bench_database,
    use_redis_database,
    wait_settled,
)
from bench.report import Check, Table, checks_table, emit, passed
from config.queues import QUEUES

DATABASE = "stockmind_soak_load"
REDIS_DATABASE = 6
MEDIA_ROOT = SOAK_DIR / "load-media"
TENANT = "soak-load"
PRODUCTS = 30
SEED_PHOTOS = 120
SEED_CLIPS = 4
SEED_TIMEOUT_S = 600
THREADS = 4
GROWTH_FLAG = 0.10
SETTLE_POLL_S = 0.5
# The mix of the load phase: (endpoint, weight).
MIX = [
    ("POST /search/image", 20),
    ("POST /search/text", 20),
    ("GET /search/similar/{id}", 15),
    ("POST /media/ (upload)", 20),
    ("GET /media/ (list)", 15),
    ("GET /products/ (list)", 10),
]
ENDPOINT_COLUMNS = [
    "phase",
    "endpoint",
    "requests",
    "req/s",
    "2xx",
    "4xx",
    "429",
    "5xx",
    "no answer",
    "p50 ms",
    "p95 ms",
    "max ms",
]


@dataclass
class Answer:
    endpoint: str
    status: int  # 0: no answer (connection refused or reset, timeout)
    ms: float
    phase: str


@dataclass
class Shared:
    """What the clients share: the files to upload, the items to search like,
    every answer, and the ids of accepted uploads."""

    uploads: list[soak_files.SoakFile]
    queries: list[bytes]
    similar_ids: list[int]
    answers: list[Answer] = field(default_factory=list)
    accepted: dict[int, str] = field(default_factory=dict)  # media id -> phase
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_upload(self) -> soak_files.SoakFile | None:
        with self.lock:
            return self.uploads.pop() if self.uploads else None


class Client:
    def __init__(self, server: Server, key: str, shared: Shared, seed: int):
        self.session = api_session(key)
        self.server, self.shared = server, shared
        self.rng = random.Random(seed)

    def request(self, endpoint: str, phase: str) -> None:
        import requests

        started = time.perf_counter()
        try:
            response = self._send(endpoint)
            status = response.status_code if response is not None else None
        except requests.RequestException:
            response, status = None, 0
        if status is None:
            return  # nothing left to upload
        ms = (time.perf_counter() - started) * 1000
        with self.shared.lock:
            self.shared.answers.append(Answer(endpoint, status, ms, phase))
            if endpoint.startswith("POST /media/") and status in (200, 202):
                self.shared.accepted[response.json()["id"]] = phase

    def _send(self, endpoint: str):
        url, rng, shared = self.server.url, self.rng, self.shared
        if endpoint == "POST /search/image":
            image = shared.queries[rng.randrange(len(shared.queries))]
            return self.session.post(
                url("/api/v1/search/image"), files={"file": ("q.jpg", image, "image/jpeg")}, timeout=60
            )
        if endpoint == "POST /search/text":
            query = " ".join(rng.sample(QUERY_WORDS, 3))
            return self.session.post(url("/api/v1/search/text"), json={"query": query}, timeout=60)
        if endpoint == "GET /search/similar/{id}":
            media_id = shared.similar_ids[rng.randrange(len(shared.similar_ids))]
            return self.session.get(url(f"/api/v1/search/similar/{media_id}?k=10"), timeout=60)
        if endpoint.startswith("POST /media/"):
            file = shared.next_upload()
            if file is None:
                return None
            sku = f"SKU-{rng.randrange(PRODUCTS)}"
            return upload(self.session, self.server, sku, file.name, file.data, file.content_type)
        if endpoint == "GET /media/ (list)":
            return self.session.get(url(f"/api/v1/media/?page={rng.randint(1, 3)}"), timeout=60)
        return self.session.get(url("/api/v1/products/"), timeout=60)


def seed_tenant(server: Server, clients: int) -> tuple[list[str], list[int]]:
    """The tenant, its products and one write key per client; the seed catalog
    uploaded through the API and processed; returns the keys and the ready ids."""
    from catalog.models import ApiKey, Media

    tenant, first = new_tenant(TENANT, "Soak: load")
    add_products(tenant, PRODUCTS)
    keys = [first] + [ApiKey.issue(tenant, f"client {n}", scope=ApiKey.Scope.WRITE)[1] for n in range(1, clients)]
    session = api_session(first)
    files = [soak_files.image(500_000 + n) for n in range(SEED_PHOTOS)]
    files += [soak_files.video(600_000 + n) for n in range(SEED_CLIPS)]
    ids = []
    for n, f in enumerate(files):
        response = upload(session, server, f"SKU-{n % PRODUCTS}", f.name, f.data, f.content_type)
        response.raise_for_status()
        ids.append(response.json()["id"])
    wait_settled(ids, SEED_TIMEOUT_S, poll=SETTLE_POLL_S, strict=False)
    return keys, list(Media.objects.filter(pk__in=ids).ready().values_list("pk", flat=True))


def run_mix(clients: list[Client], seconds: float, phase: str) -> float:
    stop_at = time.perf_counter() + seconds
    endpoints, weights = zip(*MIX, strict=True)

    def loop(client: Client) -> None:
        while time.perf_counter() < stop_at:
            client.request(client.rng.choices(endpoints, weights)[0], phase)

    return in_threads(clients, loop)


def run_burst(clients: list[Client], count: int) -> float:
    left = [count]
    lock = threading.Lock()

    def loop(client: Client) -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            client.request("POST /media/ (upload)", "burst")

    return in_threads(clients, loop)


def memory(server: Server, worker: Worker, beat: Beat) -> dict[str, tuple[int, float]]:
    """Resident memory now of every process: name -> (pid, MiB)."""
    found = {"gunicorn master": (server.process.pid, rss_mb(server.process.pid))}
    for n, pid in enumerate(sorted(children(server.process.pid))):
        found[f"gunicorn worker {n + 1}"] = (pid, rss_mb(pid))
    found["celery worker (main)"] = (worker.process.pid, rss_mb(worker.process.pid))
    for n, pid in enumerate(sorted(children(worker.process.pid))):
        found[f"celery pool child {n + 1}"] = (pid, rss_mb(pid))
    found["celery beat"] = (beat.process.pid, rss_mb(beat.process.pid))
    return found


@dataclass
class LoadRun:
    """What the run measured."""

    shared: Shared
    accepted: dict[int, str]  # media id -> phase, every upload accepted
    check: ItemCheck
    # Resident memory of every process: after the warm-up, after the load, at the end.
    ram_samples: tuple[dict, dict, dict]
    load_seconds: float
    burst_seconds: float
    settle_seconds: float  # from the burst's end until every accepted upload settled
    tenant_media: int = 0  # the tenant's media in all, read once the processes are stopped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--warm-up", type=float, default=15, help="seconds of the same mix before memory is first measured"
    )
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--settle-timeout", type=float, default=900)
    args = parser.parse_args()

    began = time.monotonic()
    redis_url = set_up()
    worker = Worker(QUEUES, {}, SOAK_LOG_DIR / "load-worker.log", "INFO")
    beat = Beat({}, SOAK_LOG_DIR / "load-beat.log", SOAK_DIR / "load-beat-schedule")
    server = None
    try:
        # Several web processes on two cores: one torch thread each, or their
        # OpenMP teams oversubscribe the cores (searches ten times slower).
        web_env = {"CLIP_TORCH_THREADS": "1"}
        server = Server(web_env, args.web_workers, SOAK_LOG_DIR / "load-gunicorn.log", threads=THREADS)
        run = run_load(args, server, worker, beat)
    finally:
        if server is not None:
            end(server)
        end(worker)
        end(beat)
        flush_redis_database(redis_url)
    from catalog.models import Media

    run.tenant_media = Media.objects.filter(tenant__slug=TENANT).count()
    report(args, run, began)


def set_up() -> str:
    """Its database and Redis database, production's settings, the filesystem
    storage and the tiny model; returns the Redis URL."""
    DemoServices()  # both running, or stop here with the reason
    SOAK_LOG_DIR.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(MEDIA_ROOT, ignore_errors=True)
    use_bench_database(DATABASE)
    redis_url = use_redis_database(REDIS_DATABASE)
    os.environ.update({"CLIP_MODEL": str(tiny_model()), "MEDIA_ROOT": str(MEDIA_ROOT)})
    for name in ("CLIP_PRECISION", "API_RATE_LIMIT", "DJANGO_DEBUG", "S3_BUCKET_NAME", "SQS_QUEUE_URL"):
        os.environ.pop(name, None)  # production's defaults, the filesystem storage
    set_up_django()
    return redis_url


def run_load(args, server: Server, worker: Worker, beat: Beat) -> LoadRun:
    """The seed catalog, a warm-up, the load, the burst, and the wait until
    every accepted upload settled."""
    keys, ready_ids = seed_tenant(server, args.clients)
    print(f"seeded: {len(ready_ids)} ready items; making the files to upload", flush=True)
    shared = Shared(
        # More than the load phase can send (it sends about 5 a second).
        uploads=[soak_files.image(700_000 + n) for n in range(int((args.seconds + args.warm_up) * 20))]
        + [soak_files.video(800_000 + n) for n in range(int((args.seconds + args.warm_up) / 2))],
        queries=[soak_files.image(900_000 + n).data for n in range(20)],
        similar_ids=ready_ids,
    )
    random.Random(1).shuffle(shared.uploads)
    clients = [Client(server, keys[n], shared, n) for n in range(args.clients)]
    for client in clients:  # a warm-up: every kind of request once per client ...
        for endpoint, _ in MIX:
            client.request(endpoint, "warm-up")
    # ... then the mix itself for a while: the web processes' threads, their
    # allocator arenas and torch's buffers for every query size reach their
    # working size, so that growth measured from here is growth, not start-up.
    print(f"warm-up: {args.clients} clients for {args.warm_up:.0f} s", flush=True)
    run_mix(clients, args.warm_up, "warm-up")
    before = memory(server, worker, beat)
    print(f"load: {args.clients} clients for {args.seconds:.0f} s", flush=True)
    load_seconds = run_mix(clients, args.seconds, "load")
    after_load = memory(server, worker, beat)
    burst_uploads = [soak_files.image(1_000_000 + n) for n in range(args.burst)]
    with shared.lock:
        shared.uploads = burst_uploads
    print(f"burst: {args.burst} uploads", flush=True)
    burst_seconds = run_burst(clients, args.burst)
    accepted = dict(shared.accepted)
    print(f"waiting for {len(accepted)} accepted uploads to settle", flush=True)
    settle_started = time.monotonic()
    wait_settled(list(accepted), args.settle_timeout, poll=SETTLE_POLL_S, strict=False)
    settle_seconds = time.monotonic() - settle_started
    after = memory(server, worker, beat)
    check = check_items(list(accepted))
    ram_samples = (before, after_load, after)
    return LoadRun(shared, accepted, check, ram_samples, load_seconds, burst_seconds, settle_seconds)


@dataclass
class ProcessMemory:
    """One process's resident memory over the run, MiB."""

    name: str
    pid: int
    start: float
    after_load: float
    end: float
    growth: float  # from the start to the end, a fraction
    flag: str  # why it is flagged; "" if it is not


def memory_growth(before: dict, after_load: dict, after: dict) -> list[ProcessMemory]:
    """Each process's memory from the samples; grown beyond GROWTH_FLAG or
    started again meanwhile, flagged."""
    found = []
    for name in sorted(set(before) | set(after), key=list({**before, **after}).index):
        pid_before, mib_before = before.get(name, (0, 0.0))
        pid_after, mib_after = after.get(name, (0, 0.0))
        growth = round((mib_after - mib_before) / mib_before, 3) if mib_before else 0.0
        flag = ""
        if pid_before != pid_after:
            flag = f"restarted (pid {pid_before} -> {pid_after})"
        elif growth > GROWTH_FLAG:
            flag = f"grew more than {GROWTH_FLAG:.0%}"
        middle = after_load.get(name, (0, 0.0))[1]
        found.append(ProcessMemory(name, pid_after or pid_before, mib_before, middle, mib_after, growth, flag))
    return found


# --- the tables ---------------------------------------------------------------------


def report(args, run: LoadRun, began: float) -> None:
    answers = [a for a in run.shared.answers if a.phase in ("load", "burst")]
    by_endpoint: dict[tuple[str, str], list[Answer]] = defaultdict(list)
    for answer in answers:
        by_endpoint[(answer.phase, answer.endpoint)].append(answer)
    processes = memory_growth(*run.ram_samples)
    emit(endpoints_table(args, run, answers, by_endpoint))
    emit(accepted_table(run))
    emit(memory_table(args, processes))
    checks = load_checks(run.check, answers, by_endpoint, processes)
    minutes = (time.monotonic() - began) / 60
    emit(checks_table("load-verdict", "Load: the checks", checks, "Requirement 2 (load)", minutes, unmet="flagged"))
    if not passed(checks):
        sys.exit(1)


def endpoints_table(args, run: LoadRun, answers: list[Answer], by_endpoint: dict) -> Table:
    table = Table(
        "load",
        f"{args.clients} clients for {args.seconds:.0f} s, then a burst of {args.burst} uploads, through gunicorn "
        f"({args.web_workers} workers x {THREADS} threads) with a Celery worker running",
        ENDPOINT_COLUMNS,
    )
    for (phase, endpoint), group in sorted(by_endpoint.items(), key=lambda item: (item[0][0] != "load", item[0][1])):
        statuses = Counter(a.status for a in group)
        ms = [a.ms for a in group]
        seconds = run.load_seconds if phase == "load" else run.burst_seconds
        table.add(
            phase,
            endpoint,
            len(group),
            len(group) / seconds,
            sum(n for s, n in statuses.items() if 200 <= s < 300),
            sum(n for s, n in statuses.items() if 400 <= s < 500 and s != 429),
            statuses[429],
            sum(n for s, n in statuses.items() if s >= 500),
            statuses[0],
            percentile(ms, 50),
            percentile(ms, 95),
            max(ms),
        )
    other = Counter((a.endpoint, a.status) for a in answers if a.status not in (200, 202) and a.status)
    for (endpoint, status), n in sorted(other.items()):
        table.notes.append(f"- {endpoint}: {n}x {status}")
    table.notes.append(
        f"The mix: {', '.join(f'{e} {w}%' for e, w in MIX)}. Image queries are generated photos of 160-512 px; "
        f"uploads are new photos (JPEG, one in eight PNG) and 3 s clips; the burst, {args.burst} new photos sent "
        f"by the {args.clients} clients at once, took {run.burst_seconds:.1f} s. Each client has its own API key "
        "(rate limit 1,200/min per key). The web processes run with CLIP_TORCH_THREADS=1 (several processes on "
        "the machine's cores; the worker keeps torch's default)."
    )
    return table


def accepted_table(run: LoadRun) -> Table:
    check = run.check
    table = Table(
        "load",
        "Every accepted upload, after the run",
        ["uploads accepted", "ready", "failed", "pending/processing", "missing", "wrong vectors", "settled after"],
    )
    table.add(
        len(run.accepted),
        check.by_status.get("ready", 0),
        check.by_status.get("failed", 0),
        len(check.unsettled),
        len(check.missing),
        len(check.bad_vectors),
        f"{run.settle_seconds:.0f} s after the burst",
    )
    for reason, n in sorted(check.reasons.items(), key=lambda item: -item[1]):
        table.notes.append(f"- failed {n}x: {reason}")
    phases = Counter(run.accepted.values())
    table.notes.append(
        f"Accepted during the warm-up {phases['warm-up']}, the load {phases['load']}, "
        f"the burst {phases['burst']}; vectors {check.vectors:,} "
        f"({check.frames} for video frames). Tenant media in all: "
        f"{run.tenant_media:,}."
    )
    return table


def memory_table(args, processes: list[ProcessMemory]) -> Table:
    table = Table(
        "load",
        f"Resident memory (RSS) of every process: after a warm-up ({args.warm_up:.0f} s of the same mix), after the "
        f"{args.seconds:.0f} s of load, and after the burst once every upload was processed",
        ["process", "pid", "start, MiB", "after the load", "at the end", "growth", "flag"],
    )
    for p in processes:
        table.add(p.name, p.pid, p.start, p.after_load, p.end, f"{p.growth:+.1%}", p.flag or "-")
    return table


def load_checks(
    check: ItemCheck, answers: list[Answer], by_endpoint: dict, processes: list[ProcessMemory]
) -> list[Check]:
    fives = sum(1 for a in answers if a.status >= 500 or a.status == 0)
    too_many = sum(1 for a in answers if a.status == 429)
    flagged = [f"{p.name}: {p.flag}" for p in processes if p.flag]
    return [
        Check("no 5xx (nor a request left unanswered)", f"{fives} of {len(answers):,}", fives == 0),
        Check(
            "no upload lost: every accepted upload ready or failed with a reason",
            f"{len(check.missing)} missing, {len(check.unsettled)} unsettled, "
            f"{len(check.failed_without_reason)} failed without a reason",
            not (check.missing or check.unsettled or check.failed_without_reason),
        ),
        Check("exactly one set of vectors each", f"{len(check.bad_vectors)} wrong", not check.bad_vectors),
        Check("p95 reported per endpoint", f"{len(by_endpoint)} endpoint and phase pairs", bool(by_endpoint)),
        Check(
            f"no process grew more than {GROWTH_FLAG:.0%} (flagged, not failed)",
            "; ".join(flagged) or "none flagged",
            not flagged,
            required=False,
        ),
        Check("429 answers (counted apart)", str(too_many), too_many == 0, required=False),
    ]


if __name__ == "__main__":
    main()
