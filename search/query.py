"""Nearest products to a query vector, inside one tenant.

An HNSW index scan returns the `ef_search` nearest vectors of the whole table
and only then applies `WHERE tenant_id = ...`: a tenant holding 1% of the
vectors would get almost nothing back. So the query plan depends on the server
and on the tenant's size:

- pgvector >= 0.8: iterative index scans (`hnsw.iterative_scan`) keep scanning
  until enough rows pass the filter.
- older pgvector (the embedded server has 0.6): a tenant with at most
  `EXACT_SCAN_MAX_VECTORS` vectors is scanned exactly (no index: exact results,
  and the faster plan at that size); a larger tenant uses the index with
  `ef_search` raised in proportion to how much of the table is not theirs, and
  falls back to the exact scan when that still returns too few products.

Hits are grouped by product (its best image or frame); unassigned media are
their own entries.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from django.db import connection, transaction
from pgvector import Vector

from search.models import HNSW_EF_SEARCH_RANGE, Thresholds

# Up to this many vectors an exact scan of the tenant's rows is faster than the
# widened index scan (about 3 ms per 1,000 vectors against 11-17 ms on 2 cores;
# bench/vector_search.py), and exact besides.
EXACT_SCAN_MAX_VECTORS = 5_000
# Raw hits fetched per requested product on the index path: products have
# several images and frames, and grouping needs their neighbours too.
HITS_PER_PRODUCT = 4
MAX_K = 100
# On the index path without iterative scans, ef_search is at least this many
# times the rows wanted, divided by the tenant's share of the table: the scan
# has to pass over the other tenants' rows, and a wider beam keeps recall@10
# at 0.95 or more on clustered data (tests/test_search_query.py).
OVERFETCH_EF_FACTOR = 5


@dataclass(frozen=True)
class Hit:
    media_id: int
    frame_id: int | None
    product_id: int | None
    score: float


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    took_ms: float
    strategy: str


@cache
def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def pgvector_version() -> tuple[int, ...]:
    """The server's pgvector version, read at run time (cached per connection)."""
    cached = getattr(connection, "_stockmind_pgvector", None)
    if cached is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
        cached = _parse_version(row[0]) if row else ()
        connection._stockmind_pgvector = cached
    return cached


def supports_iterative_scan() -> bool:
    return pgvector_version() >= (0, 8)


def _filters(tenant_id: int, model_name: str, category: str | None, exclude_media_id: int | None):
    sql = ["e.tenant_id = %(tenant)s", "e.model_name = %(model)s"]
    params: dict = {"tenant": tenant_id, "model": model_name}
    if category:
        sql.append(
            "e.product_id IN (SELECT p.id FROM catalog_product p WHERE p.tenant_id = %(tenant)s"
            " AND p.category = %(category)s)"
        )
        params["category"] = category
    if exclude_media_id is not None:
        sql.append("e.media_id <> %(exclude)s")
        params["exclude"] = exclude_media_id
    return " AND ".join(sql), params


def _exact(where: str, params: dict, k: int, max_distance: float) -> list[Hit]:
    # MATERIALIZED keeps the planner from using the HNSW index here: every row
    # of the tenant is compared, so the result is exact.
    sql = f"""
        WITH candidates AS MATERIALIZED (
            SELECT e.media_id, e.frame_id, e.product_id, e.vector <=> %(query)s::vector AS distance
            FROM search_embedding e
            WHERE {where}
        ), best AS (
            SELECT DISTINCT ON (COALESCE(product_id, -media_id)) media_id, frame_id, product_id, distance
            FROM candidates
            ORDER BY COALESCE(product_id, -media_id), distance
        )
        SELECT media_id, frame_id, product_id, distance FROM best
        WHERE distance <= %(max_distance)s
        ORDER BY distance, media_id
        LIMIT %(k)s
    """  # noqa: S608 - `where` is built from constants; values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, {**params, "k": k, "max_distance": max_distance})
        return [Hit(m, f, p, 1.0 - float(d)) for m, f, p, d in cursor.fetchall()]


