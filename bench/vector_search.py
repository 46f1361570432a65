"""Which query plan serves a tenant best on a pgvector without iterative scans.

    .venv/bin/python bench/vector_search.py [--vectors 60000] [--queries 40]

Loads clustered unit vectors for tenants of very different sizes into a
throwaway database on the embedded PostgreSQL (`make services` first), then
times, per tenant, the exact scan of the tenant's rows and the HNSW index path
(ef_search widened by the tenant's share), both through search/query.py, and
reports recall@10 of the index path against the exact scan. The exact scan's
cost grows with the tenant; the index path's recall falls as the tenant's
share shrinks: EXACT_SCAN_MAX_VECTORS sits where the exact scan stops being
cheap. Medians and p95 over the queries, both plans measured interleaved.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
BENCH_DB = "stockmind_bench"
DIM = 512
MODEL = "bench"
SHARES = [0.01, 0.05, 0.15, 0.33, 0.46]  # of all vectors, smallest to largest tenant


def clustered(rng, count: int, centres: np.ndarray) -> np.ndarray:
    vectors = centres[rng.integers(0, len(centres), count)] + 0.6 * rng.standard_normal((count, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def use_bench_database() -> None:
    import environ
    import psycopg

    env_file = ROOT / ".data" / "services.env"
    environ.Env.read_env(env_file, overwrite=False)
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("No DATABASE_URL: run `make services` first.")
    admin_url = url.replace("postgres://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + f"/{BENCH_DB}"


def load(total: int, seed: int) -> list[tuple[int, int]]:
    from django.db import connection

    from catalog.models import Tenant

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, DIM))
    tenants = []
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS embedding_vector_hnsw")
        for n, share in enumerate(SHARES):
            tenant = Tenant.objects.create(slug=f"bench-{n}", name=f"bench {n}")
            count = int(total * share)
            tenants.append((tenant.pk, count))
            rows = io.StringIO()
            for i in range(count):
                rows.write(f"{tenant.pk}\timage\tupload\tbench/{n}/{i}\t\timage/jpeg\t0\t\tready\t0\t\tnow\tnow\t\n")
            with cursor.cursor.copy(
                "COPY catalog_media (tenant_id, kind, source, storage_key, original_filename, content_type, size,"
                " sha256, status, attempts, error, created_at, updated_at, claim_token) FROM STDIN"
            ) as copy:
                copy.write(rows.getvalue())
            cursor.execute("SELECT id FROM catalog_media WHERE tenant_id = %s ORDER BY id", [tenant.pk])
            media_ids = [row[0] for row in cursor.fetchall()]
            vectors = clustered(rng, count, centres)
            with cursor.cursor.copy(
                "COPY search_embedding (tenant_id, media_id, model_name, vector, created_at) FROM STDIN"
            ) as copy:
                for media_id, vector in zip(media_ids, vectors, strict=True):
                    text = "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
                    copy.write(f"{tenant.pk}\t{media_id}\t{MODEL}\t{text}\tnow\n")
        started = time.perf_counter()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(
            "CREATE INDEX embedding_vector_hnsw ON search_embedding USING hnsw (vector vector_cosine_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )
        print(f"HNSW build over {total} vectors: {time.perf_counter() - started:.1f} s")
        cursor.execute("ANALYZE search_embedding")
    return tenants


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=int, default=60_000)
    parser.add_argument("--queries", type=int, default=40)
    args = parser.parse_args()

    use_bench_database()
    import django

    django.setup()
    from django.core.management import call_command

    from search import query

    call_command("migrate", verbosity=0)
    tenants = load(args.vectors, seed=1)
    rng = np.random.default_rng(2)
    queries = clustered(rng, args.queries, np.random.default_rng(1).standard_normal((200, DIM)))

    print(f"\n{args.vectors} vectors, {args.queries} queries, k=10, pgvector {query.pgvector_version()}")
    header = (
        f"{'tenant vectors':>14} {'share':>6} | {'exact p50':>9} {'p95':>6} | "
        f"{'index p50':>9} {'p95':>6} {'recall@10':>9}"
    )
    print(header + "\n" + "-" * len(header))
    for tenant_id, count in tenants:
        exact_ms, index_ms, recalls = [], [], []
        for vector in queries:
            query.EXACT_SCAN_MAX_VECTORS = 10**9
            exact = query.nearest_products(vector, tenant_id=tenant_id, model_name=MODEL, k=10, min_score=0)
            query.EXACT_SCAN_MAX_VECTORS = 0
            indexed = query.nearest_products(vector, tenant_id=tenant_id, model_name=MODEL, k=10, min_score=0)
            exact_ms.append(exact.took_ms)
            index_ms.append(indexed.took_ms)
            truth = {h.media_id for h in exact.hits}
            recalls.append(len(truth & {h.media_id for h in indexed.hits}) / max(1, len(truth)))
        print(
            f"{count:>14} {count / args.vectors:>6.0%} | {statistics.median(exact_ms):>9.1f} "
            f"{percentile(exact_ms, 95):>6.1f} | {statistics.median(index_ms):>9.1f} {percentile(index_ms, 95):>6.1f} "
            f"{statistics.mean(recalls):>9.3f}"
        )
    print("(ms; the index path falls back to the exact scan when it returns too few products)")


if __name__ == "__main__":
    main()
