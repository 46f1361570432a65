"""The three search endpoints of API.md."""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from catalog.models import Media, VideoFrame
from tests import media_files
from tests.conftest import error_code, wait_until_settled
from tests.factories import EmbeddingFactory, MediaFactory, ProductFactory, unit_vector

IMAGE_URL = "/api/v1/search/image"
TEXT_URL = "/api/v1/search/text"


def image_query(api, data: bytes, name: str = "query.jpg", **fields):
    return api.post(IMAGE_URL, {"file": SimpleUploadedFile(name, data), **fields}, format="multipart")


def upload(api, name: str, data: bytes, product: str | None = None) -> int:
    payload = {"file": SimpleUploadedFile(name, data)}
    if product:
        payload["product"] = product
    response = api.post("/api/v1/media/", payload, format="multipart")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def assert_well_formed(body: dict) -> None:
    assert set(body) == {"results", "took_ms", "model", "next_offset", "search_id"}
    assert body["model"] == "clip-tiny" and body["took_ms"] >= 0
    scores = [r["score"] for r in body["results"]]
    if all("matched" not in r or r["matched"] == ["vector"] for r in body["results"]):  # one ranking: by score
        assert scores == sorted(scores, reverse=True)
    for result in body["results"]:
        assert set(result) - {"matched"} == {"product", "score", "media_id", "kind", "frame"}
        assert result["score"] is None or 0 <= result["score"] <= 1
        assert result["product"] is None or set(result["product"]) == {"sku", "title", "category"}
    products = [r["product"]["sku"] for r in body["results"] if r["product"]]
    assert len(products) == len(set(products))  # one entry per product


@pytest.mark.slow
def test_end_to_end_through_the_worker(worker, api, tenant):
    ProductFactory(tenant=tenant, sku="SHOE-1", title="Red shoe", category="shoes")
    ProductFactory(tenant=tenant, sku="MUG-1", title="Green mug", category="mugs")
    shoe_photo = media_files.jpeg_bytes(400, 300, color=(200, 30, 40), seed=1)
    ids = [
        upload(api, "shoe.jpg", shoe_photo, "SHOE-1"),
        upload(api, "mug.jpg", media_files.jpeg_bytes(400, 300, color=(30, 160, 60), seed=2), "MUG-1"),
        upload(api, "loose.png", media_files.png_bytes(200, 150)),
        upload(api, "clip.mp4", media_files.video_bytes(seconds=3, width=192, height=144), "SHOE-1"),
    ]
    settled = wait_until_settled(ids)
    assert all(m.status == Media.Status.READY for m in settled.values())

    # The exact bytes of an ingested image come back first, above 0.99.
    body = image_query(api, shoe_photo, min_score=0).json()
    assert_well_formed(body)
    assert body["results"][0]["media_id"] == ids[0] and body["results"][0]["score"] > 0.99
    assert body["results"][0]["product"] == {"sku": "SHOE-1", "title": "Red shoe", "category": "shoes"}

    # A video frame's thumbnail finds its video, with that frame.
    frame = VideoFrame.objects.filter(media_id=ids[3]).order_by("index")[1]
    from django.core.files.storage import default_storage

    with default_storage.open(frame.thumbnail_key) as thumb:
        thumbnail = thumb.read()
    body = image_query(api, thumbnail, name="frame.jpg", min_score=0, category="shoes").json()
    top = body["results"][0]
    assert top["media_id"] == ids[3] and top["kind"] == "video"
    assert top["frame"]["timestamp_ms"] >= 0 and top["frame"]["thumbnail_url"].endswith(".jpg")
    assert {r["product"]["sku"] for r in body["results"]} == {"SHOE-1"}

    # Text search returns well-formed results.
    body = api.post(TEXT_URL, {"query": "red suede sneaker", "k": 5, "min_score": 0}, format="json").json()
    assert_well_formed(body)
    assert 1 <= len(body["results"]) <= 5

    # More like this: never the item itself nor its own frames.
    body = api.get(f"/api/v1/search/similar/{ids[3]}", {"min_score": 0}).json()
    assert_well_formed(body)
    assert ids[3] not in [r["media_id"] for r in body["results"]]
    body = api.get(f"/api/v1/search/similar/{ids[0]}", {"min_score": 0, "k": 1}).json()
    assert len(body["results"]) == 1 and body["results"][0]["media_id"] != ids[0]


