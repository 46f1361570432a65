"""S3 uploads end to end over HTTP against moto's server: presigned POST,
bucket notification -> SQS -> bridge -> worker."""

import base64
import json
from io import StringIO

import django.db
import pytest
import requests
from django.conf import settings
from django.core.management import call_command

from catalog.aws import s3_client, sqs_client
from catalog.models import Embedding, Media, Product
from media_pipeline import bridge as bridge_module
from media_pipeline.bridge import Bridge
from media_pipeline.models import RejectedS3Event
from tests.conftest import database_unreachable, error_code, wait_until_settled
from tests.factories import ProductFactory, TenantFactory
from tests.media_files import jpeg_bytes


@pytest.fixture
def bridge(queue_url):
    return Bridge(queue_url, wait_seconds=1, batch_size=10)


def put(key: str, data: bytes) -> None:
    s3_client().put_object(Bucket=settings.S3_BUCKET_NAME, Key=key, Body=data)


def key_for(name: str, tenant="acme", sku="SNK-1", kind="image") -> str:
    return f"clients/{tenant}/products/{sku}/media/{kind}/{name}"


def drain(bridge: Bridge, rounds: int = 3) -> None:
    for _ in range(rounds):
        bridge.run_once()


def queue_depth(url: str) -> int:
    attributes = sqs_client().get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


# --- presigned POST --------------------------------------------------------------


@pytest.mark.django_db
def test_presigned_post_uploads_within_the_limits(api, tenant, s3_bucket):
    ProductFactory(tenant=tenant, sku="SNK-1")
    response = api.post(
        "/api/v1/media/uploads/",
        {"product": "SNK-1", "filename": "../Red Shoe é.JPG", "content_type": "image/jpeg"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"url", "fields", "key", "expires_in", "max_size"}
    assert body["key"].startswith("clients/acme/products/SNK-1/media/image/") and body["key"].endswith(
        "-Red-Shoe-e.jpg"
    )
    assert body["max_size"] == settings.MAX_IMAGE_BYTES and body["expires_in"] == settings.S3_PRESIGN_EXPIRES_SECONDS
    # S3 enforces these conditions of the signed policy (moto does not check them).
    policy = json.loads(base64.b64decode(body["fields"]["policy"]))
    assert ["content-length-range", 1, settings.MAX_IMAGE_BYTES] in policy["conditions"]
    assert {"Content-Type": "image/jpeg"} in policy["conditions"]

    data = jpeg_bytes()
    upload = requests.post(body["url"], data=body["fields"], files={"file": ("shoe.jpg", data)}, timeout=30)
    assert upload.status_code in (200, 201, 204)
    stored = s3_client().get_object(Bucket=s3_bucket, Key=body["key"])
    assert stored["Body"].read() == data and stored["ContentType"] == "image/jpeg"


@pytest.mark.django_db
def test_presign_refusals(api, tenant, other_tenant, s3_bucket, settings):
    ProductFactory(tenant=other_tenant, sku="THEIRS")
    ProductFactory(tenant=tenant, sku="SNK-1")
    bad_type = api.post(
        "/api/v1/media/uploads/",
        {"product": "SNK-1", "filename": "a.svg", "content_type": "image/svg+xml"},
        format="json",
    )
    assert bad_type.status_code == 415 and error_code(bad_type) == "unsupported_media_type"
    theirs = api.post(
        "/api/v1/media/uploads/",
        {"product": "THEIRS", "filename": "a.jpg", "content_type": "image/jpeg"},
        format="json",
    )
    assert theirs.status_code == 404 and error_code(theirs) == "not_found"  # exactly like a missing product
    video = api.post(
        "/api/v1/media/uploads/",
        {"product": "SNK-1", "filename": "a.mp4", "content_type": "video/mp4"},
        format="json",
    )
    assert video.json()["max_size"] == settings.MAX_UPLOAD_BYTES and "/media/video/" in video.json()["key"]
    settings.S3_BUCKET_NAME = ""
    off = api.post(
        "/api/v1/media/uploads/",
        {"product": "SNK-1", "filename": "a.jpg", "content_type": "image/jpeg"},
        format="json",
    )
    assert off.status_code == 501 and error_code(off) == "s3_not_configured"


# --- the bridge ------------------------------------------------------------------


def test_an_object_put_in_the_bucket_ends_ready(worker, tenant, bridge):
    put(key_for("shoe.jpg"), jpeg_bytes())
    drain(bridge, rounds=1)
    media = Media.objects.get()
    assert media.source == Media.Source.S3 and media.product.sku == "SNK-1"
    assert media.product.title == "SNK-1"  # an unknown sku becomes a product titled by it
    media = wait_until_settled([media.pk])[media.pk]
    assert media.status == Media.Status.READY, media.error
    assert Embedding.objects.filter(media=media).count() == 1
    assert (media.width, media.height) == (320, 240)


@pytest.mark.django_db
def test_the_test_event_is_dropped(tenant, bridge, queue_url):
    sqs_client().send_message(
        QueueUrl=queue_url, MessageBody=json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "x"})
    )
    counts = bridge.run_once()
    assert counts["deleted"] == 1 and queue_depth(queue_url) == 0
    assert not Media.objects.exists() and not RejectedS3Event.objects.exists()


