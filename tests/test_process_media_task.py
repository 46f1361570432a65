"""The media pipeline through a real Celery worker on the real Redis broker."""

import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from catalog.models import Embedding, Media, VideoFrame
from config.queues import QUEUE_MEDIA, enqueue_processing
from tests import media_files
from tests.conftest import wait_for, wait_until_settled
from tests.factories import UNCHECKED, MediaFactory, stored_media

IMAGES = {
    "jpeg-exif-rotated": ("rotated.jpg", media_files.jpeg_with_orientation(6)),
    "cmyk-jpeg": ("cmyk.jpg", media_files.cmyk_jpeg()),
    "rgba-png": ("alpha.png", media_files.rgba_png()),
    "palette-transparent-png": ("palette.png", media_files.palette_png_with_transparency()),
    "grey16-png": ("grey16.png", media_files.grey16_png()),
    "greyscale-jpeg": ("grey.jpg", media_files.greyscale_jpeg()),
    "animated-gif": ("anim.gif", media_files.animated("GIF")),
    "animated-webp": ("anim.webp", media_files.animated("WEBP")),
}


def upload(api, name: str, data: bytes) -> int:
    response = api.post("/api/v1/media/", {"file": SimpleUploadedFile(name, data)}, format="multipart")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def vectors_of(media: Media) -> np.ndarray:
    return np.array([e.vector for e in Embedding.objects.filter(media=media).order_by("frame__index")])


def test_every_kind_of_image_ends_ready_with_a_unit_vector(worker, api, clip):
    ids = {kind: upload(api, name, data) for kind, (name, data) in IMAGES.items()}
    settled = wait_until_settled(list(ids.values()))

    for kind, media_id in ids.items():
        media = settled[media_id]
        assert media.status == Media.Status.READY, (kind, media.error)
        assert media.attempts == 1 and media.processed_at and media.error == ""
        [vector] = vectors_of(media)
        assert vector.shape == (512,) and np.linalg.norm(vector) == pytest.approx(1, abs=1e-4)
        assert Embedding.objects.get(media=media).model_name == clip.model_name == "clip-tiny"
    # EXIF orientation 6 turns the 120x60 picture upright: 60x120.
    assert (settled[ids["jpeg-exif-rotated"]].width, settled[ids["jpeg-exif-rotated"]].height) == (60, 120)


@pytest.mark.parametrize(
    ("name", "options"),
    [("clip.mp4", {"fmt": "mp4", "codec": "libx264"}), ("clip.webm", {"fmt": "webm", "codec": "libvpx-vp9"})],
)
def test_videos_end_ready_with_frames_thumbnails_and_vectors(worker, api, name, options):
    media_id = upload(api, name, media_files.video_bytes(seconds=4, **options))
    media = wait_until_settled([media_id])[media_id]

    assert media.status == Media.Status.READY, media.error
    assert 3900 <= media.duration_ms <= 4100
    frames = list(VideoFrame.objects.filter(media=media).order_by("index"))
    timestamps = [f.timestamp_ms for f in frames]
    assert 4 <= len(frames) <= 8  # one a second, scene changes included, duplicates dropped
    assert timestamps == sorted(set(timestamps)) and timestamps[0] == 0
    assert [f.index for f in frames] == list(range(len(frames)))
    for frame in frames:
        with default_storage.open(frame.thumbnail_key) as thumb:
            assert max(Image.open(thumb).size) <= 320
    vectors = vectors_of(media)
    assert vectors.shape == (len(frames), 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)


def test_rotation_metadata_is_honoured(worker, api):
    media_id = upload(api, "phone.mp4", media_files.video_bytes(seconds=1, width=160, height=96, rotation=90))
    media = wait_until_settled([media_id])[media_id]
    assert media.status == Media.Status.READY, media.error
    assert (media.width, media.height) == (96, 160)
    with default_storage.open(VideoFrame.objects.filter(media=media).first().thumbnail_key) as thumb:
        image = Image.open(thumb).convert("RGB")
    assert image.height > image.width
    # Turned a quarter counter-clockwise: the blue right half is now on top.
    top, bottom = np.asarray(image)[5].mean(axis=0), np.asarray(image)[-5].mean(axis=0)
    assert top[2] > top[0] and bottom[0] > bottom[2]


