"""Each large tenant's own HNSW index (and GIN index over its rows'
attributes): built and dropped by search/tenant_indexes.py
(beat task, `reindex`), used by the search query, never leaking other tenants.

Indexes are built CONCURRENTLY, which needs autocommit: these tests use
transactional_db, and drop what they built (a flush does not drop indexes)."""

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction

from catalog.models import Embedding, Media
from config.queues import QUEUE_MAINTENANCE, SYNC_TENANT_INDEXES_TASK
from search import indexes, query, tenant_indexes
from search.filters import ProductFilter
from search.indexes import attributes_index_name, tenant_index_name
from search.tasks import sync_tenant_indexes
from tests.factories import MediaFactory, ProductFactory, TenantFactory

MODEL = "test-clip"
DIM = 512
# Stands in for EXACT_SCAN_MAX_VECTORS, so that a few hundred vectors make a
# large tenant.
SMALL_EXACT_MAX = 100


@pytest.fixture
def tenants(tenant_indexes_dropped, monkeypatch):
    monkeypatch.setattr(query, "EXACT_SCAN_MAX_VECTORS", SMALL_EXACT_MAX)
    return TenantFactory(slug="big"), TenantFactory(slug="small")


def own(tenant, model: str = MODEL) -> list[str]:
    """The names of a tenant's own indexes: its HNSW index, and its GIN index over its rows' attributes."""
    return [tenant_index_name(tenant.pk, model), attributes_index_name(tenant.pk, model)]