@pytest.mark.django_db
def test_keys_with_spaces_and_non_ascii_are_decoded(tenant, bridge):
    key = key_for("red shoe été+1.jpg")
    put(key, jpeg_bytes())
    drain(bridge, rounds=1)
    media = Media.objects.get()
    assert media.storage_key == key and media.original_filename == "red shoe été+1.jpg"


@pytest.mark.django_db
def test_duplicated_events_and_two_events_for_one_object_make_one_media(tenant, bridge, queue_url, broker):
    data = jpeg_bytes()
    put(key_for("shoe.jpg"), data)
    [message] = sqs_client().receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    sqs_client().send_message(QueueUrl=queue_url, MessageBody=message["Body"])  # the same event again
    sqs_client().change_message_visibility(
        QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    put(key_for("shoe.jpg"), data)  # the same object written again: same ETag
    drain(bridge)
    assert Media.objects.count() == 1 and queue_depth(queue_url) == 0
    assert Product.objects.count() == 1


@pytest.mark.django_db
def test_an_object_removed_in_s3_removes_its_media(tenant, bridge, django_capture_on_commit_callbacks):
    put(key_for("shoe.jpg"), jpeg_bytes())
    drain(bridge, rounds=1)
    assert Media.objects.count() == 1
    s3_client().delete_object(Bucket=settings.S3_BUCKET_NAME, Key=key_for("shoe.jpg"))
    with django_capture_on_commit_callbacks(execute=True):
        drain(bridge, rounds=1)
    assert not Media.objects.exists()


@pytest.mark.django_db
def test_unknown_inactive_and_malformed_are_recorded_as_rejected(bridge, queue_url):
    TenantFactory(slug="sleepy", is_active=False)
    put(key_for("a.jpg", tenant="nobody"), jpeg_bytes())
    put(key_for("b.jpg", tenant="sleepy"), jpeg_bytes())
    put("clients/acme/loose.jpg", jpeg_bytes())
    sqs_client().send_message(QueueUrl=queue_url, MessageBody="not json at all")
    drain(bridge)
    reasons = {r.key: r.reason for r in RejectedS3Event.objects.all()}
    assert "No tenant 'nobody'" in reasons[key_for("a.jpg", tenant="nobody")]
    assert "inactive" in reasons[key_for("b.jpg", tenant="sleepy")]
    assert "is not clients/<tenant>" in reasons["clients/acme/loose.jpg"]
    assert "not JSON" in reasons[""]
    assert queue_depth(queue_url) == 0 and not Media.objects.exists()


def test_a_bridge_stopped_between_enqueue_and_delete_leaves_no_duplicate(worker, tenant, bridge, queue_url):
    put(key_for("shoe.jpg"), jpeg_bytes())
    [message] = bridge.receive()
    bridge_module.process_message(message)  # recorded and enqueued ... and then the bridge dies
    sqs_client().change_message_visibility(
        QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )  # its visibility timeout runs out
    drain(bridge)  # redelivered to a new bridge
    assert queue_depth(queue_url) == 0
    media = wait_until_settled([Media.objects.get().pk])
    [item] = media.values()
    assert item.status == Media.Status.READY and Media.objects.count() == 1
    assert Embedding.objects.filter(media=item).count() == 1


@pytest.mark.django_db
def test_a_message_that_always_fails_lands_in_the_dead_letter_queue(tenant, bridge, queue_url, monkeypatch):
    def broken(event):
        raise RuntimeError("a bug in handling this event")

    monkeypatch.setattr(bridge_module, "handle_event", broken)
    put(key_for("shoe.jpg"), jpeg_bytes())
    sqs = sqs_client()
    dlq_url = sqs.get_queue_url(QueueName=queue_url.rsplit("/", 1)[1] + "-dlq")["QueueUrl"]
    for _ in range(8):
        for message in bridge.receive():
            assert bridge.handle(message) is False  # left in the queue
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    dead = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1)["Messages"]
    assert len(dead) == 1 and "shoe.jpg" in dead[0]["Body"]
    assert queue_depth(queue_url) == 0


