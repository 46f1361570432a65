from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from rest_framework.test import APIClient

from catalog.models import ApiKey
from config.queues import QUEUE_MEDIA, QUEUES
from tests.factories import ApiKeyFactory, EmbeddingFactory, MediaFactory, ProductFactory, TenantFactory, unit_vector


@pytest.fixture(autouse=True)
def media_storage(settings, tmp_path):
    """Each test stores files in its own directory (through Django's storage API)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "media", "base_url": "/media/"},
        },
    }
    return tmp_path / "media"


@pytest.fixture
def staff(client, db):
    """The test client logged in as a superuser: the operators' console."""
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password-123"))
    return client


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="acme")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(slug="globex")


def client_for(key: ApiKey) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
    return client


@pytest.fixture
def api(tenant) -> APIClient:
    """A client with a write key of `tenant`."""
    return client_for(ApiKeyFactory(tenant=tenant, scope=ApiKey.Scope.WRITE))


@pytest.fixture
def read_api(tenant) -> APIClient:
    return client_for(ApiKeyFactory(tenant=tenant, scope=ApiKey.Scope.READ))


@pytest.fixture
def other_api(other_tenant) -> APIClient:
    """A write client of another tenant."""
    return client_for(ApiKeyFactory(tenant=other_tenant, scope=ApiKey.Scope.WRITE))


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    return body["error"]["code"]


TINY_MODEL_DIR = Path(__file__).resolve().parent.parent / ".data" / "test" / "models" / "clip-tiny"


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The tiny CLIP the project builds itself, built once and reused."""
    from media_pipeline.clip_builder import build_clip_model

    if not (TINY_MODEL_DIR / "model.safetensors").exists():
        build_clip_model(TINY_MODEL_DIR, "tiny")
    return TINY_MODEL_DIR


@pytest.fixture(scope="session")
def other_tiny_model() -> Path:
    """A second tiny CLIP (other random weights), for moving to another model."""
    from media_pipeline.clip_builder import build_clip_model

    directory = TINY_MODEL_DIR.parent / "clip-tiny-other"
    if not (directory / "model.safetensors").exists():
        build_clip_model(directory, "tiny", seed=1)
    return directory


@pytest.fixture
def clip(settings, tiny_model):
    settings.CLIP_MODEL = str(tiny_model)
    settings.CLIP_PRECISION = "fp32"
    from media_pipeline.embedder import get_embedder

    return get_embedder()


# The query that finds the products of `searchable`.
NEAR_QUERY = "near the query"


@pytest.fixture
def searchable(transactional_db, clip):
    """A tenant with six products near NEAR_QUERY, committed for another
    process (a web server) to see: its read key."""
    tenant = TenantFactory(slug="searchable")
    query = clip.embed_texts([NEAR_QUERY])[0]
    for n in range(6):
        media = MediaFactory(tenant=tenant, product=ProductFactory(tenant=tenant, sku=f"P-{n}"))
        near = query + 0.1 * np.asarray(unit_vector(n))
        EmbeddingFactory(media=media, model_name="clip-tiny", vector=(near / np.linalg.norm(near)).tolist())
    return ApiKeyFactory(tenant=tenant, scope=ApiKey.Scope.READ).plaintext


@pytest.fixture
def broker(settings):
    """The real Redis broker, with the suite's queues emptied before and after."""
    import redis

    from media_pipeline.heartbeat import KEY_PREFIX

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queues = [*QUEUES, "unacked", "unacked_index"]

    def empty() -> None:
        client.delete(*queues, *client.keys(f"{KEY_PREFIX}*"))  # and earlier workers' heartbeats

    empty()
    yield client
    empty()


@pytest.fixture
def worker(transactional_db, clip, broker, settings):
    """A real Celery worker consuming the real Redis queues, in a thread of this
    process (so it sees this test's settings and committed rows)."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    with start_worker(
        app,
        pool="solo",
        concurrency=1,
        perform_ping_check=False,
        queues=list(QUEUES),
        shutdown_timeout=30,
        loglevel="WARNING",
        without_heartbeat=False,  # its heartbeats tell the dashboard it is alive
    ) as running:
        yield running


@contextmanager
def broker_unreachable():
    """This process's Celery app pointed at a port nobody answers, then back."""
    from config.celery import app
    from config.embedded_services import free_port

    def point_at(url: str) -> None:
        app.conf.broker_url = url
        app._pool = None  # connections are pooled per URL: start new pools
        app.amqp._producer_pool = None

    url = app.conf.broker_url
    point_at(f"redis://127.0.0.1:{free_port()}/0")
    try:
        yield
    finally:
        point_at(url)


