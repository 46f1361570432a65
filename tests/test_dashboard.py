"""The operators' dashboard: figures per status, throughput, processing times,
error rate, queues, workers and S3 events, overall and per tenant."""

from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.aws import sqs_client
from catalog.models import Media
from tests.conftest import wait_for
from tests.factories import MediaFactory, RejectedS3EventFactory, TenantFactory

DASHBOARD = "/admin/ops/"


def processed(tenant, status, seconds: float, hours_ago: float = 1, error: str = "") -> Media:
    finished = timezone.now() - timedelta(hours=hours_ago)
    return MediaFactory(
        tenant=tenant,
        status=status,
        error=error,
        processing_started_at=finished - timedelta(seconds=seconds),
        processed_at=finished,
    )


@pytest.fixture
def pipeline(tenant, other_tenant):
    """Media of `acme` in every state, and one of `globex`."""
    MediaFactory.create_batch(2, tenant=tenant)  # pending
    MediaFactory(tenant=tenant, status=Media.Status.PROCESSING, processing_started_at=timezone.now())
    stuck = MediaFactory(
        tenant=tenant, status=Media.Status.PROCESSING, processing_started_at=timezone.now() - timedelta(hours=2)
    )
    for seconds in (1, 2, 10):
        processed(tenant, Media.Status.READY, seconds)
    processed(tenant, Media.Status.READY, 100, hours_ago=72)  # outside the window
    processed(tenant, Media.Status.FAILED, 1, error="The image is truncated or corrupt.")
    processed(tenant, Media.Status.FAILED, 1, hours_ago=5, error="The image is truncated or corrupt.")
    processed(other_tenant, Media.Status.READY, 4, hours_ago=3)
    return {"stuck": stuck}


def test_figures_overall_and_per_tenant(staff, pipeline, tenant, other_tenant, broker):
    broker.lpush("media", "a waiting task")
    response = staff.get(DASHBOARD)
    assert response.status_code == 200
    dashboard = response.context["dashboard"]
    f = dashboard.figures
    assert f.by_status == {"pending": 2, "processing": 2, "ready": 5, "failed": 2}
    assert f.stuck == 1
    assert (f.ready_24h, f.failed_24h) == (4, 2)
    assert f.error_rate == pytest.approx(2 / 6)
    assert f.avg_seconds == pytest.approx((1 + 2 + 10 + 4) / 4, abs=0.01)
    # percentile_cont over 1, 2, 4, 10 s: 4 + 0.85 * (10 - 4)
    assert f.p95_seconds == pytest.approx(9.1, abs=0.01)
    assert dashboard.queues == {"media": 1, "maintenance": 0, "webhooks": 0}
    assert sum(h.ready for h in dashboard.hours) == 4 and sum(h.failed for h in dashboard.hours) == 2
    assert len(dashboard.hours) == 24

    rows = {row.tenant.slug: row.figures for row in dashboard.tenants}
    assert rows["acme"].by_status == {"pending": 2, "processing": 2, "ready": 4, "failed": 2}
    assert rows["acme"].stuck == 1 and rows["globex"].stuck == 0
    assert rows["globex"].by_status["ready"] == 1 and rows["globex"].error_rate == 0

    page = response.content.decode()
    assert "Needs attention" in page and "1 media stuck" in page and "no worker is alive" in page
    assert f'/admin/ops_console/stuckmedia/?tenant__id__exact={tenant.pk}"' in page
    assert f'/admin/ops_console/failedmedia/?tenant__id__exact={tenant.pk}"' in page
    assert '<svg class="ops-chart"' in page and "33.3%" in page


def test_one_tenant_only(staff, pipeline, other_tenant):
    response = staff.get(DASHBOARD, {"tenant": "globex"})
    f = response.context["dashboard"].figures
    assert f.by_status == {"pending": 0, "processing": 0, "ready": 1, "failed": 0}
    assert f.stuck == 0 and f.error_rate == 0
    assert staff.get(DASHBOARD, {"tenant": "nobody"}).status_code == 404


def test_an_empty_pipeline_renders(staff):
    response = staff.get(DASHBOARD)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Nothing was processed in the last 24 hours." in page and "No media yet." in page


def test_a_running_worker_is_alive_by_its_heartbeats(staff, worker):
    dashboard = wait_for(lambda: staff.get(DASHBOARD).context["dashboard"], what="the dashboard")
    assert dashboard.workers == [worker.hostname]
    assert "no worker is alive" not in dashboard.problems
    assert f"1 alive (a heartbeat in the last 10 s): {worker.hostname}" in staff.get(DASHBOARD).content.decode()


def test_a_worker_without_heartbeats_stops_counting(broker, monkeypatch):
    from media_pipeline import heartbeat

    monkeypatch.setattr(heartbeat, "ALIVE_FOR_S", 1)
    heartbeat.record("celery@gone")
    heartbeat.record("celery@stopped")
    assert {"celery@gone", "celery@stopped"} <= set(heartbeat.live_workers())
    heartbeat.forget("celery@stopped")  # a clean shutdown
    assert "celery@stopped" not in heartbeat.live_workers()
    wait_for(lambda: "celery@gone" not in heartbeat.live_workers(), timeout=5, what="the heartbeat to expire")


def test_a_broker_that_does_not_answer_is_reported(staff, settings):
    from config.embedded_services import free_port

    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    dashboard = staff.get(DASHBOARD).context["dashboard"]
    assert dashboard.workers is None and dashboard.queues == dict.fromkeys(["media", "maintenance", "webhooks"])
    assert "the broker (Redis) does not answer" in dashboard.problems


def test_dead_letter_queue_and_rejected_events(staff, queue_url, db):
    RejectedS3EventFactory.create_batch(2)
    old = RejectedS3EventFactory()
    type(old).objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=3))
    client = sqs_client()
    dead_letter_url = client.get_queue_url(QueueName=queue_url.rsplit("/", 1)[1] + "-dlq")["QueueUrl"]
    client.send_message(QueueUrl=dead_letter_url, MessageBody="{}")
    client.send_message(QueueUrl=queue_url, MessageBody="{}")

    dashboard = staff.get(DASHBOARD).context["dashboard"]

    assert dashboard.sqs.queue_depth == 1 and dashboard.sqs.dead_letter_depth == 1 and not dashboard.sqs.error
    assert (dashboard.rejected_events_24h, dashboard.rejected_events_total) == (2, 3)
    assert "1 S3 events in the dead-letter queue" in dashboard.problems


def test_without_sqs_there_is_no_sqs_line(staff):
    page = staff.get(DASHBOARD).content.decode()
    assert "Dead-letter queue" not in page and "Rejected S3 events" in page


def test_the_per_tenant_table_lists_the_biggest_tenants(staff, settings, monkeypatch):
    from ops_console import dashboard

    monkeypatch.setattr(dashboard, "TENANT_ROWS", 2)
    for count, slug in ((3, "big"), (2, "middle"), (1, "small")):
        MediaFactory.create_batch(count, tenant=TenantFactory(slug=slug))
    response = staff.get(DASHBOARD)
    assert [row.tenant.slug for row in response.context["dashboard"].tenants] == ["big", "middle"]
    assert "2 with the most media of 3" in response.content.decode()


def test_the_admin_index_links_to_the_dashboard(staff):
    assert 'href="/admin/ops/"' in staff.get("/admin/").content.decode()


def test_the_dashboard_is_staff_only(client, db):
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
