"""Several media in one processing task: read in parallel, embedded as one
batch, each item ending as it would alone."""

import io

import numpy as np
import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image

from catalog.models import Embedding, Media, VideoFrame
from catalog.storage_keys import frame_thumbnail_key
from catalog.transitions import claim
from config.queues import enqueue_processing, send_processing
from media_pipeline.images import load_image
from media_pipeline.processing import process_batch
from media_pipeline.tasks import ProcessMediaTask
from tests import media_files
from tests.conftest import queued_batches, wait_until_settled
from tests.factories import MediaFactory, stored_media


def stored(tenant, name: str, data: bytes, **fields) -> Media:
    return stored_media(f"clients/{tenant.slug}/batch/{name}", data, tenant=tenant, product=None, **fields)


def photos(tenant, count: int) -> list[Media]:
    # Sizes from small to one large enough to be decoded at a reduced scale (1/8).
    sides = [(320, 240), (640, 480), (2400, 1800), (500, 900)]
    return [
        stored(tenant, f"p{i}.jpg", media_files.jpeg_bytes(*sides[i % 4], color=(40 * i % 255, 90, 200), seed=i))
        for i in range(count)
    ]


def vector(media: Media) -> np.ndarray:
    return np.asarray(Embedding.objects.get(media=media, frame__isnull=True).vector)


@pytest.mark.django_db
def test_a_batch_gives_each_image_its_own_vector_and_fails_only_the_bad_items(tenant, clip):
    good = photos(tenant, 4)
    corrupt = stored(tenant, "broken.jpg", media_files.truncated_jpeg())
    missing = MediaFactory(tenant=tenant, product=None, storage_key="clients/acme/batch/gone.jpg")
    video = stored(
        tenant, "clip.mp4", media_files.mp4_video(seconds=2), kind=Media.Kind.VIDEO, content_type="video/mp4"
    )
    items = [good[0], corrupt, good[1], missing, video, good[2], good[3]]

    outcomes = process_batch([m.pk for m in items], "task-1")

    assert [(o.media_id, o.status) for o in outcomes] == [
        (m.pk, "failed" if m in (corrupt, missing) else "ready") for m in items
    ]
    for media in good:
        media.refresh_from_db()
        assert (media.status, media.attempts, media.error) == (Media.Status.READY, 1, "")
        with default_storage.open(media.storage_key) as file:
            alone = clip.embed_images([load_image(file)[0]])[0]
        assert np.allclose(vector(media), alone, atol=1e-5)
    assert (good[2].width, good[2].height) == (2400, 1800)  # the original's size, not the reduced decode's
    corrupt.refresh_from_db()
    missing.refresh_from_db()
    assert corrupt.status == Media.Status.FAILED and corrupt.error.startswith("The image is truncated or corrupt")
    assert missing.status == Media.Status.FAILED and missing.error == "The stored file is missing."
    assert not Embedding.objects.filter(media__in=[corrupt, missing]).exists()
    video.refresh_from_db()
    assert video.status == Media.Status.READY
    assert VideoFrame.objects.filter(media=video).count() == Embedding.objects.filter(media=video).count() > 0


@pytest.mark.django_db
def test_a_redelivered_batch_goes_one_item_at_a_time_and_fails_only_the_item_that_kept_killing_it(tenant, clip):
    items = photos(tenant, 3)
    for media in items:  # the first delivery claimed them all, then its worker died
        assert claim([media.pk], "task-1")
    # The second item killed the worker on every delivery so far.
    Media.objects.filter(pk=items[1].pk).update(attempts=settings.MEDIA_MAX_ATTEMPTS)

    process_batch([m.pk for m in items], "task-1")

    rows = {m.pk: m for m in Media.objects.filter(pk__in=[m.pk for m in items])}
    assert [rows[m.pk].status for m in items] == ["ready", "failed", "ready"]
    assert rows[items[1].pk].error.startswith(f"Gave up after {settings.MEDIA_MAX_ATTEMPTS} attempts")
    assert [rows[m.pk].attempts for m in (items[0], items[2])] == [2, 2]
    assert Embedding.objects.filter(media__in=[items[0], items[2]]).count() == 2


@pytest.mark.django_db
def test_a_task_ended_by_a_bug_fails_the_items_it_still_holds_and_no_others(tenant, clip):
    held, done, elsewhere = photos(tenant, 3)
    for media in (held, done):
        claim([media.pk], "task-1")
    process_batch([done.pk], "task-1")
    claim([elsewhere.pk], "task-2")

    ProcessMediaTask().on_failure(RuntimeError("boom"), "task-1", ([held.pk, done.pk, elsewhere.pk],), {}, None)

    statuses = dict(Media.objects.filter(tenant=tenant).values_list("pk", "status"))
    assert statuses == {held.pk: "failed", done.pk: "ready", elsewhere.pk: "processing"}
    assert Media.objects.get(pk=held.pk).error == "Processing error: RuntimeError: boom"


