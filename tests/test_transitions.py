"""Every path to `failed` leaves nothing searchable: an item that was ready,
with vectors (and a video's frames and thumbnails), goes back to processing
and then fails on each of the ways an item can fail. Its vectors, frames and
thumbnails are gone, and no search returns it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from catalog import transitions
from catalog.models import Embedding, Media, VideoFrame
from media_pipeline.processing import process_batch
from media_pipeline.sweeper import sweep
from media_pipeline.tasks import ProcessMediaTask
from search import service
from tests.factories import MediaFactory
from tests.media_files import jpeg_bytes, video_bytes

MEDIA = {
    Media.Kind.IMAGE: ("clients/acme/_unassigned/media/image/shoe.jpg", "image/jpeg", jpeg_bytes),
    Media.Kind.VIDEO: ("clients/acme/_unassigned/media/video/clip.mp4", "video/mp4", lambda: video_bytes(seconds=2)),
}


def ready_item(tenant, kind: str) -> Media:
    """An item processed by the pipeline: ready, with vectors, found by search."""
    key, content_type, data = MEDIA[kind]
    payload = data()
    stored = default_storage.save(key, ContentFile(payload))
    media = MediaFactory(
        tenant=tenant, product=None, kind=kind, storage_key=stored, content_type=content_type, size=len(payload)
    )
    assert process_batch([media.pk], "first-run")[0].status == "ready"
    assert Embedding.objects.filter(media=media).exists()
    assert media.pk in found_by(tenant, service.media_vector(media))
    return media


def found_by(tenant, vector) -> set[int]:
    return {entry.media.pk for entry in service.search(tenant, vector, service.Options(k=50, min_score=0.0)).results}


SECOND_RUN = "second-run"


def reprocessing(media: Media) -> Media:
    """Back to pending, then claimed by a second run: its earlier vectors still serve."""
    transitions.back_to_pending(Media.objects.filter(pk=media.pk), send=False)
    [claimed] = transitions.claim([media.pk], SECOND_RUN)
    return claimed


def age(media: Media, **fields) -> None:
    Media.objects.filter(pk=media.pk).update(processing_started_at=timezone.now() - timedelta(hours=2), **fields)


# --- the paths to `failed` ---------------------------------------------------------


def worker_rejects_the_file(media: Media, staff) -> None:
    transitions.back_to_pending(Media.objects.filter(pk=media.pk), send=False)
    default_storage.delete(media.storage_key)
    default_storage.save(media.storage_key, ContentFile(b"\xff\xd8\xff\xe0" + b"\x00junk" * 200))
    assert process_batch([media.pk], SECOND_RUN)[0].status == "failed"


def task_ends_on_a_bug(media: Media, staff) -> None:
    reprocessing(media)
    ProcessMediaTask().on_failure(RuntimeError("boom"), SECOND_RUN, ([media.pk],), {}, None)


def redelivered_after_its_last_attempt(media: Media, staff) -> None:
    reprocessing(media)
    Media.objects.filter(pk=media.pk).update(attempts=settings.MEDIA_MAX_ATTEMPTS)
    assert transitions.claim([media.pk], SECOND_RUN) == []


def sweeper_after_the_last_attempt(media: Media, staff) -> None:
    reprocessing(media)
    age(media, attempts=settings.MEDIA_MAX_ATTEMPTS)
    assert sweep().failed == 1


def cleanup_finds_the_file_missing(media: Media, staff) -> None:
    default_storage.delete(media.storage_key)
    call_command("cleanup_orphans", stdout=StringIO())


def operator_marks_it_failed(media: Media, staff) -> None:
    reprocessing(media)
    age(media)
    response = staff.post(
        "/admin/ops_console/stuckmedia/", {"action": "mark_failed", "_selected_action": [media.pk]}, follow=True
    )
    assert "Marked 1 stuck media as failed." in response.content.decode()


PATHS: list[Callable] = [
    worker_rejects_the_file,
    task_ends_on_a_bug,
    redelivered_after_its_last_attempt,
    sweeper_after_the_last_attempt,
    cleanup_finds_the_file_missing,
    operator_marks_it_failed,
]


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("kind", [Media.Kind.IMAGE, Media.Kind.VIDEO])
@pytest.mark.parametrize("path", PATHS, ids=[path.__name__ for path in PATHS])
def test_a_failed_item_keeps_no_vectors_or_frames_and_is_never_found(
    tenant, clip, staff, kind, path, django_capture_on_commit_callbacks
):
    media = ready_item(tenant, kind)
    query = service.media_vector(media)
    thumbnails = list(VideoFrame.objects.filter(media=media).values_list("thumbnail_key", flat=True))
    assert (len(thumbnails) > 0) == (kind == Media.Kind.VIDEO)

    with django_capture_on_commit_callbacks(execute=True):
        path(media, staff)

    media.refresh_from_db()
    assert media.status == Media.Status.FAILED and media.error
    assert not Embedding.objects.filter(media=media).exists()
    assert not VideoFrame.objects.filter(media=media).exists()
    assert not any(default_storage.exists(key) for key in thumbnails)
    assert media.pk not in found_by(tenant, query)
    assert staff.get(f"/admin/catalog/media/{media.pk}/change/").status_code == 200


@pytest.mark.django_db
def test_an_s3_object_deleted_before_its_new_version_is_processed_fails_unfindable(
    tenant, clip, s3_bucket, queue_url, broker
):
    """The S3 delete race: a newer version of an object arrives, then the
    object is deleted before a worker reads it (its removal event still on
    the way). The item fails as missing, and its old vectors go with it."""
    from catalog.aws import s3_client
    from media_pipeline.bridge import Bridge

    key = "clients/acme/products/SNK-1/media/image/shoe.jpg"
    bridge = Bridge(queue_url, wait_seconds=1, batch_size=10)
    s3_client().put_object(Bucket=s3_bucket, Key=key, Body=jpeg_bytes(seed=1))
    bridge.run_once()
    media = Media.objects.get(storage_key=key)
    assert process_batch([media.pk], "first-run")[0].status == "ready"
    query = service.media_vector(media)
    assert media.pk in found_by(tenant, query)

    s3_client().put_object(Bucket=s3_bucket, Key=key, Body=jpeg_bytes(seed=2))  # a newer version...
    bridge.run_once()
    assert Media.objects.get(pk=media.pk).status == Media.Status.PENDING
    s3_client().delete_object(Bucket=s3_bucket, Key=key)  # ... deleted before a worker reads it
    assert process_batch([media.pk], SECOND_RUN)[0].status == "failed"

    media.refresh_from_db()
    assert media.status == Media.Status.FAILED and media.error == "The stored file is missing."
    assert not Embedding.objects.filter(media=media).exists()
    assert media.pk not in found_by(tenant, query)
