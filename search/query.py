"""Nearest products to a query vector, inside one tenant.

The plan depends on the tenant's size (pgvector 0.8 or newer,
catalog/vector_engine.py):

- a large tenant has an HNSW index of its own (search/tenant_indexes.py): a
  scan of it with the tenant's `ef_search`;
- a tenant with at most `EXACT_SCAN_MAX_VECTORS` vectors is scanned exactly (no
  index: exact results, and within the latency target at that size), and so
  are a large tenant's rows in a category that holds at most that many of
  them (read from the `(tenant, category)` index: for 1% of a 134,072-vector
  tenant, p95 3.2 ms against 7.1 ms through its HNSW index, which orders by
  the halfvec distance, a cast per row), or with an attribute value or a
  sku that few of them have (read from the tenant's GIN index over its
  rows' attributes, or through the products' skus, up to one row more than
  few: more go to the HNSW scan, which checks the value on each row);
- a large tenant whose own index is not built yet is scanned exactly too,
  slower but exact, and asks for its index to be built now rather than at the
  next beat sync (there is no index over every tenant's vectors: catalog
  migration 0011).

Index scans are iterative (`hnsw.iterative_scan`): a scan whose rows the
category filter drops goes on until enough pass, up to `hnsw.max_scan_tuples`.

Pages (`offset`) are slices of one ranking: every page ranks the products from
the first one, and an index scan reads the same stream of rows whatever the
page (`strict_order`, with an `ef_search` that does not depend on the offset),
so a deeper page reads a longer prefix of it. A scan that gives fewer
products than the page needs reads a longer prefix; one that ran dry while
more may lie within reach of min_score is followed by an exact scan. Hits are
grouped by product (its best image or frame); unassigned media are their own
entries.

The queries run on the database of the search (config/replicas.py): a read
replica when there is one, else the primary.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from django.db import transaction

from catalog.models import EMBEDDING_TABLE, HNSW_EF_SEARCH_RANGE, TenantSettings
from config.queues import SYNC_TENANT_INDEXES_TASK, request_maintenance
from config.replicas import reading_connection
from search import filters
from search.filters import ProductFilter
from search.indexes import HALFVEC_OPCLASS, TENANT_INDEX_ORDER, attributes_index_name, tenant_index_name

# Up to this many vectors an exact scan of the tenant's rows (about 1.5 ms per
# 1,000 vectors on 2 cores, stored in the row) is as fast as a scan of an HNSW
# index of its own (3 to 5 ms at any size), and exact: a larger tenant gets its
# own index (search/tenant_indexes.py). Measured by bench/vector_search.py.
EXACT_SCAN_MAX_VECTORS = 2_000
# Raw hits fetched per requested product on the index path: products have
# several images and frames, and grouping needs their neighbours too.
HITS_PER_PRODUCT = 4
MAX_K = 100
# Paging goes this deep: a page is ranked from the first product, so a page
# at offset 900 ranks 1,000 products (with an own index, about 4,000 rows
# read from its stream).
MAX_OFFSET = 900
MAX_RANKED = 1_000
# An index scan short of products (they have many rows each) reads a stream
# prefix this many times longer, up to this many times, before an exact scan.
REFETCH_GROWTH = 4
REFETCH_ROUNDS = 2
# An iterative scan reads at most this many index tuples (or 50 per row
# wanted, if more) before it gives up: bounded latency for a filter that
# keeps almost nothing; an exact scan follows when it may have missed.
MAX_SCAN_TUPLES = 20_000
MAX_SCAN_TUPLES_PER_ROW = 50
# A large tenant's search that finds its own index missing asks for it at most
# this often (a sync already running makes the request a no-op; the next one
# after this asks again).
INDEX_REQUEST_EVERY_S = 60


@dataclass(frozen=True)
class Hit:
    media_id: int
    frame_id: int | None
    product_id: int | None
    score: float


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]  # the page: the products ranked offset .. offset + k - 1
    took_ms: float
    strategy: str
    next_offset: int | None = None  # where the next page starts; None: this is the last one


def vector_literal(vector: Sequence[float] | np.ndarray) -> str:
    """pgvector's text form of a float32 vector. Nine significant digits read
    back the same float32: a third shorter than pgvector.Vector.to_text()'s
    float64 digits, to format, send and parse on every query."""
    values = np.asarray(vector, dtype=np.float32).tolist()
    return "[" + ",".join([f"{value:.9g}" for value in values]) + "]"


def _filters(
    tenant_id: int,
    model_name: str,
    product_filter: ProductFilter | None,
    exclude_media_ids: Sequence[int],
    *,
    on_rows: bool = True,
    index_values: bool = True,
):
    """The WHERE clause and its parameters. A filter's category and attributes
    are conditions on the row (its product's, catalog.Embedding.category and
    .attributes), which an index scan checks as it goes; through the product
    only while the tenant has rows from before those columns (`manage.py
    fill_embedding_categories`). A sku goes through the product. An attribute
    value in the form the rows' GIN index answers when `index_values`, else
    in one that only an HNSW scan checks (search/filters.py)."""
    sql = ["e.tenant_id = %(tenant)s", "e.model_name = %(model)s"]
    params: dict = {"tenant": tenant_id, "model": model_name}
    if product_filter:
        conditions, values = filters.sql(product_filter, on_rows=on_rows, index_values=index_values)
        sql += conditions
        params.update(values)
    if exclude_media_ids:
        sql.append("e.media_id <> ALL(%(exclude)s)")
        params["exclude"] = list(exclude_media_ids)
    return " AND ".join(sql), params


def _exact(where: str, params: dict, k: int, max_distance: float) -> list[Hit]:
    """The k best products by comparing every row of the tenant."""
    # MATERIALIZED keeps the planner from using an HNSW index here: every row
    # of the tenant is compared, so the result is exact.
    sql = f"""
        WITH candidates AS MATERIALIZED (
            SELECT e.media_id, e.frame_id, e.product_id, e.vector <=> %(query)s::vector AS distance
            FROM {EMBEDDING_TABLE} e
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
    with reading_connection().cursor() as cursor:
        cursor.execute(sql, {**params, "k": k, "max_distance": max_distance})
        return [Hit(m, f, p, 1.0 - float(d)) for m, f, p, d in cursor.fetchall()]


def _exact_rows(where: str, params: dict, fetch: int, scan_at_most: int | None) -> tuple[list[tuple], int]:
    """The `fetch` nearest rows of the tenant by comparing each, reading at most
    `scan_at_most` of its rows (None: all), and how many were read: reading
    that many means the tenant has more, and the rows are not its nearest."""
    # Sorting only the nearest rows is about twice as fast as grouping them all
    # by product (_exact); grouping them afterwards gives the same top k when
    # they hold k products. MATERIALIZED keeps HNSW indexes out, as in _exact.
    sql = f"""
        WITH candidates AS MATERIALIZED (
            SELECT e.media_id, e.frame_id, e.product_id, e.vector <=> %(query)s::vector AS distance
            FROM {EMBEDDING_TABLE} e
            WHERE {where}
            LIMIT %(scan_at_most)s
        )
        SELECT media_id, frame_id, product_id, distance, (SELECT count(*) FROM candidates)
        FROM candidates
        ORDER BY distance, media_id
        LIMIT %(fetch)s
    """  # noqa: S608 - `where` is built from constants; values are parameters
    with reading_connection().cursor() as cursor:
        cursor.execute(sql, {**params, "fetch": fetch, "scan_at_most": scan_at_most})
        rows = cursor.fetchall()
    return [row[:4] for row in rows], (rows[0][4] if rows else 0)


@dataclass(frozen=True)
class _Facts:
    own_index: bool  # the tenant's own HNSW index is built and usable
    halfvec: bool  # and it is over halfvec (search/indexes.py), not an older one over vector
    attributes_index: bool  # the tenant's own GIN index over its rows' attributes is built
    on_rows: bool  # category and attribute filters can be checked on the rows: every one carries its product's
    few_in_filter: bool  # the category filter keeps at most EXACT_SCAN_MAX_VECTORS rows


def _lookups(tenant_id: int, model_name: str, categories: Sequence[str] | None) -> _Facts:
    """What the plan depends on, in one round trip (about half a millisecond):
    the tenant's own indexes (search/tenant_indexes.py) and its HNSW index's
    operator class (an index from before the halfvec release serves until the
    sync rebuilds it), whether its rows all carry their product's category
    and attributes (a look into an index that is empty once they do), and
    whether the filter's categories hold few of them (counted in the
    `(tenant, category)` index, up to one more than few)."""
    with reading_connection().cursor() as cursor:
        # The table's name is a constant.
        sql = (
            "SELECT i.indisvalid, o.opcname = %(halfvec)s, a.indisvalid, NOT EXISTS"  # noqa: S608
            f" (SELECT 1 FROM {EMBEDDING_TABLE} WHERE tenant_id = %(tenant)s"
            " AND (category IS NULL OR attributes IS NULL)),"
            f" (SELECT count(*) FROM (SELECT 1 FROM {EMBEDDING_TABLE} WHERE tenant_id = %(tenant)s"
            " AND category = ANY(%(categories)s) LIMIT %(few)s + 1) AS kept) <= %(few)s"
            " FROM (SELECT 1) AS one LEFT JOIN pg_index i ON i.indexrelid = to_regclass(%(index)s)"
            " LEFT JOIN pg_opclass o ON o.oid = i.indclass[0]"
            " LEFT JOIN pg_index a ON a.indexrelid = to_regclass(%(attributes_index)s)"
        )
        names = {
            "tenant": tenant_id,
            "categories": list(categories) if categories else None,
            "index": tenant_index_name(tenant_id, model_name),
            "attributes_index": attributes_index_name(tenant_id, model_name),
        }
        cursor.execute(sql, {**names, "few": EXACT_SCAN_MAX_VECTORS, "halfvec": HALFVEC_OPCLASS})
        valid, halfvec, attributes_valid, on_rows, few = cursor.fetchone()
    return _Facts(
        own_index=bool(valid),
        halfvec=bool(halfvec),
        attributes_index=bool(attributes_valid),
        on_rows=bool(on_rows),
        few_in_filter=bool(categories) and bool(on_rows) and bool(few),
    )


def _indexed(where: str, params: dict, fetch: int, ef_search: int, *, halfvec: bool) -> list[tuple]:
    # The tenant and the model reach the planner as constants (Django binds
    # parameters on the client), which is what lets it pick the tenant's own
    # partial index; server-side binding with generic plans would lose that.
    # A halfvec own index is used by ordering by its expression (search/indexes.py);
    # the distance returned is the float32 one either way.
    order = TENANT_INDEX_ORDER if halfvec else "e.vector <=> %(query)s::vector"
    sql = f"""
        SELECT e.media_id, e.frame_id, e.product_id, e.vector <=> %(query)s::vector AS distance
        FROM {EMBEDDING_TABLE} e
        WHERE {where}
        ORDER BY {order}
        LIMIT %(fetch)s
    """  # noqa: S608 - `where` is built from constants; values are parameters
    # set_config(..., true) settings last until the transaction ends.
    database = reading_connection()
    with transaction.atomic(using=database.alias), database.cursor() as cursor:
        max_scan_tuples = max(MAX_SCAN_TUPLES, fetch * MAX_SCAN_TUPLES_PER_ROW)
        # strict_order: the stream comes in order of distance, so every page
        # reads a prefix of the same ranking (pages never overlap or skip).
        cursor.execute(  # one round trip
            "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'strict_order', true),"
            " set_config('hnsw.max_scan_tuples', %s, true)",
            [str(ef_search), str(max_scan_tuples)],
        )
        cursor.execute(sql, {**params, "fetch": fetch})
        rows = cursor.fetchall()
    # In the index's (halfvec) order; ranked by the float32 distance.
    return sorted(rows, key=lambda row: (row[3], row[0]))


def _indexed_products(
    where: str, params: dict, fetch: int, ranked: int, max_distance: float, ef_search: int, *, halfvec: bool
) -> tuple[list[tuple], list[Hit]]:
    """The `ranked` best products through the tenant's own index, and the rows
    read: a longer prefix of the same stream while its rows group into too
    few products and more of them lie within reach of min_score."""
    rows = _indexed(where, params, fetch, ef_search, halfvec=halfvec)
    hits = _group(rows, ranked, max_distance)
    for _ in range(REFETCH_ROUNDS):
        if len(hits) >= ranked or len(rows) < fetch or rows[-1][3] > max_distance:
            break
        fetch *= REFETCH_GROWTH
        rows = _indexed(where, params, fetch, ef_search, halfvec=halfvec)
        hits = _group(rows, ranked, max_distance)
    return rows, hits


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


def _exact_plan(
    where: str, params: dict, fetch: int, k: int, max_distance: float, *, indexed: bool, tenant_id: int
) -> tuple[list[Hit], str] | None:
    """The rows the filter keeps, compared one by one: a small tenant's, or a
    large tenant's few in a category, by float32 distance (its own index
    would also be read in order of the halfvec one, a cast per row), or all
    of a large tenant's whose own index is not built yet. None: the filter
    keeps more than few of a large tenant's rows (counted a moment ago for a
    category, read here for a value or a sku), for its own index to answer."""
    exact_rows, scanned = _exact_rows(where, params, fetch, EXACT_SCAN_MAX_VECTORS + 1)
    strategy = "exact"
    if scanned > EXACT_SCAN_MAX_VECTORS:
        if indexed:
            return None
        # Its own index is not built yet (search/tenant_indexes.py): every
        # row is compared until it is.
        _ask_for_indexes(tenant_id)
        exact_rows, _ = _exact_rows(where, params, fetch, None)
        strategy = "exact-unindexed"
    hits = _group(exact_rows, k, max_distance)
    if len(hits) < k and len(exact_rows) == fetch and exact_rows[-1][3] <= max_distance:
        hits = _exact(where, params, k, max_distance)  # products with many rows near the query
    return hits, strategy


def _ask_for_indexes(tenant_id: int) -> None:
    """A sync of the tenant's own indexes on the maintenance queue, at most every INDEX_REQUEST_EVERY_S."""
    request_maintenance(SYNC_TENANT_INDEXES_TASK, tenant_id, every_s=INDEX_REQUEST_EVERY_S)


def next_page(offset: int, k: int, ranked: int) -> int | None:
    """The offset of the page after [offset, offset + k) of a ranking that
    holds `ranked` results; None when there is none, or it lies past MAX_OFFSET."""
    following = offset + k
    return following if ranked > following and following <= MAX_OFFSET else None


@dataclass(frozen=True)
class Ranking:
    hits: list[Hit]  # best first, at most the depth asked for
    strategy: str


def rank_products(
    vector: Sequence[float] | np.ndarray,
    *,
    tenant_id: int,
    model_name: str,
    depth: int,
    page_size: int = 10,
    min_score: float | None = None,
    relative_cutoff: float | None = None,
    product_filter: ProductFilter | None = None,
    exclude_media_ids: Sequence[int] = (),
    tenant_settings: TenantSettings | None = None,
) -> Ranking:
    """The `depth` products (or unassigned media) nearest to a unit query
    vector, best first, among those `product_filter` keeps, with
    `tenant_settings`' minimum similarity and ef_search (the defaults when
    None). `relative_cutoff`: drop those scoring more than that below the
    best one (catalog.models.SearchCutoff). A deeper ranking starts with a
    shallower one's products (pages of one ranking), for the same `page_size`
    (what the index scan's ef_search is sized by)."""
    tenant_settings = tenant_settings or TenantSettings(tenant_id=tenant_id)
    min_score = tenant_settings.min_similarity if min_score is None else min_score
    max_distance = 1.0 - min_score
    product_filter = product_filter or ProductFilter()
    facts = _lookups(tenant_id, model_name, product_filter.categories)
    where, params = _filters(tenant_id, model_name, product_filter, exclude_media_ids, on_rows=facts.on_rows)
    params["query"] = vector_literal(vector)
    if facts.own_index and product_filter.values and not facts.attributes_index:
        _ask_for_indexes(tenant_id)  # its values are looked for row by row until the sync builds that index

    fetch = depth * HITS_PER_PRODUCT
    # The page size's, not the depth's: every page reads the same stream.
    ef_search = min(HNSW_EF_SEARCH_RANGE[1], max(tenant_settings.hnsw_ef_search, page_size * HITS_PER_PRODUCT))
    rows = None  # raw rows of an index scan, when one was used
    exact = None
    # A filter an index finds (a sku, an attribute's value) is first read
    # from that index, up to one row more than few: few are compared exactly
    # at once, more are left to the HNSW scan.
    if not facts.own_index or facts.few_in_filter or product_filter.indexed:
        exact = _exact_plan(where, params, fetch, depth, max_distance, indexed=facts.own_index, tenant_id=tenant_id)
    if exact is not None:
        hits, strategy = exact
    else:
        # The same rows, their attribute values in a form only the scan checks (search/filters.py).
        scan_where, scan_params = _filters(
            tenant_id, model_name, product_filter, exclude_media_ids, on_rows=facts.on_rows, index_values=False
        )
        scan_params["query"] = params["query"]
        rows, hits = _indexed_products(
            scan_where, scan_params, fetch, depth, max_distance, ef_search, halfvec=facts.halfvec
        )
        strategy = "hnsw-tenant"
    if _may_have_missed(hits, rows, depth, max_distance):
        hits, strategy = _exact(where, params, depth, max_distance), "exact-fallback"
    if relative_cutoff is not None and hits:
        hits = [hit for hit in hits if hit.score >= hits[0].score - relative_cutoff]
    return Ranking(hits, strategy)


def nearest_products(
    vector: Sequence[float] | np.ndarray,
    *,
    tenant_id: int,
    model_name: str,
    k: int = 10,
    offset: int = 0,
    category: str | None = None,
    product_filter: ProductFilter | None = None,
    **options: Any,
) -> SearchResult:
    """The page of `k` products ranked from `offset` on (rank_products, whose
    `options` it takes; `category`: a filter on that one)."""
    started = time.perf_counter()
    k = max(1, min(k, MAX_K))
    offset = max(0, min(offset, MAX_RANKED - k))
    if category:
        product_filter = replace(product_filter or ProductFilter(), categories=(category,))
    # One more than the page: whether there is a next one.
    ranking = rank_products(
        vector,
        tenant_id=tenant_id,
        model_name=model_name,
        depth=offset + k + 1,
        page_size=k,
        product_filter=product_filter,
        **options,
    )
    hits = ranking.hits
    next_offset = next_page(offset, k, len(hits))
    took_ms = (time.perf_counter() - started) * 1000
    return SearchResult(hits[offset : offset + k], took_ms, ranking.strategy, next_offset)