def clustered(count: int, seed: int) -> np.ndarray:
    """Unit vectors around 20 centres, as photo embeddings group by subject."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((20, DIM))
    vectors = centres[rng.integers(0, 20, count)] + 0.6 * rng.standard_normal((count, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def add_vectors(tenant, vectors, model: str = MODEL, products=None) -> list[Embedding]:
    """A ready image per vector, unassigned or of products[i]."""
    products = products or [None] * len(vectors)
    media = Media.objects.bulk_create(
        MediaFactory.build(tenant=tenant, product=product, storage_key=f"k/{tenant.slug}/{model}/{i}", sha256="")
        for i, product in enumerate(products)
    )
    return Embedding.objects.bulk_create(
        Embedding(tenant=tenant, media=m, product=m.product, model_name=model, vector=v)
        for m, v in zip(media, vectors, strict=True)
    )


def search(tenant, vector, k: int = 10):
    return query.nearest_products(vector, tenant_id=tenant.pk, model_name=MODEL, k=k, min_score=0.0)


def exact_top(tenant, vector, k: int = 10) -> list[int]:
    where, params = query._filters(tenant.pk, MODEL, None, None)
    params["query"] = query.vector_literal(vector)
    with transaction.atomic():
        return [hit.media_id for hit in query._exact(where, params, k, 1.0)]


def plan_of_search(tenant, vector) -> str:
    """EXPLAIN of the index scan that nearest_products sends, as it sends it."""
    statements = []

    def record(execute, sql, params, many, context):
        if "ORDER BY e.vector" in sql:
            statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        search(tenant, vector)
    [(sql, params)] = statements
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_large_tenant_gets_its_own_index_which_its_searches_use(tenants):
    big, small = tenants
    # As many as a tenant with an index of its own has (EXACT_SCAN_MAX_VECTORS
    # and more): with a few hundred, PostgreSQL 18 rightly sorts them instead.
    add_vectors(big, clustered(2500, seed=1))
    add_vectors(small, clustered(40, seed=2))
    name = tenant_index_name(big.pk, MODEL)

    result = tenant_indexes.sync(model_names=[MODEL])

    assert result.created == own(big) and result.dropped == []
    assert set(tenant_indexes.existing()) == set(own(big))
    vector = clustered(1, seed=3)[0]
    assert f"Index Scan using {name}" in plan_of_search(big, vector)
    found = search(big, vector)
    assert found.strategy == "hnsw-tenant"
    assert search(small, vector).strategy == "exact"
    # A second run has nothing to do.
    again = tenant_indexes.sync(model_names=[MODEL])
    assert again.created == again.dropped == [] and again.kept == 2


def test_a_category_with_few_of_a_large_tenants_rows_is_scanned_exactly(tenants):
    big, _ = tenants
    rare = ProductFactory.create_batch(SMALL_EXACT_MAX - 10, tenant=big, category="rare")
    common = ProductFactory.create_batch(300, tenant=big, category="common")
    vectors = clustered(len(rare) + len(common), seed=13)
    add_vectors(big, vectors, products=rare + common)
    tenant_indexes.sync(model_names=[MODEL])
    assert tenant_indexes.existing() == dict.fromkeys(own(big), True)

    for category, strategy in [("rare", "exact"), ("common", "hnsw-tenant"), (None, "hnsw-tenant")]:
        for vector in clustered(3, seed=14):
            found = query.nearest_products(
                vector, tenant_id=big.pk, model_name=MODEL, k=10, min_score=0.0, category=category
            )
            assert found.strategy == strategy
            if category == "rare":  # exact: the very products an exact scan of the category ranks first
                where, params = query._filters(big.pk, MODEL, ProductFilter(categories=(category,)), None)
                params["query"] = query.vector_literal(vector)
                assert found.hits == query._exact(where, params, 10, 1.0)
            assert {hit.product_id for hit in found.hits} <= {
                p.pk for p in (rare if category == "rare" else rare + common)
            }


def test_searches_through_a_tenant_index_keep_recall_and_never_see_other_tenants(tenants):
    big, other = tenants
    mine = {e.media_id for e in add_vectors(big, clustered(600, seed=4))}
    queries = clustered(12, seed=5)
    # The other tenant's vectors are the queries themselves: nearer than any of big's.
    add_vectors(other, np.repeat(queries, 20, axis=0))
    tenant_indexes.sync(model_names=[MODEL])
    assert set(tenant_indexes.existing()) == {*own(big), *own(other)}

    recalls = []
    for vector in queries:
        found = search(big, vector)
        assert found.strategy == "hnsw-tenant"
        got = [hit.media_id for hit in found.hits]
        assert set(got) <= mine
        recalls.append(len(set(exact_top(big, vector)) & set(got)) / 10)
    assert np.mean(recalls) >= 0.95, recalls


def test_obsolete_indexes_are_dropped(tenants):
    big, small = tenants
    vectors = add_vectors(big, clustered(150, seed=6))
    add_vectors(small, clustered(150, seed=7), model="old-model")
    tenant_indexes.sync(model_names=[MODEL, "old-model"])
    assert len(tenant_indexes.existing()) == 4

    # big shrinks, but not below half the threshold: it keeps its indexes.
    Embedding.objects.filter(pk__in=[e.pk for e in vectors[:90]]).delete()
    assert tenant_indexes.sync(model_names=[MODEL]).dropped == sorted(own(small, "old-model"))
    assert set(tenant_indexes.existing()) == set(own(big))
    # Below half: dropped; its searches go back to the exact scan.
    Embedding.objects.filter(pk__in=[e.pk for e in vectors[90:120]]).delete()
    assert tenant_indexes.sync(model_names=[MODEL]).dropped == sorted(own(big))
    assert tenant_indexes.existing() == {}
    assert search(big, clustered(1, seed=8)[0]).strategy == "exact"


def test_an_index_left_invalid_by_an_interrupted_build_is_rebuilt(tenants):
    big, _ = tenants
    add_vectors(big, clustered(150, seed=9))
    tenant_indexes.sync(model_names=[MODEL])
    name = tenant_index_name(big.pk, MODEL)
    leftover = name + tenant_indexes.BUILDING_SUFFIX  # of a replacement interrupted before
    with connection.cursor() as cursor:
        cursor.execute(indexes.create_statement(leftover, 16, 128, tenant_id=big.pk, model_name=MODEL))
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = ANY(%s::regclass[])", [[name, leftover]]
        )
    assert search(big, clustered(1, seed=10)[0]).strategy != "hnsw-tenant"

    todo = tenant_indexes.plan(model_names=[MODEL])
    assert todo.drop == [leftover] and [(index.name, index.replaces) for index in todo.create] == [(name, True)]
    tenant_indexes.sync(model_names=[MODEL])
    assert tenant_indexes.existing() == dict.fromkeys(own(big), True)


def test_an_index_over_float32_vectors_from_before_is_rebuilt_over_halfvec(tenants):
    big, _ = tenants
    vectors = clustered(2500, seed=12)  # enough for the planner to prefer an index (as above)
    add_vectors(big, vectors)
    name = tenant_index_name(big.pk, MODEL)
    before = indexes.create_statement(name, 16, 128, tenant_id=big.pk, model_name=MODEL)
    with connection.cursor() as cursor:  # as the previous release built it
        cursor.execute(before.replace(indexes.TENANT_INDEX_EXPRESSION, "vector vector_cosine_ops"))
        cursor.execute("ANALYZE catalog_embedding")  # as a sync does after a build
    assert tenant_indexes.existing() == {name: False}
    # Until the sync rebuilds it, searches still go through it.
    assert f"Index Scan using {name}" in plan_of_search(big, vectors[3])
    assert search(big, vectors[3]).hits[0].media_id == exact_top(big, vectors[3])[0]

    gin = attributes_index_name(big.pk, MODEL)
    assert [(index.name, index.replaces) for index in tenant_indexes.plan(model_names=[MODEL]).create] == [
        (name, True),
        (gin, False),
    ]
    # The new one is built beside it, then takes its name: the old one serves meanwhile.
    steps = tenant_indexes.statements(tenant_indexes.plan(model_names=[MODEL]))
    assert [step.split(" ON ")[0] for step in steps if gin not in step] == [
        f"DROP INDEX CONCURRENTLY IF EXISTS {name}_new",
        f"DROP INDEX CONCURRENTLY IF EXISTS {name}_old",
        f"CREATE INDEX CONCURRENTLY {name}_new",
        f"DO $$ BEGIN ALTER INDEX {name} RENAME TO {name}_old; ALTER INDEX {name}_new RENAME TO {name}; END $$",
        f"DROP INDEX CONCURRENTLY IF EXISTS {name}_old",
    ]
    tenant_indexes.sync(model_names=[MODEL])
    assert tenant_indexes.existing() == dict.fromkeys(own(big), True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef(%s::regclass)", [name])
        assert "halfvec_cosine_ops" in cursor.fetchone()[0]
    found = search(big, vectors[3])
    assert found.strategy == "hnsw-tenant" and found.hits[0].media_id == exact_top(big, vectors[3])[0]
    assert f"Index Scan using {name}" in plan_of_search(big, vectors[3])


def test_the_beat_task_and_the_reindex_command_sync_with_progress(tenants, settings):
    big, _ = tenants
    settings.CLIP_MODEL = MODEL  # the model searches read: the one indexed
    add_vectors(big, clustered(150, seed=11))
    name = tenant_index_name(big.pk, MODEL)

    out = run("reindex", "--dry-run")
    assert f"CREATE INDEX CONCURRENTLY {name}" in out and "2 to build" in out
    assert tenant_indexes.existing() == {}

    assert sync_tenant_indexes.apply().get() == {"created": own(big), "dropped": [], "kept": 0, "skipped": False}

    out = run("reindex", "--dry-run")
    assert "REINDEX" not in out and "0 to build, 0 to drop, 2 kept" in out
    assert f"REINDEX INDEX CONCURRENTLY {name};" in run("reindex", "--rebuild", "--tenant", "big", "--dry-run")
    assert "REINDEX" not in run("reindex", "--rebuild", "--tenant", "small", "--dry-run")
    oid, gin_oid = index_oid(name), index_oid(attributes_index_name(big.pk, MODEL))
    out = run("reindex", "--rebuild", "--tenant", "big")
    assert f"REINDEX INDEX CONCURRENTLY {name}" in out and "0 built, 0 dropped, 2 kept, the kept ones rebuilt" in out
    assert index_oid(name) != oid and index_oid(attributes_index_name(big.pk, MODEL)) != gin_oid  # new builds
    assert tenant_indexes.existing() == dict.fromkeys(own(big), True)
    assert "0 built, 0 dropped, 2 kept." in run("reindex")


def index_oid(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::regclass::oid", [name])
        return cursor.fetchone()[0]


def sync_requests(broker) -> list[list]:
    """The arguments of each tenant index sync waiting in the maintenance queue."""
    from tests.conftest import queued_tasks

    return [args for task, args in queued_tasks(broker, QUEUE_MAINTENANCE) if task == SYNC_TENANT_INDEXES_TASK]


def test_a_large_tenant_without_its_own_index_yet_is_scanned_exactly_and_asks_for_it(tenants, broker, settings):
    from django.core.cache import cache

    big, small = tenants
    settings.CLIP_MODEL = MODEL  # the model searches read: the one indexed
    add_vectors(big, clustered(400, seed=1))
    add_vectors(small, clustered(150, seed=4))  # large too, and waiting as well
    cache.clear()
    queries = clustered(3, seed=3)

    for vector in queries:
        found = search(big, vector)
        assert found.strategy == "exact-unindexed" and [h.media_id for h in found.hits] == exact_top(big, vector)
    assert sync_requests(broker) == [[big.pk]]  # once, not once a search

    sync_tenant_indexes.apply(args=sync_requests(broker)[0]).get()  # as a worker runs it
    assert set(tenant_indexes.existing()) == set(own(big))  # that tenant's only
    found = search(big, queries[0])
    assert found.strategy == "hnsw-tenant" and found.hits[0].media_id == exact_top(big, queries[0])[0]


def test_a_search_that_cannot_ask_for_the_index_still_answers_and_asks_again_later(tenants, broker):
    from django.core.cache import cache

    from tests.conftest import broker_unreachable

    big, _ = tenants
    add_vectors(big, clustered(150, seed=1))
    cache.clear()
    vector = clustered(1, seed=3)[0]
    with broker_unreachable():
        found = search(big, vector)
        assert search(big, vector).strategy == "exact-unindexed"  # not asking again meanwhile
    assert found.strategy == "exact-unindexed" and [h.media_id for h in found.hits] == exact_top(big, vector)
    assert sync_requests(broker) == []
    cache.clear()  # a minute later (query.INDEX_REQUEST_EVERY_S), the broker back
    search(big, vector)
    assert sync_requests(broker) == [[big.pk]]


def test_beat_schedules_the_sync_on_the_maintenance_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["sync-tenant-indexes"]
    assert entry["task"] == SYNC_TENANT_INDEXES_TASK
    assert entry["options"]["queue"] == QUEUE_MAINTENANCE


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_a_large_tenant_missing_its_attributes_index_still_filters_and_asks_for_it(tenants, broker, settings):
    from django.core.cache import cache

    big, _ = tenants
    settings.CLIP_MODEL = MODEL
    products = [ProductFactory(tenant=big, attributes={"band": "rare" if n < 5 else "other"}) for n in range(200)]
    add_vectors(big, clustered(200, seed=21), products=products)
    tenant_indexes.sync(model_names=[MODEL])
    with connection.cursor() as cursor:
        cursor.execute(indexes.drop_statement(attributes_index_name(big.pk, MODEL)))
    cache.clear()
    rare = {p.pk for p in products[:5]}

    found = query.nearest_products(
        clustered(1, seed=22)[0],
        tenant_id=big.pk,
        model_name=MODEL,
        k=10,
        min_score=-1.0,
        product_filter=ProductFilter(attributes=(("band", ("rare",)),)),
    )
    assert found.strategy == "exact" and {hit.product_id for hit in found.hits} == rare
    assert sync_requests(broker) == [[big.pk]]
    sync_tenant_indexes.apply(args=[big.pk]).get()
    assert tenant_indexes.existing() == dict.fromkeys(own(big), True)


def statement_plan(tenant, vector, product_filter, marker: str) -> str:
    """EXPLAIN of the statement of a search that holds `marker`, as nearest_products sends it."""
    statements = []

    def record(execute, sql, params, many, context):
        if marker in sql:
            statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        found = query.nearest_products(
            vector, tenant_id=tenant.pk, model_name=MODEL, k=10, min_score=0.0, product_filter=product_filter
        )
    sql, params = statements[-1]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
        cursor.execute("EXPLAIN " + sql, params)
        return found.strategy + "\n" + "\n".join(row[0] for row in cursor.fetchall())


def test_a_rare_value_is_read_from_the_gin_index_and_a_common_one_checked_in_the_hnsw_scan(tenants):
    from catalog.models import Product

    big, _ = tenants
    products = Product.objects.bulk_create(
        Product(tenant=big, sku=f"P-{n}", title="p", attributes={"band": "rare" if n % 100 == 0 else "common"})
        for n in range(2500)  # enough for the planner to prefer the HNSW index (as above)
    )
    add_vectors(big, clustered(2500, seed=23), products=products)
    tenant_indexes.sync(model_names=[MODEL])
    vector = clustered(1, seed=24)[0]

    rare = statement_plan(big, vector, ProductFilter(attributes=(("band", ("rare",)),)), "MATERIALIZED")
    assert rare.startswith("exact") and f"Bitmap Index Scan on {attributes_index_name(big.pk, MODEL)}" in rare
    common = statement_plan(big, vector, ProductFilter(attributes=(("band", ("common",)),)), "ORDER BY e.vector")
    assert common.startswith("hnsw-tenant") and f"Index Scan using {tenant_index_name(big.pk, MODEL)}" in common
    assert "jsonb_contains(attributes" in common


def test_an_attributes_index_left_invalid_or_outdated_is_rebuilt(tenants):
    big, _ = tenants
    add_vectors(big, clustered(150, seed=25))
    tenant_indexes.sync(model_names=[MODEL])
    gin = attributes_index_name(big.pk, MODEL)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [gin])
    assert tenant_indexes.existing()[gin] is False
    assert [(index.name, index.replaces) for index in tenant_indexes.plan(model_names=[MODEL]).create] == [(gin, True)]
    tenant_indexes.sync(model_names=[MODEL])
    assert tenant_indexes.existing() == dict.fromkeys(own(big), True)

    with connection.cursor() as cursor:  # over another operator class: outdated
        cursor.execute(indexes.drop_statement(gin))
        cursor.execute(f"CREATE INDEX {gin} ON catalog_embedding USING gin (attributes) WHERE tenant_id = {big.pk}")
    assert tenant_indexes.existing()[gin] is False
    tenant_indexes.sync(model_names=[MODEL])
    assert tenant_indexes.existing()[gin] is True


def test_a_tenant_that_keeps_its_hnsw_index_gets_its_attributes_index_too(tenants):
    """Between half the threshold and the threshold a tenant keeps its HNSW
    index without one being built: its attributes index goes with it."""
    big, _ = tenants
    vectors = add_vectors(big, clustered(150, seed=26))
    tenant_indexes.sync(model_names=[MODEL])
    with connection.cursor() as cursor:
        cursor.execute(indexes.drop_statement(attributes_index_name(big.pk, MODEL)))
    Embedding.objects.filter(pk__in=[e.pk for e in vectors[:70]]).delete()  # 80 left: kept, not built
    assert tenant_indexes.sync(model_names=[MODEL]).created == [attributes_index_name(big.pk, MODEL)]
    assert tenant_indexes.existing() == dict.fromkeys(own(big), True)
