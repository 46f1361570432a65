"""Bulk import through the HTTP API (issue 17): `POST /api/v1/products/bulk`.

    .venv/bin/python bench/bulk_import.py [--products 10000] [--rounds 3]

Serves the app with gunicorn (one process of 2 threads) over a throwaway
database, and sends `--products` products (a sku, a title, a category and
three attributes each) in bodies of 1,000, one after another, from one
client on loopback, into a fresh tenant each round:

- new products, as a JSON array, then as NDJSON (another tenant);
- the same JSON bodies again (every row unchanged);
- the same skus with new titles (every row updated).

Products per second over the whole import, the median of `--rounds` rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    BENCH_LOG_DIR,
    Server,
    api_session,
    drop_bench_database,
    median,
    new_tenant,
    set_up_django,
    tiny_model,
    use_bench_database,
)
from bench.report import Table, emit, verdict

BENCH_DB = "stockmind_bench_bulk"
TARGET_PER_S = 2000.0
BATCH = 1000
CASES = ("new, JSON", "new, NDJSON", "again (unchanged)", "new titles (updated)")


def products(count: int, title: str = "product") -> list[dict]:
    return [
        {
            "sku": f"B-{n}",
            "title": f"{title} {n}",
            "category": f"category-{n % 20}",
            "attributes": {"color": ["red", "blue", "green"][n % 3], "size": 36 + n % 11, "price": n % 500},
        }
        for n in range(count)
    ]


def send(session, server: Server, rows: list[dict], *, ndjson: bool = False) -> tuple[float, dict]:
    """Seconds to import `rows` in bodies of BATCH, and the summed counts."""
    totals = {"created": 0, "updated": 0, "unchanged": 0, "errors": 0}
    started = time.perf_counter()
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        if ndjson:
            body = "\n".join(json.dumps(row) for row in chunk)
            response = session.post(
                server.url("/api/v1/products/bulk"), data=body, headers={"Content-Type": "application/x-ndjson"}
            )
        else:
            response = session.post(server.url("/api/v1/products/bulk"), json=chunk)
        response.raise_for_status()
        answer = response.json()
        for name in ("created", "updated", "unchanged"):
            totals[name] += answer[name]
        totals["errors"] += len(answer["errors"])
    return time.perf_counter() - started, totals


def one_round(server: Server, number: int, count: int) -> dict[str, tuple[float, dict]]:
    """Each case's seconds and counts, into tenants of this round's own."""
    _, key = new_tenant(f"bulk-{number}")
    _, other_key = new_tenant(f"bulk-ndjson-{number}")
    session, other = api_session(key), api_session(other_key)
    rows = products(count)
    return {
        CASES[0]: send(session, server, rows),
        CASES[1]: send(other, server, rows, ndjson=True),
        CASES[2]: send(session, server, rows),
        CASES[3]: send(session, server, products(count, "renamed")),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    use_bench_database(BENCH_DB)
    os.environ["CLIP_MODEL"] = str(tiny_model())  # products need no model; the web process loads one
    BENCH_LOG_DIR.mkdir(parents=True, exist_ok=True)
    set_up_django()
    server = Server({}, 1, BENCH_LOG_DIR / "bulk-gunicorn.log", threads=2)
    try:
        send(api_session(new_tenant("bulk-warm-up")[1]), server, products(BATCH))
        rounds = [one_round(server, number, args.products) for number in range(args.rounds)]
    finally:
        server.stop()
    emit(bulk_table(args, rounds))
    from django.db import connection

    connection.close()
    drop_bench_database(BENCH_DB)


def bulk_table(args, rounds: list[dict[str, tuple[float, dict]]]) -> Table:
    table = Table(
        key="bulk",
        title=f"Bulk import: {args.products:,} products through POST /api/v1/products/bulk, bodies of {BATCH:,}",
        columns=["case", "seconds", "products/s", "created", "updated", "unchanged", "errors", "target"],
    )
    for case in CASES:
        seconds = median([each[case][0] for each in rounds])
        counts = rounds[0][case][1]
        rate = args.products / seconds
        table.add(
            case,
            seconds,
            rate,
            counts["created"],
            counts["updated"],
            counts["unchanged"],
            counts["errors"],
            verdict(rate, TARGET_PER_S, at_least=True),
        )
    table.notes.append(
        f"gunicorn, one process of 2 threads, one client sending one body at a time on loopback; median of "
        f"{args.rounds} rounds, each into new tenants. Target (issue 17): >= {TARGET_PER_S:,.0f} products/s."
    )
    return table


if __name__ == "__main__":
    main()