@pytest.mark.django_db
@pytest.mark.parametrize("k", [0, 101, "many"])
def test_k_out_of_bounds_is_400(api, clip, k):
    response = api.post(TEXT_URL, {"query": "shoe", "k": k}, format="json")
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert "k" in response.json()["error"]["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("payload", [{"query": ""}, {"query": "x", "min_score": 1.5}, {"k": 5}, {"query": "x", "n": 1}])
def test_bad_text_search_is_400(api, clip, payload):
    response = api.post(TEXT_URL, payload, format="json")
    assert response.status_code == 400 and error_code(response) == "validation_error"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("notes.jpg", b"plain text, not a photo", 415, "unsupported_media_type"),
        ("clip.mp4", media_files.mp4_video(), 415, "unsupported_media_type"),
        ("cut.jpg", media_files.truncated_jpeg(), 422, "corrupt_file"),
        ("bomb.png", media_files.png_claiming_size(30000, 30000), 422, "image_too_large"),
        ("big.jpg", media_files.jpeg_bytes(64, 64) + b"\x00" * (11 * 1024 * 1024), 413, "file_too_large"),
    ],
)
def test_bad_query_files_get_the_api_errors(api, clip, name, data, status, code):
    response = image_query(api, data, name=name)
    assert response.status_code == status, response.content
    assert error_code(response) == code


@pytest.mark.django_db
def test_a_read_key_may_search(read_api, clip):
    response = read_api.post(TEXT_URL, {"query": "mug"}, format="json")
    assert response.status_code == 200 and response.json()["results"] == []


@pytest.mark.django_db
def test_search_needs_a_key(client):
    assert client.post(TEXT_URL, {"query": "x"}, content_type="application/json").status_code == 401


@pytest.mark.django_db
def test_similar_to_another_tenants_media_is_404(api, other_tenant, clip):
    theirs = MediaFactory(tenant=other_tenant)
    EmbeddingFactory(media=theirs, model_name="clip-tiny")
    response = api.get(f"/api/v1/search/similar/{theirs.pk}")
    assert response.status_code == 404 and error_code(response) == "not_found"


@pytest.mark.django_db
def test_similar_to_an_unprocessed_item_is_409(api, tenant, clip):
    pending = MediaFactory(tenant=tenant)
    response = api.get(f"/api/v1/search/similar/{pending.pk}")
    assert response.status_code == 409 and error_code(response) == "conflict"


@pytest.mark.django_db
def test_tenant_min_score_is_the_default(api, tenant, clip):
    from tests.factories import TenantSettingsFactory

    TenantSettingsFactory(tenant=tenant, min_similarity=0.999)
    vector = clip.embed_texts(["red shoe"])[0]
    somewhat_alike = vector + 0.5 * np.asarray(unit_vector(5))
    somewhat_alike /= np.linalg.norm(somewhat_alike)
    EmbeddingFactory(media=MediaFactory(tenant=tenant), model_name="clip-tiny", vector=somewhat_alike.tolist())
    EmbeddingFactory(media=MediaFactory(tenant=tenant), model_name="clip-tiny", vector=vector.tolist())
    body = api.post(TEXT_URL, {"query": "red shoe", "mode": "vector"}, format="json").json()
    assert len(body["results"]) == 1 and body["results"][0]["score"] > 0.999
    body = api.post(TEXT_URL, {"query": "red shoe", "min_score": 0}, format="json").json()
    assert len(body["results"]) == 2


def test_image_is_exif_oriented_before_embedding(clip):
    from search.service import image_vector

    rotated = media_files.jpeg_with_orientation(6)
    upright = io.BytesIO()
    Image.open(io.BytesIO(rotated)).transpose(Image.Transpose.ROTATE_270).save(upright, format="JPEG", quality=95)
    a = image_vector(io.BytesIO(rotated), len(rotated))
    b = image_vector(io.BytesIO(upright.getvalue()), len(upright.getvalue()))
    assert float(np.dot(a, b)) > 0.99