def test_bad_files_fail_with_a_reason_and_the_worker_goes_on(worker, tenant):
    # Files that reached storage without the upload checks (as from S3).
    cases = {
        "truncated": (Media.Kind.IMAGE, media_files.truncated_jpeg()),
        "not-an-image": (Media.Kind.IMAGE, b"hello, I am text"),
        "audio-only": (Media.Kind.VIDEO, media_files.mp4_audio_only()),
        "empty-video": (Media.Kind.VIDEO, b""),
        "garbage-video": (Media.Kind.VIDEO, b"\x00\x00\x00\x18ftypmp42" + b"\x13\x37" * 2000),
    }
    bad = {
        name: stored_media(f"clients/acme/bad/{name}", data, tenant=tenant, product=None, kind=kind, **UNCHECKED).pk
        for name, (kind, data) in cases.items()
    }
    missing = MediaFactory(tenant=tenant, product=None, storage_key="clients/acme/gone.jpg").pk
    good = stored_media("clients/acme/good.jpg", media_files.jpeg_bytes(), tenant=tenant, product=None).pk
    enqueue_processing([*bad.values(), missing, good])

    settled = wait_until_settled([*bad.values(), missing, good])
    reasons = {name: settled[pk].error for name, pk in bad.items()}
    assert all(settled[pk].status == Media.Status.FAILED for pk in bad.values()), reasons
    assert "corrupt" in reasons["truncated"]
    assert "not a supported type" in reasons["not-an-image"]
    assert "no video stream" in reasons["audio-only"]
    assert "empty" in reasons["empty-video"]
    assert reasons["garbage-video"]
    assert settled[missing].status == Media.Status.FAILED and "missing" in settled[missing].error
    assert settled[good].status == Media.Status.READY
    assert not Embedding.objects.filter(media_id__in=[*bad.values(), missing]).exists()


def test_a_task_delivered_twice_leaves_the_same_rows(worker, api, broker, settings):
    media_id = upload(api, "clip.mp4", media_files.video_bytes(seconds=3))
    wait_until_settled([media_id])
    frames_before = list(VideoFrame.objects.filter(media_id=media_id).values_list("index", "timestamp_ms"))
    embeddings_before = Embedding.objects.filter(media_id=media_id).count()

    enqueue_processing([media_id])  # a duplicate message for a ready item: nothing to do
    wait_for(
        lambda: broker.llen(QUEUE_MEDIA) == 0 and broker.hlen("unacked") == 0,
        what="the duplicate message to be consumed and acknowledged",
    )
    media = Media.objects.get(pk=media_id)
    assert media.status == Media.Status.READY and media.attempts == 1

    api.post(f"/api/v1/media/{media_id}/reprocess/")  # a real second run
    media = wait_until_settled([media_id], timeout=60)[media_id]
    wait_for(
        lambda: (
            Media.objects.get(pk=media_id).attempts == 2 and Media.objects.get(pk=media_id).status == Media.Status.READY
        ),
        what="second run",
    )
    assert list(VideoFrame.objects.filter(media_id=media_id).values_list("index", "timestamp_ms")) == frames_before
    assert Embedding.objects.filter(media_id=media_id).count() == embeddings_before


def test_re_encoded_images_are_linked_as_near_identical(worker, api):
    original = media_files.jpeg_bytes(320, 240, seed=1)
    recompressed = io.BytesIO()
    Image.open(io.BytesIO(original)).save(recompressed, format="JPEG", quality=70)
    first = upload(api, "a.jpg", original)
    wait_until_settled([first])
    second = upload(api, "b.jpg", recompressed.getvalue())
    third = upload(api, "c.jpg", media_files.jpeg_bytes(320, 240, color=(20, 200, 40), seed=7))
    settled = wait_until_settled([second, third])
    assert (settled[second].duplicate_of_id, settled[second].duplicate_kind) == (first, "near_identical")
    assert Media.objects.get(pk=first).duplicate_of_id is None
    assert api.get(f"/api/v1/media/{second}/").json()["duplicate_kind"] == "near_identical"


def test_a_video_without_a_stated_length_is_stopped_at_the_limit():
    from catalog.errors import FileRejected
    from media_pipeline.video import sample_video

    with pytest.raises(FileRejected) as refused:
        sample_video(
            io.BytesIO(media_files.video_bytes(seconds=3)),
            sample_seconds=1,
            max_frames=300,
            max_seconds=1,
            output_size=lambda w, h: (w, h),
        )
    assert refused.value.code == "video_too_long"
