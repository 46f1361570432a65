"""`POST /api/v1/products/bulk` (API.md, Catalog v2): a JSON array or NDJSON,
upserted by sku, counts and per-row errors, idempotent, tenant-scoped."""

import json

import pytest

from catalog.models import Embedding, Product
from tests.conftest import error_code
from tests.factories import EmbeddingFactory, MediaFactory, ProductFactory

URL = "/api/v1/products/bulk"


def post_ndjson(api, lines: list[str]):
    return api.post(URL, "\n".join(lines) + "\n", content_type="application/x-ndjson")


@pytest.mark.django_db
def test_rows_are_created_updated_or_reported_and_the_bad_ones_block_nothing(api, tenant):
    ProductFactory(tenant=tenant, sku="A-1", title="old title", category="shoes", attributes={"color": "red"})
    body = [
        {"sku": "A-1", "title": "new title"},  # an update: category and attributes kept
        {"sku": "A-2", "title": "second", "attributes": {"size": 42}},
        {"sku": "bad sku!", "title": "x"},
        {"sku": "A-3"},  # no title
        {"sku": "A-4", "title": "fourth", "price": 3},  # a field products do not have
        "not an object",
        {"sku": "A-2", "title": "again"},  # the same sku as an earlier row
        {"sku": "A-5", "title": "fifth", "category": 7},
    ]
    response = api.post(URL, body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["created"], data["updated"], data["unchanged"]) == (1, 1, 0)
    errors = {error["index"]: error for error in data["errors"]}
    assert sorted(errors) == [2, 3, 4, 5, 6, 7]
    assert errors[2]["sku"] == "bad sku!" and errors[2]["error"]["code"] == "validation_error"
    assert "sku" in errors[2]["error"]["message"]
    assert errors[3] == {
        "index": 3,
        "sku": "A-3",
        "error": {"code": "validation_error", "message": errors[3]["error"]["message"]},
    }
    assert "title" in errors[3]["error"]["message"]
    assert "price" in errors[4]["error"]["message"] and errors[6]["error"]["code"] == "conflict"
    assert "category" in errors[7]["error"]["message"]

    updated = Product.objects.get(tenant=tenant, sku="A-1")
    assert (updated.title, updated.category, updated.attributes) == ("new title", "shoes", {"color": "red"})
    created = Product.objects.get(tenant=tenant, sku="A-2")
    assert (created.title, created.category, created.attributes) == ("second", "", {"size": 42})
    assert set(Product.objects.filter(tenant=tenant).values_list("sku", flat=True)) == {"A-1", "A-2"}


@pytest.mark.django_db
def test_the_same_body_twice_changes_nothing_the_second_time(api, tenant):
    body = [{"sku": f"S-{n}", "title": f"product {n}", "category": "c", "attributes": {"n": n}} for n in range(50)]
    first = api.post(URL, body, format="json").json()
    assert (first["created"], first["updated"], first["unchanged"], first["errors"]) == (50, 0, 0, [])
    stamps = dict(Product.objects.values_list("sku", "updated_at"))

    again = api.post(URL, body, format="json").json()
    assert (again["created"], again["updated"], again["unchanged"], again["errors"]) == (0, 0, 50, [])
    assert dict(Product.objects.values_list("sku", "updated_at")) == stamps


@pytest.mark.django_db
def test_ndjson_reports_a_line_that_is_not_a_product_by_its_index(api, tenant):
    lines = [
        json.dumps({"sku": "N-1", "title": "one"}),
        "{not json",
        "",
        json.dumps({"sku": "N-2", "title": "two\u0000"}),
        json.dumps({"sku": "N-3", "title": "three"}),
    ]
    data = post_ndjson(api, lines).json()
    assert (data["created"], data["updated"], data["unchanged"]) == (2, 0, 0)
    assert [(error["index"], error["error"]["code"]) for error in data["errors"]] == [
        (1, "validation_error"),
        (2, "validation_error"),
        (3, "validation_error"),
    ]
    assert "Line 2 is not JSON" in data["errors"][0]["error"]["message"]
    assert "NUL" in data["errors"][2]["error"]["message"]
    assert set(Product.objects.values_list("sku", flat=True)) == {"N-1", "N-3"}


@pytest.mark.django_db
def test_another_tenants_products_of_the_same_skus_are_never_touched(api, tenant, other_tenant):
    theirs = ProductFactory(tenant=other_tenant, sku="X-1", title="theirs", attributes={"color": "blue"})
    data = api.post(URL, [{"sku": "X-1", "title": "mine", "attributes": {"color": "red"}}], format="json").json()
    assert data["created"] == 1 and data["updated"] == 0
    theirs.refresh_from_db()
    assert (theirs.title, theirs.attributes) == ("theirs", {"color": "blue"})
    assert Product.objects.get(tenant=tenant, sku="X-1").title == "mine"


@pytest.mark.django_db
def test_a_products_new_attributes_reach_its_vectors(api, tenant):
    """What a search's attribute filter reads (catalog migration 0015's trigger)."""
    product = ProductFactory(tenant=tenant, sku="V-1", attributes={"color": "red"})
    EmbeddingFactory(media=MediaFactory(tenant=tenant, product=product))
    api.post(URL, [{"sku": "V-1", "title": "t", "attributes": {"color": "green"}}], format="json")
    assert list(Embedding.objects.values_list("attributes", flat=True)) == [{"color": "green"}]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ({"sku": "A", "title": "not a list"}, "application/json", 400, "validation_error"),
        ([{"sku": f"M-{n}", "title": "t"} for n in range(1001)], "application/json", 400, "validation_error"),
        ("sku=A&title=B", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"\xff\xfe", "application/x-ndjson", 400, "parse_error"),
    ],
)
def test_a_body_that_is_not_a_list_of_products_is_refused_whole(api, body, content_type, status, code):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    response = api.post(URL, data, content_type=content_type)
    assert response.status_code == status and error_code(response) == code, response.content
    assert not Product.objects.exists()


@pytest.mark.django_db
def test_a_read_key_cannot_import(read_api):
    response = read_api.post(URL, [{"sku": "R-1", "title": "t"}], format="json")
    assert response.status_code == 403 and not Product.objects.exists()


@pytest.mark.django_db
def test_text_is_taken_without_the_white_space_around_it(api, tenant):
    data = api.post(
        URL, [{"sku": " T-1 ", "title": "  a title "}, {"sku": "T-2", "title": "   "}], format="json"
    ).json()
    assert data["created"] == 1 and [error["index"] for error in data["errors"]] == [1]
    assert Product.objects.get(sku="T-1").title == "a title"
