"""Bad uploads, made as real files, get the API.md error codes and leave nothing behind."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Media
from tests.conftest import error_code
from tests.media_files import jpeg_bytes, mp4_audio_only, png_claiming_size, truncated_jpeg

pytestmark = pytest.mark.django_db

URL = "/api/v1/media/"
MB = 1024 * 1024


def post_file(api, name: str, data: bytes, content_type: str = "image/jpeg"):
    return api.post(URL, {"file": SimpleUploadedFile(name, data, content_type=content_type)}, format="multipart")


def refused(response, status: int, code: str, media_storage) -> None:
    assert response.status_code == status, response.content
    assert error_code(response) == code
    assert not Media.objects.exists()
    assert not any(path.is_file() for path in media_storage.rglob("*")) if media_storage.exists() else True


def test_zero_bytes(api, media_storage):
    refused(post_file(api, "empty.jpg", b""), 422, "corrupt_file", media_storage)


def test_text_named_jpg(api, media_storage):
    response = post_file(api, "notes.jpg", b"just some text, not a picture\n" * 10)
    refused(response, 415, "unsupported_media_type", media_storage)


def test_html_claiming_to_be_an_image(api, media_storage):
    response = post_file(api, "page.png", b"<!doctype html><script>alert(1)</script>", "image/png")
    refused(response, 415, "unsupported_media_type", media_storage)


def test_truncated_jpeg(api, media_storage):
    refused(post_file(api, "cut.jpg", truncated_jpeg()), 422, "corrupt_file", media_storage)


def test_jpeg_magic_with_garbage_body(api, media_storage):
    refused(post_file(api, "bad.jpg", b"\xff\xd8\xff\xe0" + b"\x00garbage" * 100), 422, "corrupt_file", media_storage)


def test_png_claiming_30000_by_30000(api, media_storage):
    response = post_file(api, "bomb.png", png_claiming_size(30000, 30000), "image/png")
    refused(response, 422, "image_too_large", media_storage)
    assert "pixels" in response.json()["error"]["message"]


def test_png_with_one_side_too_long(api, media_storage):
    refused(
        post_file(api, "strip.png", png_claiming_size(13000, 10), "image/png"), 422, "image_too_large", media_storage
    )


def test_image_over_20_mb(api, media_storage):
    # A JPEG start with 21 MB of padding: an image by its content, too big for an image.
    data = jpeg_bytes(64, 64) + b"\x00" * (21 * MB)
    response = post_file(api, "huge.jpg", data)
    refused(response, 413, "file_too_large", media_storage)
    assert response.json()["error"]["detail"]["limit"] == 20 * MB


def test_file_over_50_mb(api, media_storage):
    data = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (51 * MB)
    refused(post_file(api, "huge.mp4", data, "video/mp4"), 413, "file_too_large", media_storage)


def test_declared_body_over_the_limit_is_refused_before_reading(api, media_storage):
    response = api.generic(
        "POST", URL, b"x" * 10, content_type="multipart/form-data; boundary=x", CONTENT_LENGTH=str(60 * MB)
    )
    refused(response, 413, "file_too_large", media_storage)


def test_mp4_with_only_an_audio_stream(api, media_storage):
    response = post_file(api, "song.mp4", mp4_audio_only(), "video/mp4")
    refused(response, 415, "unsupported_media_type", media_storage)
    assert "no video stream" in response.json()["error"]["message"]


def test_mp4_header_with_garbage(api, media_storage):
    data = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x13\x37" * 5000
    refused(post_file(api, "broken.mp4", data, "video/mp4"), 422, "corrupt_file", media_storage)


def test_video_over_the_length_limit(api, settings, media_storage):
    from tests.media_files import mp4_video

    settings.MAX_VIDEO_SECONDS = 1
    response = post_file(api, "long.mp4", mp4_video(seconds=3), "video/mp4")
    refused(response, 422, "video_too_long", media_storage)


def test_a_refused_upload_does_not_block_the_next(api, media_storage):
    post_file(api, "cut.jpg", truncated_jpeg())
    assert post_file(api, "ok.jpg", jpeg_bytes()).status_code == 202
