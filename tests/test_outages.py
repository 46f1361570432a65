"""A backing service down: the API answers 503 with Retry-After (never a
500), keeps serving where it can, and an accepted upload is not lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from catalog.models import Media
from config.embedded_services import free_port
from media_pipeline.sweeper import sweep
from tests.conftest import broker_unreachable, database_unreachable, error_code, queued_batches
from tests.media_files import jpeg_bytes
from tests.web_server import own_connection


@pytest.fixture
def database_down(transactional_db):
    """The web process's database connection pointed at a port nobody answers:
    a real failure to connect, as while PostgreSQL restarts."""
    with database_unreachable():
        yield


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/products/"), ("post", "/api/v1/products/"), ("get", "/api/v1/media/1/")],
)
def test_database_down_is_503_with_retry_after(api, database_down, method, path):
    response = getattr(api, method)(path, {"sku": "A-1", "title": "x"} if method == "post" else None, format="json")
    assert response.status_code == 503
    assert error_code(response) == "service_unavailable"
    assert response["Retry-After"] == "5"


def test_the_api_works_again_once_the_database_is_back(api, transactional_db):
    with database_unreachable():
        assert api.get("/api/v1/products/").status_code == 503
    assert api.get("/api/v1/products/").status_code == 200


@pytest.mark.django_db
def test_rate_limiting_cache_down_serves_unthrottled(api, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    settings.API_RATE_LIMIT = "1/min"
    assert [api.get("/api/v1/products/").status_code for _ in range(3)] == [200, 200, 200]


def test_an_upload_accepted_while_the_broker_is_down_is_sent_by_the_sweeper(api, transactional_db, broker, settings):
    upload = SimpleUploadedFile("a.jpg", jpeg_bytes(), content_type="image/jpeg")
    with broker_unreachable():
        response = api.post("/api/v1/media/", {"file": upload}, format="multipart")
    assert response.status_code == 202  # stored: the broker's outage is not the client's problem
    media = Media.objects.get()
    assert media.status == Media.Status.PENDING and queued_batches(broker) == []

    sweep(now=timezone.now() + timedelta(minutes=settings.PENDING_REQUEUE_MINUTES + 1))
    assert queued_batches(broker) == [[media.pk]]


@pytest.mark.django_db
def test_a_task_out_of_retries_in_an_outage_puts_its_items_back_to_pending(tenant):
    import django.db

    from media_pipeline.tasks import process_media
    from tests.factories import MediaFactory

    def held(token: str) -> Media:
        return MediaFactory(tenant=tenant, status=Media.Status.PROCESSING, claim_token=token, attempts=1)

    mine, theirs = held("task-1"), held("task-2")
    outage = django.db.OperationalError("server closed the connection unexpectedly")
    process_media.on_failure(outage, "task-1", [[mine.pk, theirs.pk]], {}, None)
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, mine.claim_token, mine.attempts, mine.error) == (Media.Status.PENDING, "", 1, "")
    assert theirs.status == Media.Status.PROCESSING  # another task's claim is left alone

    # A bug is not an outage: the item fails, with the reason.
    process_media.on_failure(ValueError("unexpected shape"), "task-2", [[theirs.pk]], {}, None)
    theirs.refresh_from_db()
    assert theirs.status == Media.Status.FAILED and theirs.error == "Processing error: ValueError: unexpected shape"


class StorageThatOutlivesTheDatabase(FileSystemStorage):
    """Stores the file, and meanwhile PostgreSQL drops the web process's
    connection (as a restart does): the upload's commit is what fails."""

    def _save(self, name, content):
        saved = super()._save(name, content)
        with own_connection() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
        return saved


def test_an_upload_whose_commit_fails_leaves_no_file(api, transactional_db, settings, media_storage):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": f"{__name__}.StorageThatOutlivesTheDatabase",
            "OPTIONS": {"location": media_storage},
        },
    }
    upload = SimpleUploadedFile("a.jpg", jpeg_bytes(), content_type="image/jpeg")
    try:
        response = api.post("/api/v1/media/", {"file": upload}, format="multipart")
    finally:
        connection.close()
    assert response.status_code == 503 and error_code(response) == "service_unavailable"
    assert not Media.objects.exists()
    # No object left for the S3 bridge to take for a client's upload.
    assert not [path for path in media_storage.rglob("*") if path.is_file()]