def test_media_are_enqueued_batch_size_ids_a_task(broker, settings):
    settings.MEDIA_TASK_BATCH_SIZE = 16
    send_processing(range(1, 41))
    assert queued_batches(broker) == [list(range(1, 17)), list(range(17, 33)), list(range(33, 41))]


def test_a_task_per_item_with_batch_size_one(broker, settings):
    settings.MEDIA_TASK_BATCH_SIZE = 1
    send_processing([5, 6])
    assert queued_batches(broker) == [[5], [6]]


def test_a_batch_through_the_real_worker(worker, tenant, settings, django_capture_on_commit_callbacks):
    settings.MEDIA_TASK_BATCH_SIZE = 16
    items = photos(tenant, 6)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_processing([m.pk for m in items])

    settled = wait_until_settled([m.pk for m in items])

    assert {(m.status, m.attempts) for m in settled.values()} == {(Media.Status.READY, 1)}
    assert Embedding.objects.filter(media__in=items).count() == 6


@pytest.mark.parametrize(("min_side", "decoded"), [(224, (300, 225)), (448, (600, 450)), (0, (2400, 1800))])
def test_large_jpegs_are_decoded_at_reduced_size_unless_turned_off(settings, min_side, decoded):
    settings.IMAGE_DRAFT_MIN_SIDE = min_side
    image, size = load_image(io.BytesIO(media_files.jpeg_bytes(2400, 1800)))
    assert size == (2400, 1800)
    assert image.size == decoded


@pytest.mark.django_db
def test_duplicates_within_one_batch_and_across_batches_point_at_the_oldest(tenant, clip):
    photo = media_files.jpeg_bytes(320, 240, seed=1)
    recompressed = io.BytesIO()
    Image.open(io.BytesIO(photo)).save(recompressed, format="JPEG", quality=70)
    first, second = stored(tenant, "a.jpg", photo), stored(tenant, "b.jpg", recompressed.getvalue())
    other = stored(tenant, "c.jpg", media_files.jpeg_bytes(320, 240, color=(20, 200, 40), seed=7))
    process_batch([second.pk, other.pk, first.pk], "task-1")
    third = stored(tenant, "d.jpg", photo)
    process_batch([third.pk], "task-2")

    rows = Media.objects.in_bulk([first.pk, second.pk, other.pk, third.pk])
    assert rows[first.pk].duplicate_of_id is None and rows[other.pk].duplicate_of_id is None
    assert rows[second.pk].duplicate_of_id == first.pk and rows[second.pk].duplicate_kind == "near_identical"
    assert (rows[third.pk].duplicate_of_id, rows[third.pk].duplicate_kind) == (first.pk, "exact")
    assert rows[third.pk].duplicate_similarity == 1


@pytest.mark.django_db
def test_a_task_of_several_model_batches_stores_each_and_links_copies_across_them(tenant, clip, settings):
    # Two images a forward pass: the task's images go in three batches, each
    # embedded while the next is read; the middle one holds only bad files.
    settings.CLIP_BATCH_SIZE = 2
    photo = media_files.jpeg_bytes(640, 480, seed=3)
    recompressed = io.BytesIO()
    Image.open(io.BytesIO(photo)).save(recompressed, format="JPEG", quality=70)
    first, other = stored(tenant, "a.jpg", photo), photos(tenant, 1)[0]
    corrupt = stored(tenant, "broken.jpg", media_files.truncated_jpeg())
    missing = MediaFactory(tenant=tenant, product=None, storage_key="clients/acme/batch/gone.jpg")
    copy, last = stored(tenant, "b.jpg", recompressed.getvalue()), photos(tenant, 3)[2]
    items = [first, other, corrupt, missing, copy, last]

    outcomes = process_batch([m.pk for m in items], "task-1")

    assert [o.status for o in outcomes] == ["ready", "ready", "failed", "failed", "ready", "ready"]
    rows = Media.objects.in_bulk([m.pk for m in items])
    assert rows[corrupt.pk].error and rows[missing.pk].error == "The stored file is missing."
    assert (rows[copy.pk].duplicate_of_id, rows[copy.pk].duplicate_kind) == (first.pk, "near_identical")
    for media in (first, other, copy, last):
        with default_storage.open(media.storage_key) as file:
            alone = clip.embed_images([load_image(file)[0]])[0]
        assert np.allclose(vector(media), alone, atol=1e-5)
    assert Embedding.objects.filter(media__in=items).count() == 4


@pytest.mark.django_db
def test_a_video_that_fails_midway_leaves_no_frame_thumbnails_behind(tenant, clip, settings):
    # Its first frames are kept (and their thumbnails stored) before decoding
    # passes the length limit.
    settings.MAX_VIDEO_SECONDS = 1
    video = stored(
        tenant, "long.mp4", media_files.mp4_video(seconds=3), kind=Media.Kind.VIDEO, content_type="video/mp4"
    )

    [outcome] = process_batch([video.pk], "task-1")

    assert outcome.status == "failed" and "limit" in outcome.detail
    assert not any(default_storage.exists(frame_thumbnail_key(video.storage_key, index)) for index in range(4))
    assert not VideoFrame.objects.filter(media=video).exists()
