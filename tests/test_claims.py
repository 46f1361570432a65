"""Two workers handed the same media process it once; a second run replaces
rather than adds."""

import threading

import pytest
from django.db import connection

from catalog.models import Embedding, Media
from catalog.transitions import claim, fail
from media_pipeline.processing import process_batch
from tests.factories import MediaFactory
from tests.media_files import jpeg_bytes


@pytest.fixture
def stored_image(transactional_db, tenant, clip):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    key = default_storage.save("clients/acme/race.jpg", ContentFile(jpeg_bytes()))
    return MediaFactory(tenant=tenant, product=None, storage_key=key)


def process_media(media_id: int, token: str):
    """The outcome of one item processed as its task would."""
    return process_batch([media_id], token)[0]


def test_two_workers_racing_for_one_media_process_it_once(stored_image):
    barrier = threading.Barrier(2)
    outcomes = []

    def work(token: str) -> None:
        barrier.wait()
        try:
            outcomes.append(process_media(stored_image.pk, token).status)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(f"task-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["ready", "skipped"]
    media = Media.objects.get(pk=stored_image.pk)
    assert media.status == Media.Status.READY and media.attempts == 1
    assert Embedding.objects.filter(media=media).count() == 1


def test_only_the_claiming_task_may_take_the_claim_again(stored_image):
    assert claim([stored_image.pk], "task-a")
    assert claim([stored_image.pk], "task-b") == []  # another delivery
    [again] = claim([stored_image.pk], "task-a")  # the same task redelivered
    assert again.attempts == 2


def test_a_ready_item_is_not_processed_again_by_a_stray_task(stored_image):
    assert process_media(stored_image.pk, "task-a").status == "ready"
    assert process_media(stored_image.pk, "task-b").status == "skipped"
    assert process_media(stored_image.pk, "task-a").status == "skipped"
    media = Media.objects.get(pk=stored_image.pk)
    assert media.attempts == 1 and Embedding.objects.filter(media=media).count() == 1


def test_a_deleted_item_is_skipped(transactional_db, clip):
    assert process_media(987654, "task-a").status == "skipped"


def test_an_item_that_keeps_killing_its_worker_is_failed(stored_image, settings):
    Media.objects.filter(pk=stored_image.pk).update(
        status=Media.Status.PROCESSING, claim_token="task-a", attempts=settings.MEDIA_MAX_ATTEMPTS
    )
    assert claim([stored_image.pk], "task-a") == []  # the same task, delivered once more
    media = Media.objects.get(pk=stored_image.pk)
    assert media.status == Media.Status.FAILED and "Gave up after" in media.error


def test_a_failed_run_leaves_nothing_searchable(stored_image):
    assert process_media(stored_image.pk, "task-a").status == "ready"
    Media.objects.filter(pk=stored_image.pk).update(status=Media.Status.PROCESSING, claim_token="task-b")
    assert fail(Media.objects.held_by("task-b").filter(pk=stored_image.pk), "The replaced file is corrupt.")
    assert not Embedding.objects.filter(media=stored_image).exists()
