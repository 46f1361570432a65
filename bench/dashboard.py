"""How fast the operators' dashboard answers with a million media rows.

    .venv/bin/python bench/dashboard.py [--media 1000000] [--runs 5]

Loads `--media` rows over 50 tenants of very different sizes into a throwaway
database on the embedded PostgreSQL (`make services` first): 95% ready, 2%
failed, 2% pending, 1% processing (a fifth of those stuck), processed over
the last 30 days. Then times each of the dashboard's
queries and the whole page (through Django's test client, as a logged-in
operator), median of `--runs`, with the `media_processed_at` index and,
side by side in the same run, without it. Next to the workers' heartbeat
keys the page reads, a broadcast ping (what it replaced) is timed: it waits
out its timeout whether workers run or not.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import operator_client, set_up_django, timed_ms, use_bench_database

TENANTS = 50
INDEX = "media_processed_at"
PING_TIMEOUT_S = 0.5
PING_RUNS = 3
LABEL_WIDTH = 44


def load(media: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        # Tenant sizes fall off geometrically: the biggest holds about a fifth.
        cursor.execute(
            "INSERT INTO catalog_tenant (slug, name, is_active, created_at)"
            " SELECT 'bench-' || n, 'bench ' || n, true, now() FROM generate_series(1, %s) AS n",
            [TENANTS],
        )
        started = time.perf_counter()
        cursor.execute(
            f"""
            INSERT INTO catalog_media (tenant_id, kind, source, storage_key, original_filename, content_type, size,
                sha256, status, attempts, error, created_at, updated_at, processing_started_at, processed_at,
                claim_token, s3_etag, s3_sequencer)
            SELECT t.id, 'image', 'upload', 'bench/' || i, '', 'image/jpeg', 1000, '',
                   s.status, 1,
                   CASE WHEN s.status = 'failed' THEN (ARRAY['The image is truncated or corrupt.',
                        'The file has no video stream (is it audio only?).', 'The stored file is missing.'])[1 + i % 3]
                        ELSE '' END,
                   now() - interval '30 days', now(),
                   CASE WHEN s.status = 'pending' THEN NULL
                        WHEN s.status = 'processing' THEN now() - (i % 120) * interval '1 minute'
                        ELSE s.done - (1 + i % 20) * interval '1 second' END,
                   CASE WHEN s.status IN ('ready', 'failed') THEN s.done END,
                   '', '', ''
            FROM generate_series(1, {media}) AS i
            CROSS JOIN LATERAL (SELECT CASE
                    WHEN i % 100 < 95 THEN 'ready' WHEN i % 100 < 97 THEN 'failed'
                    WHEN i % 100 < 99 THEN 'pending' ELSE 'processing' END AS status,
                    now() - (i % 43200) * interval '1 minute' AS done,
                    1 + floor(-ln(1 - random() * 0.99999) * 8 + i * 0)::int % {TENANTS} AS tenant_number) AS s
            JOIN catalog_tenant t ON t.slug = 'bench-' || s.tenant_number
            """  # noqa: S608 - constants only
        )
        print(f"Loaded {media} media in {time.perf_counter() - started:.1f} s")
        cursor.execute("VACUUM ANALYZE catalog_media")


def measure(runs: int) -> dict[str, float]:
    from django.utils import timezone

    from ops_console import dashboard

    now = timezone.now()
    client = operator_client()

    def page(url: str) -> None:
        response = client.get(url)
        assert response.status_code == 200, response.status_code

    return {
        "media by tenant and status": timed_ms(dashboard.status_counts, runs),
        "stuck media per tenant": timed_ms(lambda: dashboard.stuck_counts(now), runs),
        "review list per tenant": timed_ms(dashboard.review_counts, runs),
        "24 h processing times (avg, p95)": timed_ms(lambda: dashboard.processing_times(now), runs),
        "24 h throughput per hour and tenant": timed_ms(lambda: dashboard.hourly_throughput(now), runs),
        "queue depths (Redis)": timed_ms(dashboard.queue_depths, runs),
        "workers' heartbeats (Redis)": timed_ms(dashboard.live_workers, runs),
        "whole dashboard page, all tenants": timed_ms(lambda: page("/admin/ops/"), runs),
        "whole dashboard page, one tenant": timed_ms(lambda: page("/admin/ops/?tenant=bench-1"), runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--media", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    use_bench_database()
    set_up_django()

    load(args.media)
    with_index, without_index = measure_with_and_without_index(args.runs)
    from config.celery import app

    ping = timed_ms(lambda: app.control.ping(timeout=PING_TIMEOUT_S), PING_RUNS)
    print_table(args, with_index, without_index, ping)


def measure_with_and_without_index(runs: int) -> tuple[dict[str, float], dict[str, float]]:
    """The timings with the index, then without it (dropped and created again)."""
    from django.db import connection

    with_index = measure(runs)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT indexdef FROM pg_indexes WHERE indexname = '{INDEX}'")  # noqa: S608
        definition = cursor.fetchone()[0]
        cursor.execute(f"DROP INDEX {INDEX}")
        without_index = measure(runs)
        cursor.execute(definition)
    return with_index, without_index


def print_table(args, with_index: dict[str, float], without_index: dict[str, float], ping: float) -> None:
    print(f"\n{args.media} media in {TENANTS} tenants, median of {args.runs} runs (ms)")
    header = f"{'':<{LABEL_WIDTH}} {'with index':>10} {'without':>10}"
    print(header + "\n" + "-" * len(header))
    for name, value in with_index.items():
        print(f"{name:<{LABEL_WIDTH}} {value:>10.1f} {without_index[name]:>10.1f}")
    ping_label = f"a broadcast ping instead (timeout {PING_TIMEOUT_S} s)"
    print(f"{ping_label:<{LABEL_WIDTH}} {ping:>10.1f}")


if __name__ == "__main__":
    main()
