import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Media
from config.queues import PROCESS_MEDIA_TASK, QUEUE_MEDIA
from tests.conftest import error_code
from tests.factories import EmbeddingFactory, MediaFactory, ProductFactory, VideoFrameFactory
from tests.media_files import jpeg_bytes, mp4_video, png_bytes

pytestmark = pytest.mark.django_db

URL = "/api/v1/media/"
MEDIA_FIELDS = {
    "id",
    "duplicate_of",
    "duplicate_kind",
    "product",
    "kind",
    "status",
    "error",
    "attempts",
    "content_type",
    "size",
    "width",
    "height",
    "duration_ms",
    "frame_count",
    "file_url",
    "original_filename",
    "created_at",
    "updated_at",
    "processed_at",
}


def upload(api, data: bytes, name: str = "photo.jpg", product: str | None = None, content_type="image/jpeg"):
    payload = {"file": SimpleUploadedFile(name, data, content_type=content_type)}
    if product:
        payload["product"] = product
    return api.post(URL, payload, format="multipart")


def test_upload_image_is_accepted_pending(api, tenant, media_storage):
    ProductFactory(tenant=tenant, sku="SNK-1")
    data = jpeg_bytes(320, 240)
    response = upload(api, data, name="../../etc/passwd Red Shoe!.png", product="SNK-1")

    assert response.status_code == 202
    body = response.json()
    assert set(body) == MEDIA_FIELDS
    assert body["status"] == "pending" and body["kind"] == "image" and body["product"] == "SNK-1"
    assert (body["width"], body["height"], body["size"]) == (320, 240, len(data))
    assert body["content_type"] == "image/jpeg"  # from the content, not the name
    media = Media.objects.get(pk=body["id"])
    # Stored under the tenant's key layout; the client's name is sanitized and its extension replaced.
    assert media.storage_key.startswith("clients/acme/products/SNK-1/media/image/")
    assert media.storage_key.endswith("-passwd-Red-Shoe.jpg")
    assert ".." not in media.storage_key
    assert (media_storage / media.storage_key).read_bytes() == data
    assert len(media.sha256) == 64
    assert body["file_url"].endswith(media.storage_key)


def test_upload_without_product_is_unassigned(api):
    response = upload(api, png_bytes(), name="x.png", content_type="image/png")
    assert response.status_code == 202
    assert response.json()["product"] is None
    assert Media.objects.get().storage_key.startswith("clients/acme/_unassigned/media/image/")


def test_upload_video_records_duration(api):
    response = upload(api, mp4_video(seconds=2.0), name="clip.mp4", content_type="video/mp4")
    assert response.status_code == 202
    body = response.json()
    assert body["kind"] == "video" and body["content_type"] == "video/mp4"
    assert (body["width"], body["height"]) == (160, 120)
    assert 1900 <= body["duration_ms"] <= 2100


def test_same_bytes_to_same_product_returns_existing(api, tenant):
    ProductFactory(tenant=tenant, sku="SNK-1")
    ProductFactory(tenant=tenant, sku="SNK-2")
    data = jpeg_bytes()
    first = upload(api, data, product="SNK-1")
    again = upload(api, data, name="renamed.jpg", product="SNK-1")
    elsewhere = upload(api, data, product="SNK-2")
    assert (first.status_code, again.status_code, elsewhere.status_code) == (202, 200, 202)
    assert again.json()["id"] == first.json()["id"]
    assert elsewhere.json()["id"] != first.json()["id"]
    assert Media.objects.count() == 2


def test_upload_is_enqueued_for_the_workers_after_commit(api, django_capture_on_commit_callbacks):
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete(QUEUE_MEDIA)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, jpeg_bytes())
    messages = broker.lrange(QUEUE_MEDIA, 0, -1)
    assert len(messages) == 1
    assert PROCESS_MEDIA_TASK.encode() in messages[0]
    assert f"[{response.json()['id']}]".encode() in messages[0] or str(response.json()["id"]).encode() in messages[0]
    broker.delete(QUEUE_MEDIA)


def test_upload_without_file_is_400(api):
    response = api.post(URL, {"product": "x"}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()["error"]["detail"]


def test_upload_to_unknown_product_is_404(api):
    response = upload(api, jpeg_bytes(), product="NOPE")
    assert response.status_code == 404
    assert error_code(response) == "not_found" and "NOPE" in response.json()["error"]["message"]


def test_list_filters(api, tenant):
    shoe = ProductFactory(tenant=tenant, sku="SNK-1")
    MediaFactory(tenant=tenant, product=shoe, status=Media.Status.READY)
    MediaFactory(tenant=tenant, product=shoe, status=Media.Status.FAILED, error="corrupt")
    MediaFactory(tenant=tenant, product=None, kind=Media.Kind.VIDEO)

    assert api.get(URL).json()["count"] == 3
    assert api.get(URL, {"status": "failed"}).json()["results"][0]["error"] == "corrupt"
    assert api.get(URL, {"product": "SNK-1"}).json()["count"] == 2
    assert api.get(URL, {"kind": "video"}).json()["count"] == 1
    response = api.get(URL, {"status": "bogus"})
    assert response.status_code == 400
    assert error_code(response) == "validation_error"


def test_retrieve_counts_frames(api, tenant):
    video = MediaFactory(tenant=tenant, kind=Media.Kind.VIDEO)
    VideoFrameFactory.create_batch(4, media=video)
    body = api.get(f"{URL}{video.pk}/").json()
    assert body["frame_count"] == 4 and body["id"] == video.pk


def test_delete_removes_row_frames_embeddings_and_files(api, tenant, media_storage, django_capture_on_commit_callbacks):
    response = upload(api, mp4_video(), name="clip.mp4", content_type="video/mp4")
    media = Media.objects.get(pk=response.json()["id"])
    frame = VideoFrameFactory(media=media)
    (media_storage / frame.thumbnail_key).parent.mkdir(parents=True, exist_ok=True)
    (media_storage / frame.thumbnail_key).write_bytes(b"thumb")
    EmbeddingFactory(media=media, frame=frame)

    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"{URL}{media.pk}/").status_code == 204

    assert not Media.objects.exists()
    assert not (media_storage / media.storage_key).exists()
    assert not (media_storage / frame.thumbnail_key).exists()


def test_reprocess_puts_failed_media_back_to_pending(api, tenant):
    media = MediaFactory(tenant=tenant, status=Media.Status.FAILED, error="boom", attempts=2)
    response = api.post(f"{URL}{media.pk}/reprocess/")
    assert response.status_code == 202
    assert response.json()["status"] == "pending" and response.json()["error"] == ""
    media.refresh_from_db()
    assert media.status == Media.Status.PENDING


def test_reprocess_refuses_media_being_processed(api, tenant):
    media = MediaFactory(tenant=tenant, status=Media.Status.PROCESSING)
    response = api.post(f"{URL}{media.pk}/reprocess/")
    assert response.status_code == 409
    assert error_code(response) == "conflict"


def test_reprocess_needs_write_scope(read_api, tenant):
    media = MediaFactory(tenant=tenant, status=Media.Status.FAILED)
    assert read_api.post(f"{URL}{media.pk}/reprocess/").status_code == 403


def test_non_numeric_id_is_json_404(api):
    response = api.get(f"{URL}abc/")
    assert response.status_code == 404
    assert error_code(response) == "not_found"
