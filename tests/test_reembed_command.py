"""`manage.py reembed`: moving the catalog to another CLIP model, resumably,
with the old vectors serving searches until CLIP_MODEL is switched."""

from io import StringIO

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from catalog.models import ApiKey, Embedding, Media, VideoFrame
from media_pipeline.embedder import ClipEmbedder
from media_pipeline.images import load_image
from media_pipeline.video import frames_at
from tests import media_files
from tests.conftest import client_for, wait_until_settled
from tests.factories import ApiKeyFactory


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def upload(api, name: str, data: bytes) -> int:
    response = api.post("/api/v1/media/", {"file": SimpleUploadedFile(name, data)}, format="multipart")
    assert response.status_code == 202, response.content
    return response.json()["id"]


@pytest.fixture
def catalog(worker, api, other_api):
    """Two images and a video of acme, an image of globex, processed with the tiny CLIP."""
    ids = {
        "red": upload(api, "red.jpg", media_files.jpeg_bytes(color=(200, 30, 40))),
        "blue": upload(api, "blue.jpg", media_files.jpeg_bytes(color=(30, 40, 200), seed=1)),
        "video": upload(api, "clip.mp4", media_files.video_bytes(seconds=3)),
        "theirs": upload(other_api, "theirs.jpg", media_files.jpeg_bytes(seed=2)),
    }
    settled = wait_until_settled(list(ids.values()))
    assert {m.status for m in settled.values()} == {Media.Status.READY}
    return ids


def vectors(media_id: int, model: str) -> np.ndarray:
    rows = Embedding.objects.filter(media_id=media_id, model_name=model).order_by("frame__index")
    return np.array([row.vector for row in rows])


def test_reembed_resumes_and_switches_models(catalog, other_tiny_model, settings, clip):
    other = str(other_tiny_model)
    assert "4 ready media have no vectors of clip-tiny-other" in run("reembed", "--model", other, "--dry-run")
    assert not Embedding.objects.filter(model_name="clip-tiny-other").exists()

    out = run("reembed", "--model", other, "--tenant", "acme")
    assert "Embedded 3 media with clip-tiny-other" in out and "100%|" in out
    out = run("reembed", "--model", other)  # carries on with what is missing: globex's image
    assert "Embedded 1 media" in out and "Every ready media has vectors of clip-tiny-other" in out
    assert "already has vectors" in run("reembed", "--model", other)

    # The new vectors are the other model's own vectors of the same pictures.
    embedder = ClipEmbedder(other, "fp32")
    with default_storage.open(Media.objects.get(pk=catalog["red"]).storage_key) as file:
        expected = embedder.embed_images([load_image(file)[0]])[0]
    assert float(vectors(catalog["red"], "clip-tiny-other")[0] @ expected) > 0.999
    assert float(vectors(catalog["red"], "clip-tiny")[0] @ expected) < 0.99  # another model
    frames = VideoFrame.objects.filter(media_id=catalog["video"]).count()
    assert len(vectors(catalog["video"], "clip-tiny-other")) == frames >= 3

    # Until CLIP_MODEL changes, the old vectors serve and must stay.
    with pytest.raises(CommandError, match="searches still read"):
        run("reembed", "--model", other, "--drop-others")
    settings.CLIP_MODEL = other
    assert "Would delete" in run("reembed", "--model", other, "--drop-others", "--dry-run")
    assert Embedding.objects.filter(model_name="clip-tiny").exists()
    run("reembed", "--model", other, "--drop-others")
    assert set(Embedding.objects.values_list("model_name", flat=True)) == {"clip-tiny-other"}

    api = client_for(ApiKeyFactory(tenant=Media.objects.get(pk=catalog["red"]).tenant, scope=ApiKey.Scope.READ))
    with default_storage.open(Media.objects.get(pk=catalog["red"]).storage_key) as file:
        response = api.post("/api/v1/search/image", {"file": SimpleUploadedFile("q.jpg", file.read())})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "clip-tiny-other" and body["results"][0]["media_id"] == catalog["red"]


def test_video_frames_decode_again_to_the_same_pictures(catalog, clip):
    media = Media.objects.get(pk=catalog["video"])
    frames = list(VideoFrame.objects.filter(media=media).order_by("index"))
    with default_storage.open(media.storage_key) as file:
        images = frames_at(file, [f.timestamp_ms for f in frames], clip.preprocess.resized_size)
    again = clip.embed_images([images[f.timestamp_ms] for f in frames])
    assert np.all(np.sum(again * vectors(media.pk, "clip-tiny"), axis=1) > 0.999)


def test_an_unreadable_item_is_reported_and_the_rest_done(catalog, other_tiny_model):
    default_storage.delete(Media.objects.get(pk=catalog["blue"]).storage_key)
    out = run("reembed", "--model", str(other_tiny_model))
    assert f"media {catalog['blue']} could not be read again" in out
    assert "Embedded 3 media" in out and "1 media still lack vectors" in out
    assert Media.objects.get(pk=catalog["blue"]).status == Media.Status.READY  # its old vectors still serve


@pytest.mark.django_db
def test_a_model_that_cannot_load_is_an_error(tenant, tmp_path):
    from tests.factories import EmbeddingFactory, MediaFactory

    EmbeddingFactory(media=MediaFactory(tenant=tenant, status=Media.Status.READY))
    with pytest.raises(CommandError, match="cannot be loaded"):
        run("reembed", "--model", str(tmp_path / "no-such-model"))