def test_setup_s3_events_is_idempotent_and_sets_the_redrive_policy(s3_bucket, queue_url):
    out = StringIO()
    call_command("setup_s3_events", "--queue-name", f"{s3_bucket}-events", stdout=out)
    assert f"SQS_QUEUE_URL={queue_url}" in out.getvalue()
    attributes = sqs_client().get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 5
    assert attributes["VisibilityTimeout"] == "300" and attributes["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    rules = s3_client().get_bucket_notification_configuration(Bucket=s3_bucket)["QueueConfigurations"]
    suffixes = {r["Filter"]["Key"]["FilterRules"][1]["Value"] for r in rules}
    assert suffixes == {".jpg", ".jpeg", ".png", ".webp", ".gif", ".mp4", ".webm", ".mov"}


def test_sigterm_finishes_the_batch_and_exits_cleanly(transactional_db, tenant, queue_url, moto_endpoint):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.conftest import wait_for

    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "AWS_SQS_ENDPOINT_URL": moto_endpoint,
        "AWS_S3_ENDPOINT_URL": moto_endpoint,
        "SQS_QUEUE_URL": queue_url,
        "SQS_WAIT_SECONDS": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "sqs_bridge"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        put(key_for("shoe.jpg"), jpeg_bytes())
        wait_for(lambda: Media.objects.exists(), timeout=60, what="the bridge to record the upload")
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "finishing the batch in hand" in output and "bridge stopped" in output
    assert "created" in output  # it logs what it did with each message
    assert queue_depth(queue_url) == 0


def test_an_oversized_object_that_reaches_the_bucket_ends_failed(worker, tenant, bridge):
    # S3 itself refuses it under the presigned policy; an object put some other
    # way (or into moto, which does not check policies) is refused by the worker.
    put(key_for("huge.jpg"), jpeg_bytes(64, 64) + b"\x00" * (settings.MAX_IMAGE_BYTES + 1))
    drain(bridge, rounds=1)
    media = wait_until_settled([Media.objects.get().pk])
    [item] = media.values()
    assert item.status == Media.Status.FAILED and "limit for images" in item.error


def test_a_message_with_several_records_and_encoded_keys():
    from media_pipeline.s3_events import newer, parse_message

    record = {
        "eventName": "ObjectCreated:CompleteMultipartUpload",
        "s3": {
            "bucket": {"name": "b"},
            "object": {
                "key": "clients/acme/products/S-1/media/video/caf%C3%A9+clip.mp4",
                "size": 5,
                "eTag": "e1",
                "sequencer": "0A1B",
            },
        },
    }
    removed = {**record, "eventName": "ObjectRemoved:Delete"}
    events = parse_message(json.dumps({"Records": [record, removed]}))
    assert [e.name for e in events] == ["ObjectCreated:CompleteMultipartUpload", "ObjectRemoved:Delete"]
    assert events[0].key == "clients/acme/products/S-1/media/video/café clip.mp4"
    assert events[0].created and events[1].removed
    via_sns = parse_message(json.dumps({"Type": "Notification", "Message": json.dumps({"Records": [record]})}))
    assert via_sns == events[:1]
    assert newer("0A1C", "0A1B") and not newer("0A1B", "0A1C") and newer("00FF", "FE")


@pytest.mark.django_db
def test_the_apps_own_writes_to_the_bucket_are_not_taken_as_uploads(api, tenant, bridge, queue_url):
    from django.core.files.uploadedfile import SimpleUploadedFile

    ProductFactory(tenant=tenant, sku="SNK-1")
    for product in ("SNK-1", None):
        payload = {"file": SimpleUploadedFile("shoe.jpg", jpeg_bytes(seed=3 if product else 4))}
        if product:
            payload["product"] = product
        assert api.post("/api/v1/media/", payload, format="multipart").status_code == 202
    put("clients/acme/products/SNK-1/media/video/abc-clip.frames/00001.jpg", jpeg_bytes())  # a thumbnail
    before = {m.pk: (m.sha256, m.status) for m in Media.objects.all()}
    drain(bridge)
    assert {m.pk: (m.sha256, m.status) for m in Media.objects.all()} == before
    assert not RejectedS3Event.objects.exists() and queue_depth(queue_url) == 0


def test_an_uploads_own_s3_event_seen_before_it_commits_makes_no_second_item(
    transactional_db, tenant, bridge, queue_url, broker
):
    """The API stores the file, S3 announces it, and the bridge handles that
    event while the upload's transaction is still open: the bridge waits for
    the upload's row and then leaves it alone."""
    import threading
    import time
    from io import BytesIO
    from urllib.parse import unquote_plus

    from django.db import connection, transaction

    from media_pipeline.uploads import ingest_upload
    from tests.conftest import wait_for

    product = ProductFactory(tenant=tenant, sku="SNK-1")
    data = jpeg_bytes(seed=8)
    handled = []

    def bridge_handles(message) -> None:
        try:
            handled.append(bridge.handle(message))
        finally:
            connection.close()

    with transaction.atomic():
        upload = ingest_upload(tenant, BytesIO(data), len(data), "shoe.jpg", product).media
        [message] = wait_for(bridge.receive, timeout=30, what="the object's S3 event")
        assert unquote_plus(json.loads(message["Body"])["Records"][0]["s3"]["object"]["key"]) == upload.storage_key
        racing = threading.Thread(target=bridge_handles, args=[message])
        racing.start()
        time.sleep(1)
        assert racing.is_alive(), "the bridge should wait for the open upload"
    racing.join(30)

    assert handled == [True]  # handled, and its message deleted
    [media] = Media.objects.all()
    assert (media.pk, media.source) == (upload.pk, Media.Source.UPLOAD)
    assert not RejectedS3Event.objects.exists() and queue_depth(queue_url) == 0


def test_the_bridge_receives_nothing_while_the_database_is_down(transactional_db, tenant, bridge, queue_url):
    """Each receive counts toward the dead-letter queue: an outage must not
    spend them. Nothing is received until the database answers again."""
    put(key_for("shoe.jpg"), jpeg_bytes())
    with database_unreachable():
        for _ in range(3):
            with pytest.raises(django.db.OperationalError):
                bridge.run_once()
    [message] = sqs_client().receive_message(QueueUrl=queue_url, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"  # this one: the bridge took none
    assert bridge.handle(message) is True
    assert Media.objects.get().storage_key == key_for("shoe.jpg")


def test_a_transient_error_stops_the_batch_in_hand(transactional_db, tenant, bridge, queue_url):
    """The first message meeting an outage (here the broker's) leaves the rest
    of its batch untouched: they come back after their visibility timeout."""
    from tests.conftest import broker_unreachable

    for n in range(3):
        put(key_for(f"shoe-{n}.jpg"), jpeg_bytes(seed=n))
    with broker_unreachable():
        counts = bridge.run_once()
    assert counts["unavailable"] == 1 and counts["left"] == 3 and counts["deleted"] == 0
    assert Media.objects.count() == 1  # recorded, its enqueueing failed: the same event sends it again
