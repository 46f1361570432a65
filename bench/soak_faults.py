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
import os
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import soak_files
from bench.common import (
    SOAK_LOG_DIR,
    DemoServices,
    Moto,
    Server,
    add_products,
    check_items,
    flush_redis_database,
    new_tenant,
    set_up_django,
    settled_counts,
    tiny_model,
    use_bench_database,
    use_redis_database,
    wait_settled,
)
from bench.soak_faults_deploy import (
    BUCKET,
    PRODUCTS,
    ROUTES,
    SETTINGS,
    SQS_VISIBILITY_TIMEOUT_S,
    STUCK_AFTER_MINUTES,
    TENANT,
    Deployment,
    Fault,
    Feed,
    Outcome,
    Result,
    expected_ids,
    feed_http,
    feed_s3,
    inject,
    log_counts,
    make_files,
    progress,
    queue_depths,
    route_ids,
    schedule_faults,
    seen_again,
    wait_recovered,
)
from bench.soak_faults_report import report

DATABASE = "stockmind_soak_faults"
REDIS_DATABASE = 5


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
    SOAK_LOG_DIR.mkdir(parents=True, exist_ok=True)
    for old in SOAK_LOG_DIR.glob("faults-*.log"):
        old.unlink()
    use_bench_database(DATABASE)
    redis_url = use_redis_database(REDIS_DATABASE)
    moto = Moto(SOAK_LOG_DIR / "faults-moto.log")
    use_settings(moto)
    deployment = None
    try:
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
    seconds = time.monotonic() - began
    report(args, result, read_outcome(result), seconds)


def use_settings(moto: Moto) -> None:
    """The short intervals (SETTINGS), moto's S3 and SQS, the tiny model, and
    production's defaults for everything else."""
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


def prepare() -> str:
    """The tenant, its thresholds, products and write key, the bucket and its
    event queue; returns the key."""
    from io import StringIO

    set_up_django()
    from django.conf import settings
    from django.core.management import call_command

    from catalog.aws import sqs_client

    out = StringIO()
    call_command("setup_s3_events", "--create-bucket", "--queue-name", f"{BUCKET}-events", stdout=out)
    url = next(line.split("=", 1)[1] for line in out.getvalue().splitlines() if line.startswith("SQS_QUEUE_URL="))
    os.environ["SQS_QUEUE_URL"] = settings.SQS_QUEUE_URL = url
    # A message a bridge died holding comes back after this long.
    sqs_client().set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(SQS_VISIBILITY_TIMEOUT_S)})
    tenant, key = new_tenant(TENANT, "Soak: faults", stuck_after_minutes=STUCK_AFTER_MINUTES)
    add_products(tenant, PRODUCTS)
    return key


def run(args, services: DemoServices, deployment: Deployment, key: str, files) -> Result:
    warm_up = warm_up_worker(deployment.server, key, args.seed, args.recovery_timeout)
    window = len(files) / args.rate
    feed = Feed()
    feed.started = time.monotonic()
    start_feeding(feed, files, args.rate, deployment.server, key, args.seed)
    pending = schedule_faults(args.kills, window, args.outage, args.seed)
    print(f"feeding {len(files)} items over {window:.0f} s; faults at {[f'{t:.0f}' for t, _ in pending]} s", flush=True)
    faults = inject_while_feeding(feed, pending, deployment, services, args.outage)
    print(f"t={feed.now():5.0f} s  everything fed; waiting for the recovery", flush=True)
    recovered_at = wait_recovered(feed, deployment, faults, args.recovery_timeout)
    result = Result(feed, faults, files, recovered_at, window, deployment.workers, deployment.bridges)
    collect(result, deployment, warm_up)
    return result


def warm_up_worker(server: Server, key: str, seed: int, timeout: float) -> list[int]:
    """One upload first: the worker has loaded its model before the clock
    starts. Returns its media id, which the checks leave out."""
    feed = Feed()
    feed.started = time.monotonic()
    feed_http([(0.0, soak_files.image(10**9))], feed, server, key, seed)
    warm_up = list(feed.http_ids)
    wait_settled(warm_up, timeout, poll=0.2, strict=False)
    return warm_up


def start_feeding(feed: Feed, files, rate: float, server: Server, key: str, seed: int) -> None:
    """Both feeders in threads of their own, each file at its moment; sets
    feed.done when both are through."""
    plan: dict[str, list[tuple[float, soak_files.SoakFile]]] = {"s3": [], "http": []}
    for n, (f, path) in enumerate(files):
        plan[path].append((n / rate, f))

    def recorded(target, *arguments) -> None:
        try:
            target(*arguments)
        except Exception as exc:  # reported with the results: what it did not send is missing
            feed.errors.append(f"{target.__name__}: {exc!r}")

    def feeding() -> None:
        threads = [
            threading.Thread(target=recorded, args=(feed_s3, plan["s3"], feed, seed), daemon=True),
            threading.Thread(target=recorded, args=(feed_http, plan["http"], feed, server, key, seed), daemon=True),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        feed.done.set()

    threading.Thread(target=feeding, daemon=True).start()


def inject_while_feeding(
    feed: Feed, pending: list[tuple[float, str]], deployment: Deployment, services: DemoServices, outage: float
) -> list[Fault]:
    """Each fault at its moment while the files are fed, the supervisor
    starting again what died; returns the faults, those that happened on
    their own included."""
    from django.db import connection

    faults: list[Fault] = []
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
            inject(fault, deployment, services, outage)
            fault.ended_at = feed.now()
            print(f"t={fault.at:5.0f} s  {kind}: {fault.detail}", flush=True)
            connection.close()
        time.sleep(0.1)
    return faults


def collect(result: Result, deployment: Deployment, warm_up: list[int]) -> None:
    """The item check, the queues and what the bridge's lost message became;
    then the deployment stopped and its logs read."""
    from catalog.models import Media

    result.ids, result.unseen = expected_ids(result.feed)
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


def read_outcome(result: Result) -> Outcome:
    from catalog.models import Media

    held_now = [
        Counter(
            f"{status} (attempts {attempts})"
            for status, attempts in Media.objects.filter(pk__in=fault.held).values_list("status", "attempts")
        )
        for fault in result.faults
    ]
    rows = Media.objects.filter(tenant__slug=TENANT)
    return Outcome(
        held_now=held_now,
        failed_ids=set(Media.objects.filter(pk__in=list(result.ids)).failed().values_list("pk", flat=True)),
        bad_ids={pk for pk, f in result.ids.items() if f.bad},
        route_counts={(path, kind): settled_counts(route_ids(result, path, kind)) for _, path, kind in ROUTES},
        twice=rows.count() - rows.values("storage_key").distinct().count(),
    )


# --- the tables ---------------------------------------------------------------------


if __name__ == "__main__":
    main()