def _indexed(where: str, params: dict, fetch: int, ef_search: int, iterative: bool) -> list[tuple]:
    sql = f"""
        SELECT e.media_id, e.frame_id, e.product_id, e.vector <=> %(query)s::vector AS distance
        FROM search_embedding e
        WHERE {where}
        ORDER BY e.vector <=> %(query)s::vector
        LIMIT %(fetch)s
    """  # noqa: S608 - `where` is built from constants; values are parameters
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
        if iterative:
            cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            cursor.execute("SELECT set_config('hnsw.max_scan_tuples', %s, true)", [str(max(20_000, fetch * 50))])
        cursor.execute(sql, {**params, "fetch": fetch})
        rows = cursor.fetchall()
    # relaxed_order may return rows slightly out of order.
    return sorted(rows, key=lambda row: (row[3], row[0]))


def _group(rows: Sequence[tuple], k: int, max_distance: float) -> list[Hit]:
    best: dict[int, tuple] = {}
    for row in rows:
        media_id, _, product_id, distance = row
        key = product_id if product_id is not None else -media_id
        if key not in best or distance < best[key][3]:
            best[key] = row
    ranked = sorted(best.values(), key=lambda row: (row[3], row[0]))
    return [Hit(m, f, p, 1.0 - float(d)) for m, f, p, d in ranked if d <= max_distance][:k]


def _may_have_missed(hits: list[Hit], rows: Sequence[tuple] | None, k: int, max_distance: float) -> bool:
    """An index scan gave fewer than k products although rows within reach of
    min_score may lie beyond what it returned (filtered out, or grouped away)."""
    if rows is None or len(hits) >= k:
        return False
    return not rows or rows[-1][3] <= max_distance


def _tenant_share(tenant_id: int, model_name: str) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM search_embedding WHERE tenant_id = %s AND model_name = %s", [tenant_id, model_name]
        )
        mine = cursor.fetchone()[0]
        # The planner's estimate of the table size is enough to size ef_search.
        cursor.execute("SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = 'search_embedding'::regclass")
        total = max(cursor.fetchone()[0], mine)
    return mine, total


def nearest_products(
    vector: Sequence[float] | np.ndarray,
    *,
    tenant_id: int,
    model_name: str,
    k: int = 10,
    min_score: float | None = None,
    category: str | None = None,
    exclude_media_id: int | None = None,
    thresholds: Thresholds | None = None,
) -> SearchResult:
    """The `k` best products (or unassigned media) for a unit query vector."""
    started = time.perf_counter()
    k = max(1, min(k, MAX_K))
    thresholds = thresholds or Thresholds(tenant_id=tenant_id)
    min_score = thresholds.min_similarity if min_score is None else min_score
    max_distance = 1.0 - min_score
    where, params = _filters(tenant_id, model_name, category, exclude_media_id)
    params["query"] = Vector(np.asarray(vector, dtype=np.float32)).to_text()

    rows = None  # raw rows of an index scan, when one was used
    with transaction.atomic():  # set_config(..., true) settings end with it
        if supports_iterative_scan():
            fetch = k * HITS_PER_PRODUCT
            rows = _indexed(where, params, fetch, thresholds.hnsw_ef_search, iterative=True)
            hits, strategy = _group(rows, k, max_distance), "hnsw-iterative"
        else:
            mine, total = _tenant_share(tenant_id, model_name)
            if mine <= EXACT_SCAN_MAX_VECTORS:
                hits, strategy = _exact(where, params, k, max_distance), "exact"
            else:
                fetch = k * HITS_PER_PRODUCT
                share = mine / total
                ef_search = min(
                    HNSW_EF_SEARCH_RANGE[1],
                    max(thresholds.hnsw_ef_search, math.ceil(fetch / share * OVERFETCH_EF_FACTOR)),
                )
                rows = _indexed(where, params, fetch, ef_search, iterative=False)
                hits, strategy = _group(rows, k, max_distance), "hnsw-overfetch"
        if _may_have_missed(hits, rows, k, max_distance):
            hits, strategy = _exact(where, params, k, max_distance), "exact-fallback"
    return SearchResult(hits, (time.perf_counter() - started) * 1000, strategy)
