"""Search v2's `filter` (API.md): category, sku and attribute conditions,
applied inside the vector query. The results are checked against an exact
filtered scan computed here, in Python, from the same vectors and products:
exactly equal on the exact path, recall@10 >= 0.95 through a tenant's own
HNSW index; media without a product never match; another tenant's products
never count; what the filter cannot mean is a 400 naming the offending part."""

import json
import operator

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from catalog.models import Embedding, Media, Product
from search import filters, query, tenant_indexes
from search.filters import FilterError, ProductFilter
from search.indexes import attributes_index_name, tenant_index_name
from tests import media_files
from tests.conftest import error_code
from tests.factories import EmbeddingFactory, MediaFactory, ProductFactory, TenantFactory

MODEL = "test-clip"
DIM = 512
COLORS = ["red", "blue", "green", "black", "white"]
CATEGORIES = ["shoes", "boots", "bags", "hats", "belts"]

RANGE_CHECKS = {"gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt}
FILTERS = [
    {"category": ["shoes", "boots"]},
    {"category": "hats"},
    {"attributes": {"color": "red"}},
    {"attributes": {"color": ["red", "blue"], "size": {"gte": 42}}},
    {"category": "bags", "attributes": {"price": {"gt": 50, "lte": 120}}},
    {"attributes": {"size": 40}},
    {"attributes": {"size": [41.0, "42"]}},  # 41 as a number matches; the string "42" never does
    {"attributes": {"waterproof": True}},
    {"attributes": {"price": {"lt": 20}}},  # some prices are strings: never in a range
]


def clustered(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((20, DIM))
    vectors = centres[rng.integers(0, 20, count)] + 0.6 * rng.standard_normal((count, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def catalog(tenant, products: int, seed: int) -> dict[int, tuple[dict | None, np.ndarray]]:
    """`products` products with varied attributes, an image each, and one
    unassigned image in ten: {media id: (the product's fields or None, vector)}."""
    rng = np.random.default_rng(seed)
    made = []
    for n in range(products):
        price = round(float(rng.uniform(5, 200)), 2)
        attributes = {
            "color": COLORS[rng.integers(len(COLORS))],
            "size": int(rng.integers(36, 47)),
            "price": price if n % 7 else str(price),  # a string now and then, as catalogs have
            "waterproof": bool(n % 3 == 0),
        }
        made.append(
            ProductFactory(
                tenant=tenant, sku=f"{tenant.slug}-{n}", category=CATEGORIES[n % len(CATEGORIES)], attributes=attributes
            )
        )
    owners = made + [None] * (products // 10)
    vectors = clustered(len(owners), seed)
    media = Media.objects.bulk_create(
        MediaFactory.build(tenant=tenant, product=product, storage_key=f"k/{tenant.slug}/{i}", sha256="")
        for i, product in enumerate(owners)
    )
    Embedding.objects.bulk_create(
        Embedding(tenant=tenant, media=m, product=m.product, model_name=MODEL, vector=v)
        for m, v in zip(media, vectors, strict=True)
    )
    return {
        m.pk: (None if p is None else {"sku": p.sku, "category": p.category, "attributes": p.attributes}, v)
        for m, p, v in zip(media, owners, vectors, strict=True)
    }


def keeps(product: dict | None, wanted: dict) -> bool:
    """The filter's meaning, written out plainly: the oracle the SQL is checked against."""
    if product is None:
        return False

    if "category" in wanted and product["category"] not in one_of_list(wanted["category"]):
        return False
    if "sku" in wanted and product["sku"] not in one_of_list(wanted["sku"]):
        return False
    for name, condition in wanted.get("attributes", {}).items():
        value = product["attributes"].get(name)
        if isinstance(condition, dict):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            if not all(RANGE_CHECKS[op](value, bound) for op, bound in condition.items()):
                return False
        elif not any(json_equal(value, allowed) for allowed in one_of_list(condition)):
            return False
    return True


def json_equal(value, wanted) -> bool:
    """JSON's equality, as jsonb has it: 40 is 40.0, true is not 1."""
    return value == wanted and isinstance(value, bool) == isinstance(wanted, bool)


def one_of_list(condition) -> list:
    return condition if isinstance(condition, list) else [condition]


def exact_filtered(rows: dict, vector: np.ndarray, wanted: dict, k: int = 10) -> list[int]:
    scored = [(float(v @ vector), media_id) for media_id, (product, v) in rows.items() if keeps(product, wanted)]
    kept = [(score, media_id) for score, media_id in scored if score >= 0]  # min_score 0
    return [media_id for _, media_id in sorted(kept, key=lambda pair: (-pair[0], pair[1]))[:k]]


def searched(tenant, vector, wanted: dict):
    return query.nearest_products(
        vector, tenant_id=tenant.pk, model_name=MODEL, k=10, min_score=0.0, product_filter=filters.parse(wanted)
    )


@pytest.mark.django_db
def test_filters_on_a_small_tenant_equal_an_exact_filtered_scan():
    tenant, other = TenantFactory(slug="shop"), TenantFactory(slug="other")
    rows = catalog(tenant, 400, seed=1)
    catalog(other, 100, seed=2)  # its products have the same attributes, and nearer vectors for some queries
    for vector in clustered(4, seed=3):
        for wanted in [*FILTERS, {"sku": ["shop-3", "shop-30", "shop-300", "other-3"]}]:
            found = searched(tenant, vector, wanted)
            assert found.strategy == "exact"
            assert [hit.media_id for hit in found.hits] == exact_filtered(rows, vector, wanted), wanted


@pytest.mark.slow
def test_filters_through_a_tenants_own_index_keep_recall(tenant_indexes_dropped, monkeypatch):
    monkeypatch.setattr(query, "EXACT_SCAN_MAX_VECTORS", 100)  # 660 vectors make a large tenant
    tenant = TenantFactory(slug="big")
    rows = catalog(tenant, 600, seed=4)
    tenant_indexes.sync(model_names=[MODEL])
    assert tenant_indexes.own_indexes(tenant.pk)
    recalls, strategies = [], set()
    for vector in clustered(5, seed=5):
        for wanted in FILTERS:
            found = searched(tenant, vector, wanted)
            strategies.add(found.strategy)
            truth = exact_filtered(rows, vector, wanted)
            got = [hit.media_id for hit in found.hits]
            assert all(keeps(rows[media_id][0], wanted) for media_id in got), wanted
            recalls.append(len(set(got) & set(truth)) / max(1, len(truth)))
    # Selective filters (at most 100 rows) are compared exactly, the others scanned in the index.
    assert {"exact", "hnsw-tenant"} <= strategies, strategies
    assert np.mean(recalls) >= 0.95, recalls


@pytest.mark.django_db
def test_a_filter_never_matches_media_without_a_product(tenant):
    vector = clustered(1, seed=6)[0]
    loose = MediaFactory(tenant=tenant, product=None)
    EmbeddingFactory(media=loose, model_name=MODEL, vector=vector.tolist())
    shoe = MediaFactory(tenant=tenant, product=ProductFactory(tenant=tenant, category=""))
    EmbeddingFactory(media=shoe, model_name=MODEL, vector=vector.tolist())
    assert {hit.media_id for hit in searched(tenant, vector, {}).hits} == {shoe.pk, loose.pk}
    for wanted in [{"category": ""}, {"category": ["", "x"]}, {"sku": [shoe.product.sku, "x"]}]:
        assert {hit.media_id for hit in searched(tenant, vector, wanted).hits} == {shoe.pk}


@pytest.mark.parametrize(
    ("wanted", "path"),
    [
        ([], "filter"),
        ({"colour": "red"}, "colour"),
        ({"category": []}, "category"),
        ({"category": 3}, "category"),
        ({"sku": ["a", 1]}, "sku"),
        ({"attributes": []}, "attributes"),
        ({"attributes": {"size": {"between": [1, 2]}}}, "attributes.size"),
        ({"attributes": {"size": {}}}, "attributes.size"),
        ({"attributes": {"size": {"gte": "40"}}}, "attributes.size.gte"),
        ({"attributes": {"size": {"gte": True}}}, "attributes.size.gte"),
        ({"attributes": {"size": None}}, "attributes.size"),
        ({"attributes": {"size": [[40]]}}, "attributes.size"),
        ({"attributes": {"size": []}}, "attributes.size"),
        ({"attributes": {}}, "attributes"),  # names a product field, so it cannot mean "no filter"
        ({"attributes": {"size": 1e999}}, "attributes.size"),
        ({"attributes": {"size": float("nan")}}, "attributes.size"),
        ({"attributes": {"size": {"lt": float("inf")}}}, "attributes.size.lt"),
    ],
)
def test_what_a_filter_cannot_mean_is_refused_with_where(wanted, path):
    with pytest.raises(FilterError) as refused:
        filters.parse(wanted)
    assert refused.value.path == path


def test_an_empty_filter_is_no_filter():
    assert not filters.parse(None) and not filters.parse({})
    assert filters.parse({"category": "a"}) == ProductFilter(categories=("a",))


TEXT_URL = "/api/v1/search/text"


@pytest.mark.django_db
def test_every_search_endpoint_takes_a_filter(api, tenant, clip):
    red = ProductFactory(tenant=tenant, sku="RED-1", category="shoes", attributes={"color": "red"})
    blue = ProductFactory(tenant=tenant, sku="BLUE-1", category="shoes", attributes={"color": "blue"})
    items = {}
    for product in (red, blue):
        media = MediaFactory(tenant=tenant, product=product, status=Media.Status.READY)
        EmbeddingFactory(media=media, model_name="clip-tiny", vector=clip.embed_texts([product.sku])[0].tolist())
        items[product.sku] = media
    red_only = {"attributes": {"color": "red"}}

    body = api.post(TEXT_URL, {"query": "a shoe", "min_score": 0, "filter": red_only}, format="json").json()
    assert [r["product"]["sku"] for r in body["results"]] == ["RED-1"]

    photo = SimpleUploadedFile("q.jpg", media_files.jpeg_bytes(64, 64))
    fields = {"file": photo, "min_score": 0, "filter": json.dumps({"sku": ["BLUE-1"]})}
    body = api.post("/api/v1/search/image", fields, format="multipart").json()
    assert [r["product"]["sku"] for r in body["results"]] == ["BLUE-1"]

    similar = f"/api/v1/search/similar/{items['BLUE-1'].pk}"
    body = api.get(similar, {"min_score": 0, "filter": json.dumps(red_only)}).json()
    assert [r["product"]["sku"] for r in body["results"]] == ["RED-1"]
    assert api.get(similar, {"min_score": 0, "filter": json.dumps({"sku": ["BLUE-1"]})}).json()["results"] == []


@pytest.mark.django_db
def test_v1_category_beside_filter_category_must_hold_too(api, tenant, clip):
    from tests.catalogs import bulk_catalog

    vectors = np.eye(3, DIM, dtype=np.float32)
    media = bulk_catalog(tenant, vectors)
    from catalog.models import Product

    # The vector rows follow their product's category (a trigger).
    Product.objects.filter(pk=media[1].product_id).update(category="boots")
    Product.objects.filter(pk=media[2].product_id).update(category="bags")

    def skus(**fields):
        body = api.post(TEXT_URL, {"query": "a shoe", "mode": "vector", "min_score": 0, **fields}, format="json")
        assert body.status_code == 200, body.content
        return sorted(r["product"]["sku"] for r in body.json()["results"])

    assert skus(category="boots", filter={"category": ["boots", "bags"]}) == [media[1].product.sku]
    assert skus(category="shoes", filter={"category": ["boots", "bags"]}) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "names"),
    [
        ({"filter": {"attributes": {"color": {"near": "red"}}}}, "filter", "attributes.color"),
        ({"filter": "{not json"}, "filter", "JSON object"),
        ({"filter": '{"attributes": {"size": NaN}}'}, "filter", "JSON object"),
        ({"filter": '{"category": "\\u0000"}'}, "filter", "filter.category"),
        ({"filter": "[" * 100_000}, "filter", "JSON object"),
        ({"filter": ["shoes"]}, "filter", "filter"),
    ],
)
def test_a_bad_filter_is_400_naming_it(api, clip, fields, field, names):
    response = api.post(TEXT_URL, {"query": "a shoe", **fields}, format="json")
    assert response.status_code == 400 and error_code(response) == "validation_error"
    detail = response.json()["error"]["detail"]
    assert list(detail) == [field] and names in str(detail[field]), detail


def plan_of(sql: str, params: dict) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_large_tenants_attribute_values_are_read_from_its_own_gin_index(tenant_indexes_dropped, monkeypatch):
    monkeypatch.setattr(query, "EXACT_SCAN_MAX_VECTORS", 100)  # 660 vectors make a large tenant
    tenant, other = TenantFactory(slug="big"), TenantFactory(slug="other")
    rows = catalog(tenant, 600, seed=11)
    catalog(other, 150, seed=12)
    # Two products of big and one of the other tenant have a value no other
    # product has; the other tenant's vector is the query itself.
    rare = {"attributes": {"color": "rare"}}
    Product.objects.filter(sku__in=["big-7", "big-8", "other-7"]).update(attributes={"color": "rare"})
    vector = clustered(1, seed=13)[0]
    Embedding.objects.filter(product__sku="other-7").update(vector=vector.tolist())
    tenant_indexes.sync(model_names=[MODEL])
    gin = attributes_index_name(tenant.pk, MODEL)
    assert {tenant_index_name(tenant.pk, MODEL), gin} <= set(tenant_indexes.own_indexes(tenant.pk))

    # A value few rows have: read from the tenant's GIN index, compared exactly.
    where, params = query._filters(tenant.pk, MODEL, filters.parse(rare), ())
    assert gin in plan_of(f"SELECT 1 FROM catalog_embedding e WHERE {where} LIMIT 101", params)  # noqa: S608
    found = query.nearest_products(
        vector, tenant_id=tenant.pk, model_name=MODEL, min_score=-1.0, product_filter=filters.parse(rare)
    )
    assert found.strategy == "exact"
    assert sorted(hit.product_id for hit in found.hits) == sorted(
        Product.objects.filter(sku__in=["big-7", "big-8"]).values_list("pk", flat=True)
    )

    # A value many have: the HNSW scan checks it on each row, in a form
    # no index answers (else the planner may sort all the rows the GIN finds).
    common = {"attributes": {"color": "red"}}
    found = searched(tenant, vector, common)
    assert found.strategy == "hnsw-tenant"
    assert [hit.media_id for hit in found.hits][:5] == exact_filtered(rows, vector, common)[:5]
    # (tests/test_tenant_indexes.py checks the HNSW scan's plan, on enough rows for the planner to use it.)
    scan, _ = query._filters(tenant.pk, MODEL, filters.parse(common), (), index_values=False)
    assert "jsonb_contains(e.attributes" in scan and "@>" not in scan

    # A range is read on the row (it carries its product's attributes).
    conditions, _ = filters.sql(filters.parse({"attributes": {"price": {"lt": 5}}}), on_rows=True)
    assert "e.attributes -> " in conditions[0] and "catalog_product" not in " ".join(conditions)


@pytest.mark.django_db
def test_a_vector_rows_category_and_attributes_are_kept_in_the_row(tenant):
    """Not moved to TOAST beside the 2 kB vector (catalog migration 0016):
    a filter reads them on the row's own page."""
    product = ProductFactory(tenant=tenant, category="c" * 100, attributes={"about": "x" * 500, "color": "red"})
    EmbeddingFactory(media=MediaFactory(tenant=tenant, product=product), model_name=MODEL)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_column_toast_chunk_id(category), pg_column_toast_chunk_id(attributes), attributes->>'color'"
            " FROM catalog_embedding WHERE product_id = %s",
            [product.pk],
        )
        assert cursor.fetchall() == [(None, None, "red")]
