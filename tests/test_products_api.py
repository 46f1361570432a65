import pytest

from catalog.models import Embedding, Media, Product, VideoFrame
from tests.conftest import error_code
from tests.factories import EmbeddingFactory, MediaFactory, ProductFactory, VideoFrameFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/products/"


def test_create_product(api, tenant):
    response = api.post(
        URL,
        {"sku": "SNK-1", "title": "Red sneaker", "category": "shoes", "attributes": {"color": "red"}},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["sku"] == "SNK-1" and body["media_count"] == 0
    assert body["attributes"] == {"color": "red"}
    assert set(body) == {"sku", "title", "category", "attributes", "media_count", "created_at", "updated_at"}
    assert Product.objects.get(tenant=tenant, sku="SNK-1").title == "Red sneaker"


def test_duplicate_sku_is_409(api, tenant):
    ProductFactory(tenant=tenant, sku="SNK-1")
    response = api.post(URL, {"sku": "SNK-1", "title": "again"}, format="json")
    assert response.status_code == 409
    assert error_code(response) == "conflict"


def test_same_sku_in_another_tenant_is_fine(api, other_tenant):
    ProductFactory(tenant=other_tenant, sku="SNK-1")
    assert api.post(URL, {"sku": "SNK-1", "title": "mine"}, format="json").status_code == 201


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": "no sku"}, "sku"),
        ({"sku": "has space", "title": "x"}, "sku"),
        ({"sku": "../etc", "title": "x"}, "sku"),
        ({"sku": "A1"}, "title"),
        ({"sku": "A1", "title": "x", "attributes": [1, 2]}, "attributes"),
        ({"sku": "A1", "title": "x", "colour": "red"}, "colour"),
    ],
)
def test_invalid_product_is_400_with_the_field(api, payload, field):
    response = api.post(URL, payload, format="json")
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert field in response.json()["error"]["detail"]


def test_list_is_paginated_and_filtered(api, tenant):
    for i in range(55):
        ProductFactory(tenant=tenant, sku=f"P-{i:03d}", category="mugs" if i % 5 == 0 else "shoes")
    ProductFactory(tenant=tenant, sku="LAMP-1", title="Brass desk lamp", category="lighting")

    first = api.get(URL).json()
    assert first["count"] == 56 and len(first["results"]) == 50 and first["next"] and first["previous"] is None
    second = api.get(URL, {"page": 2}).json()
    assert len(second["results"]) == 6
    assert api.get(URL, {"category": "mugs"}).json()["count"] == 11
    assert [p["sku"] for p in api.get(URL, {"q": "desk"}).json()["results"]] == ["LAMP-1"]
    assert api.get(URL, {"q": "lamp-1"}).json()["count"] == 1


def test_list_counts_media(api, tenant):
    product = ProductFactory(tenant=tenant)
    MediaFactory.create_batch(3, tenant=tenant, product=product)
    [row] = api.get(URL).json()["results"]
    assert row["media_count"] == 3


def test_retrieve_and_patch(api, tenant):
    ProductFactory(tenant=tenant, sku="SNK-1", title="old")
    assert api.get(f"{URL}SNK-1/").json()["title"] == "old"
    response = api.patch(f"{URL}SNK-1/", {"title": "new", "attributes": {"size": 42}}, format="json")
    assert response.status_code == 200
    assert response.json()["title"] == "new"
    assert Product.objects.get(sku="SNK-1").attributes == {"size": 42}


def test_sku_cannot_be_changed(api, tenant):
    ProductFactory(tenant=tenant, sku="SNK-1")
    response = api.patch(f"{URL}SNK-1/", {"sku": "SNK-2"}, format="json")
    assert response.status_code == 400
    assert "sku" in response.json()["error"]["detail"]


def test_put_is_not_allowed(api, tenant):
    ProductFactory(tenant=tenant, sku="SNK-1")
    response = api.put(f"{URL}SNK-1/", {"sku": "SNK-1", "title": "x"}, format="json")
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"


def test_unknown_product_is_404(api):
    response = api.get(f"{URL}NOPE/")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_delete_cascades_to_media_frames_embeddings_and_files(
    api, tenant, media_storage, django_capture_on_commit_callbacks
):
    product = ProductFactory(tenant=tenant, sku="SNK-1")
    image = MediaFactory(tenant=tenant, product=product)
    video = MediaFactory(tenant=tenant, product=product, kind=Media.Kind.VIDEO)
    frame = VideoFrameFactory(media=video)
    EmbeddingFactory(media=image)
    EmbeddingFactory(media=video, frame=frame)
    keep = MediaFactory(tenant=tenant)  # another product's media stays
    files = [image.storage_key, video.storage_key, frame.thumbnail_key, keep.storage_key]
    for key in files:
        (media_storage / key).parent.mkdir(parents=True, exist_ok=True)
        (media_storage / key).write_bytes(b"data")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"{URL}SNK-1/")

    assert response.status_code == 204
    assert not Product.objects.filter(pk=product.pk).exists()
    assert list(Media.objects.values_list("pk", flat=True)) == [keep.pk]
    assert not VideoFrame.objects.exists()
    assert not Embedding.objects.exists()
    assert [(media_storage / key).exists() for key in files] == [False, False, False, True]
