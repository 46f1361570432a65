"""With S3_BUCKET_NAME set, uploads go to S3 through django-storages: here a
real S3 HTTP endpoint (moto's server on loopback), reached with boto3 exactly as
in production."""

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Media
from tests.media_files import jpeg_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def s3(s3_bucket):
    from catalog.aws import s3_client

    return s3_client()


def test_upload_is_stored_in_s3_and_deleted_from_it(api, tenant, s3, django_capture_on_commit_callbacks):
    data = jpeg_bytes()
    response = api.post("/api/v1/media/", {"file": SimpleUploadedFile("shoe.jpg", data)}, format="multipart")
    assert response.status_code == 202
    media = Media.objects.get(pk=response.json()["id"])

    stored = s3.get_object(Bucket=settings.S3_BUCKET_NAME, Key=media.storage_key)["Body"].read()
    assert stored == data
    assert "X-Amz-Signature" in response.json()["file_url"] or "Signature" in response.json()["file_url"]

    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/media/{media.pk}/").status_code == 204
    assert s3.list_objects_v2(Bucket=settings.S3_BUCKET_NAME).get("KeyCount", 0) == 0
