"""How fast the console's search analytics answer with a million searches logged.

    .venv/bin/python bench/search_analytics.py [--searches 1000000] [--runs 5]

Loads `--searches` search log rows over 50 tenants of very different sizes
(the biggest holds about a fifth) into a throwaway database on the embedded
PostgreSQL (`make services` first), spread over the last 30 days: 60% text,
25% image, 10% similar, 5% recommend searches, 8% of first pages empty, one
in ten a later page; and feedback on them (a click on 12% of searches, an
add-to-cart on 4%, a purchase on 1%, each
after a click). Then times the first roll-up of the days
(search/search_days.py) and an hourly one, each part of the page and the
whole page (through Django's test client, as a logged-in operator), for all
tenants and for the biggest, median of `--runs`: the figures read from the
day rollups and, side by side in the same run, summarized straight from the
log's rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import drop_bench_database, operator_client, set_up_django, timed_ms, use_bench_database
from bench.report import Table, emit, verdict

BENCH_DB = "stockmind_bench_analytics"
TENANTS = 50
WINDOW_DAYS = 30
BIGGEST = "bench-1"
# The whole page, all tenants, over a million rows, in ms.
TARGET_MS = 500.0


def load(searches: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO catalog_tenant (slug, name, is_active, created_at)"
            " SELECT 'bench-' || n, 'bench ' || n, true, now() FROM generate_series(1, %s) AS n",
            [TENANTS],
        )
        cursor.execute(
            "INSERT INTO catalog_tenantsettings (tenant_id, min_similarity, near_duplicate_similarity,"
            " auto_assign_confidence, stuck_after_minutes, hnsw_ef_search, search_cutoff, relative_cutoff,"
            " updated_at) SELECT id, 0.2, 0.95, 0.9, 30, 100, 'none', 0.1, now() FROM catalog_tenant"
        )
        started = time.perf_counter()
        cursor.execute(
            f"""
            INSERT INTO search_searchlog (id, tenant_id, kind, mode, query_text, filters, k, "offset",
                result_count, best_score, took_ms, strategy, created_at)
            SELECT gen_random_uuid(), t.id, s.kind, CASE WHEN s.kind = 'text' THEN 'hybrid' ELSE '' END,
                   CASE WHEN s.kind = 'text' THEN 'query ' || (i % 5000) ELSE '' END, '{{}}'::jsonb, 10,
                   s.page_offset, s.found, CASE WHEN s.found > 0 THEN 0.1 + random() * 0.8 END,
                   2 + random() * random() * 200, 'hnsw', now() - random() * interval '{WINDOW_DAYS} days'
            FROM generate_series(1, {searches}) AS i
            CROSS JOIN LATERAL (SELECT
                    CASE WHEN i % 20 < 12 THEN 'text' WHEN i % 20 < 17 THEN 'image'
                         WHEN i % 20 < 19 THEN 'similar' ELSE 'recommend' END AS kind,
                    CASE WHEN i % 10 = 9 THEN 10 ELSE 0 END AS page_offset,
                    CASE WHEN i % 25 < 2 THEN 0 ELSE 10 END AS found,
                    1 + floor(-ln(1 - random() * 0.99999) * 8 + i * 0)::int % {TENANTS} AS tenant_number) AS s
            JOIN catalog_tenant t ON t.slug = 'bench-' || s.tenant_number
            """  # noqa: S608 - constants only
        )
        cursor.execute(
            """
            INSERT INTO search_searchfeedback (tenant_id, search_id, event, created_at)
            SELECT s.tenant_id, s.id, e.event, s.created_at + interval '5 seconds'
            FROM (SELECT tenant_id, id, created_at, random() AS luck FROM search_searchlog) AS s
            JOIN (VALUES ('click', 0.12), ('add_to_cart', 0.04), ('purchase', 0.01)) AS e (event, share)
                ON s.luck < e.share
            """
        )
        cursor.execute("SELECT count(*) FROM search_searchfeedback")
        feedback = cursor.fetchone()[0]
        print(f"Loaded {searches} searches and {feedback} feedback events in {time.perf_counter() - started:.1f} s")
        cursor.execute("VACUUM ANALYZE search_searchlog")
        cursor.execute("VACUUM ANALYZE search_searchfeedback")


def from_log(since, end, tenant) -> list[tuple]:
    """The window's figures summarized straight from the log, as day_rows' tuples."""
    from search import search_days

    return [search_days.as_tuple(row) for row in search_days.summarize(since, end, tenant)]


def measure(runs: int) -> dict[str, tuple[float, float | str]]:
    """Each step's ms from the day rollups and, beside it, read straight from the log."""
    from datetime import timedelta

    from django.utils import timezone

    from catalog.models import Tenant
    from ops_console import search_analytics as analytics
    from search import search_days

    now = timezone.now()
    since = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=WINDOW_DAYS - 1)
    end = search_days.day_start(now.date()) + timedelta(days=1)
    yesterday = now.date() - timedelta(days=1)
    biggest = Tenant.objects.get(slug=BIGGEST)
    client = operator_client()

    def page(query: str) -> None:
        response = client.get(f"/admin/ops/search-analytics/?days={WINDOW_DAYS}{query}")
        assert response.status_code == 200, response.status_code

    started = time.perf_counter()
    search_days.roll_up_recent()
    figures: dict[str, tuple[float, float | str]] = {
        "first roll-up of the retained days (once)": ((time.perf_counter() - started) * 1000, ""),
        "roll up one day (beat, hourly)": (timed_ms(lambda: search_days.roll_up(yesterday), runs), ""),
    }
    for scope, tenant in (("all tenants", None), (BIGGEST, biggest)):
        figures[f"figures, per day, histogram ({scope})"] = (
            timed_ms(lambda t=tenant: analytics.add_up(analytics.day_rows(since, now, t), since, now), runs),
            timed_ms(lambda t=tenant: analytics.add_up(from_log(since, end, t), since, now), runs),
        )
        figures[f"top zero-result queries ({scope})"] = (
            timed_ms(lambda t=tenant: analytics.zero_result_queries(since, now, t), runs),
            "",
        )
    figures["whole page, all tenants"] = (timed_ms(lambda: page(""), runs), "")
    figures[f"whole page, {BIGGEST}"] = (timed_ms(lambda: page(f"&tenant={BIGGEST}"), runs), "")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--searches", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    use_bench_database(BENCH_DB)
    set_up_django()
    from django.db import connection

    load(args.searches)
    emit(analytics_table(args, measure(args.runs)))
    connection.close()
    drop_bench_database(BENCH_DB)


def analytics_table(args, figures: dict[str, tuple[float, float | str]]) -> Table:
    table = Table(
        key="analytics",
        title=f"Search analytics over {args.searches:,} logged searches in {TENANTS} tenants, "
        f"{WINDOW_DAYS}-day window (ms, median of {args.runs})",
        columns=["step", "from day rollups", "from the log", "target"],
    )
    whole = "whole page, all tenants"
    for name, (rolled, direct) in figures.items():
        target = f"<= {TARGET_MS:.0f} ms: {verdict(rolled, TARGET_MS, at_least=False)}" if name == whole else ""
        table.add(name, rolled, direct, target)
    table.notes.append(
        "From day rollups: the closed days' SearchDay rows plus today summarized from the log, as the page reads "
        "them; from the log: the same figures summarized from the whole window's log rows, side by side in the "
        "same run. The text queries that found nothing are always read from the log (its covering index filters "
        "them, their text comes from the rows)."
    )
    return table


if __name__ == "__main__":
    main()
