"""With S3_BUCKET_NAME set, uploads go to S3 through django-storages: here a
real S3 HTTP endpoint (moto's server on loopback), reached with boto3 exactly as
in production."""

import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from moto.server import ThreadedMotoServer

from catalog.models import Media
from config.embedded_services import free_port
from tests.media_files import jpeg_bytes

pytestmark = pytest.mark.django_db

BUCKET = "stockmind-test-media"


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    settings.S3_BUCKET_NAME = BUCKET
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "region_name": "us-east-1",
                "endpoint_url": s3_endpoint,
                "file_overwrite": False,
                "default_acl": None,
                "querystring_auth": True,
            },
        },
    }
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])


def test_upload_is_stored_in_s3_and_deleted_from_it(api, tenant, s3, django_capture_on_commit_callbacks):
    data = jpeg_bytes()
    response = api.post("/api/v1/media/", {"file": SimpleUploadedFile("shoe.jpg", data)}, format="multipart")
    assert response.status_code == 202
    media = Media.objects.get(pk=response.json()["id"])

    stored = s3.get_object(Bucket=BUCKET, Key=media.storage_key)["Body"].read()
    assert stored == data
    assert "X-Amz-Signature" in response.json()["file_url"] or "Signature" in response.json()["file_url"]

    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/media/{media.pk}/").status_code == 204
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