@contextmanager
def database_unreachable(wait_s: float = 0.5):
    """This process's database connections pointed at a port nobody answers
    (a real failure to connect, as while PostgreSQL restarts), then back. A
    request waits `wait_s` for a pooled connection instead of
    DATABASE_POOL_TIMEOUT, to spare the suite's time."""
    from django.db import connection

    from config.embedded_services import free_port
    from config.replicas import close_pools

    options = connection.settings_dict["OPTIONS"]
    saved = connection.settings_dict["PORT"], options.get("pool")

    def point_at(port: str, pool: dict | None) -> None:
        close_pools()  # the next connection makes a new pool, on this port
        connection.settings_dict["PORT"] = port
        if pool:
            options["pool"] = pool

    point_at(str(free_port()), saved[1] and {**saved[1], "timeout": wait_s})
    try:
        yield
    finally:
        point_at(*saved)


def wait_for(predicate, timeout: float = 60, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def queued_tasks(broker, queue: str) -> list[tuple[str, list]]:
    """The task name and arguments of each message waiting in `queue`, oldest first."""
    import base64
    import json

    messages = [json.loads(raw) for raw in broker.lrange(queue, 0, -1)]
    # Redis hands out from the right end: the oldest message is last in the list.
    return [
        (message["headers"]["task"], json.loads(base64.b64decode(message["body"]))[0]) for message in reversed(messages)
    ]


def queued_batches(broker) -> list[list[int]]:
    """The media ids of each processing task waiting in the media queue, oldest first."""
    return [args[0] for _, args in queued_tasks(broker, QUEUE_MEDIA)]


def wait_until_settled(media_ids, timeout: float = 90):
    """Wait until every item is `ready` or `failed`; returns them by id."""
    from catalog.models import Media

    settled = (Media.Status.READY, Media.Status.FAILED)

    def done():
        rows = {m.pk: m for m in Media.objects.filter(pk__in=media_ids)}
        return rows if len(rows) == len(media_ids) and all(m.status in settled for m in rows.values()) else None

    return wait_for(done, timeout, what=f"media {sorted(media_ids)} to settle")


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real S3/SQS HTTP endpoint on loopback: moto's server mode."""
    from moto.server import ThreadedMotoServer

    from config.embedded_services import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_signing(settings, monkeypatch):
    """Enough S3 configuration to sign presigned upload forms, which needs no network."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.S3_BUCKET_NAME = "stockmind-media"
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9"


@pytest.fixture
def s3_bucket(moto_endpoint, settings, monkeypatch, request):
    """A fresh bucket, with settings pointing storage and presigning at it."""
    import uuid

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"stockmind-{uuid.uuid4().hex[:12]}"
    settings.S3_BUCKET_NAME = bucket
    settings.AWS_S3_ENDPOINT_URL = moto_endpoint
    settings.AWS_SQS_ENDPOINT_URL = moto_endpoint
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "region_name": settings.AWS_REGION,
                "endpoint_url": moto_endpoint,
                "file_overwrite": False,
                "default_acl": None,
                "querystring_auth": True,
            },
        },
    }
    from catalog.aws import s3_client

    s3_client().create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def queue_url(s3_bucket, settings):
    """The S3 event queue with its dead-letter queue (`setup_s3_events`), empty."""
    from io import StringIO

    from django.core.management import call_command

    from catalog.aws import sqs_client

    out = StringIO()
    call_command("setup_s3_events", "--queue-name", f"{s3_bucket}-events", stdout=out)
    url = next(line.split("=", 1)[1] for line in out.getvalue().splitlines() if line.startswith("SQS_QUEUE_URL="))
    sqs_client().purge_queue(QueueUrl=url)  # S3's own test event for the new configuration
    settings.SQS_QUEUE_URL = url
    return url


@pytest.fixture
def tenant_indexes_dropped(transactional_db):
    """For a test that builds tenant indexes (CONCURRENTLY needs autocommit:
    transactional_db): every one is dropped after it, as a flush drops no index."""
    yield
    from django.db import connection

    from search import tenant_indexes

    with connection.cursor() as cursor:
        for name in tenant_indexes.existing():
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
