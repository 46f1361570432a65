"""Webhooks (API.md "Webhooks"): endpoints through the API, deliveries signed
as Standard Webhooks defines them, sent by a real Celery worker to a real HTTP
receiver on loopback, retried with the same `webhook-id`, never past the
timeout, and never to another tenant's endpoints."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.checks import run_checks
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from catalog import transitions, webhooks
from catalog.models import ApiKey, Media, WebhookDelivery, WebhookEndpoint, WebhookEvent
from catalog.webhook_targets import TargetRefused, resolve
from config.queues import QUEUE_WEBHOOKS
from tests.conftest import client_for, error_code, queued_tasks, wait_for
from tests.factories import ApiKeyFactory, MediaFactory
from tests.media_files import jpeg_bytes
from tests.webhook_receiver import Receiver

ALL_EVENTS = [event.value for event in WebhookEvent]


@pytest.fixture
def private_ok(settings):
    """Loopback receivers over http, and retries a test can wait for."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_RETRY_DELAYS_S = (0.2, 0.3, 0.3, 0.5, 0.5, 1, 1)
    settings.WEBHOOK_TIMEOUT_S = 2.0
    return settings


@pytest.fixture
def receiver():
    running = Receiver().start()
    yield running
    running.stop()


def subscribe(api, url: str, events=None) -> dict:
    response = api.post("/api/v1/webhooks/", {"url": url, "events": events or ALL_EVENTS}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def verified(secret: str, received) -> dict:
    """The body, once its signature checks out with the endpoint's secret."""
    return Webhook(secret).verify(received.body, received.headers)


# --- The endpoints API -------------------------------------------------------------


@pytest.mark.django_db
def test_the_secret_is_shown_once_and_lists_hide_it(api, private_ok, receiver):
    created = subscribe(api, receiver.url, ["media.ready"])

    assert created["secret"].startswith("whsec_")
    assert set(created) == {"id", "url", "events", "secret", "is_active", "created_at"}
    assert created["events"] == ["media.ready"] and created["is_active"] is True
    listed = api.get("/api/v1/webhooks/").json()
    assert [row["id"] for row in listed["results"]] == [created["id"]]
    assert "secret" not in listed["results"][0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://93.184.216.34/h", "events": []}, "events"),
        ({"url": "https://93.184.216.34/h", "events": ["media.created"]}, "events"),
        ({"url": "https://93.184.216.34/h", "events": ["media.ready", "media.ready"]}, "events"),
        ({"url": "not a url", "events": ["media.ready"]}, "url"),
        ({"events": ["media.ready"]}, "url"),
        ({"url": "https://93.184.216.34/h", "events": ["media.ready"], "secret": "mine"}, "secret"),
    ],
)
def test_bad_endpoints_are_400_naming_the_field(api, body, field):
    response = api.post("/api/v1/webhooks/", body, format="json")
    assert response.status_code == 400 and error_code(response) == "validation_error", response.content
    assert field in json.dumps(response.json()["error"])
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://93.184.216.34/hook", "https"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://localhost:8443/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://192.168.0.10/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://240.0.0.1/hook", "reserved"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://100.64.0.1/hook", "non-public"),
        ("https://user:pass@93.184.216.34/hook", "credentials"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_urls_that_are_not_https_to_a_public_host_are_refused(api, url, why):
    response = api.post("/api/v1/webhooks/", {"url": url, "events": ["media.ready"]}, format="json")

    assert response.status_code == 400 and error_code(response) == "validation_error", response.content
    assert why in json.dumps(response.json()["error"])
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_a_public_https_url_is_taken(api):
    created = subscribe(api, "https://93.184.216.34/hooks", ["media.failed"])
    assert WebhookEndpoint.objects.get(pk=created["id"]).url == "https://93.184.216.34/hooks"


@pytest.mark.django_db
def test_another_tenants_endpoint_is_404_and_stays(api, other_api):
    theirs = subscribe(other_api, "https://93.184.216.34/theirs")

    assert api.delete(f"/api/v1/webhooks/{theirs['id']}/").status_code == 404
    assert api.get("/api/v1/webhooks/").json()["count"] == 0
    assert WebhookEndpoint.objects.filter(pk=theirs["id"]).exists()
    assert other_api.delete(f"/api/v1/webhooks/{theirs['id']}/").status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=theirs["id"]).exists()


@pytest.mark.django_db
def test_a_read_key_cannot_add_an_endpoint(tenant):
    reader = client_for(ApiKeyFactory(tenant=tenant, scope=ApiKey.Scope.READ))
    response = reader.post("/api/v1/webhooks/", {"url": "https://93.184.216.34/h", "events": ALL_EVENTS}, format="json")
    assert response.status_code == 403


@pytest.mark.django_db
def test_check_deploy_warns_while_private_targets_are_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    assert "catalog.W001" not in [m.id for m in run_checks(include_deployment_checks=True)]
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert "catalog.W001" in [m.id for m in run_checks(include_deployment_checks=True)]


# --- Deliveries, one attempt at a time ------------------------------------------------


def due_now(delivery_id: int) -> None:
    WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_is_retried_on_the_schedule_then_given_up(private_ok, api, tenant, receiver):
    subscribe(api, receiver.url, ["media.failed"])
    receiver.answers = [500] * 20
    transitions.fail(Media.objects.filter(pk=MediaFactory(tenant=tenant).pk), "corrupt")
    [delivery] = WebhookDelivery.objects.all()
    delays = private_ok.WEBHOOK_RETRY_DELAYS_S

    for attempt, delay in enumerate(delays, 1):
        due_now(delivery.pk)
        before = timezone.now()
        assert webhooks.attempt_delivery(delivery.pk) == delay
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", attempt, 500)
        assert before + timedelta(seconds=delay) <= delivery.next_attempt_at
    due_now(delivery.pk)
    assert webhooks.attempt_delivery(delivery.pk) is None

    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == len(delays) + 1
    assert [a.status_code for a in delivery.attempt_log.all()] == [500] * (len(delays) + 1)
    assert "HTTP 500" in delivery.last_error
    # Every attempt carried the same webhook-id.
    assert set(receiver.messages()) == {delivery.message_id}


def test_the_default_schedule_retries_within_a_minute_and_for_over_a_day():
    from django.conf import settings

    delays = settings.WEBHOOK_RETRY_DELAYS_S
    assert delays[0] <= 60 and list(delays) == sorted(delays)
    assert sum(delays) >= 24 * 3600


@pytest.mark.django_db(transaction=True)
def test_an_attempt_not_due_or_under_way_sends_nothing(private_ok, api, tenant, receiver):
    subscribe(api, receiver.url, ["media.failed"])
    transitions.fail(Media.objects.filter(pk=MediaFactory(tenant=tenant).pk), "corrupt")
    [delivery] = WebhookDelivery.objects.all()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_until=timezone.now() + timedelta(minutes=1))

    assert webhooks.attempt_delivery(delivery.pk) is None
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        claimed_until=None, next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    assert webhooks.attempt_delivery(delivery.pk) is None
    assert receiver.received == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["hang", "drip"])
def test_a_hanging_receiver_is_cut_off_at_the_timeout(private_ok, api, tenant, receiver, mode):
    private_ok.WEBHOOK_TIMEOUT_S = 0.5
    receiver.hang_s = 5
    receiver.drip = mode == "drip"
    subscribe(api, receiver.url, ["media.failed"])
    transitions.fail(Media.objects.filter(pk=MediaFactory(tenant=tenant).pk), "corrupt")
    [delivery] = WebhookDelivery.objects.all()

    assert webhooks.attempt_delivery(delivery.pk) == private_ok.WEBHOOK_RETRY_DELAYS_S[0]

    [attempt] = delivery.attempt_log.all()
    assert attempt.status_code is None and "No answer within 0.5 s" in attempt.error
    assert attempt.duration_ms < 3000  # cut off, not waited out (the receiver hangs for 5 s)


@pytest.mark.django_db(transaction=True)
def test_a_host_that_turned_private_is_refused_at_delivery(private_ok, api, tenant, receiver):
    subscribe(api, receiver.url, ["media.failed"])
    transitions.fail(Media.objects.filter(pk=MediaFactory(tenant=tenant).pk), "corrupt")
    [delivery] = WebhookDelivery.objects.all()
    private_ok.WEBHOOK_ALLOW_PRIVATE = False  # as if the name now resolved to loopback

    webhooks.attempt_delivery(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == "pending" and "Refused" in delivery.last_error and "https" in delivery.last_error
    assert receiver.received == []


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_failing_for_a_day_is_deactivated(private_ok, api, tenant, receiver):
    created = subscribe(api, receiver.url, ["media.failed"])
    receiver.answers = [503] * 5
    first, second = MediaFactory(tenant=tenant), MediaFactory(tenant=tenant)
    transitions.fail(Media.objects.filter(pk__in=[first.pk, second.pk]), "corrupt")
    one, other = WebhookDelivery.objects.order_by("pk")

    webhooks.attempt_delivery(one.pk)
    endpoint = WebhookEndpoint.objects.get(pk=created["id"])
    assert endpoint.is_active and endpoint.failing_since is not None
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=1, minutes=1))
    due_now(one.pk)
    webhooks.attempt_delivery(one.pk)

    endpoint.refresh_from_db()
    assert not endpoint.is_active and "every delivery failed since" in endpoint.deactivated_reason
    assert api.get("/api/v1/webhooks/").json()["results"][0]["is_active"] is False
    other.refresh_from_db()
    assert other.status == "failed" and "Deactivated" in other.last_error
    # No new deliveries for it.
    transitions.fail(Media.objects.filter(pk=MediaFactory(tenant=tenant).pk), "corrupt")
    assert WebhookDelivery.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_success_ends_the_failing_streak(private_ok, api, tenant, receiver):
    created = subscribe(api, receiver.url, ["media.failed"])
    receiver.answers = [500]
    transitions.fail(Media.objects.filter(pk=MediaFactory(tenant=tenant).pk), "corrupt")
    [delivery] = WebhookDelivery.objects.all()

    webhooks.attempt_delivery(delivery.pk)
    assert WebhookEndpoint.objects.get(pk=created["id"]).failing_since is not None
    due_now(delivery.pk)
    webhooks.attempt_delivery(delivery.pk)

    assert WebhookEndpoint.objects.get(pk=created["id"]).failing_since is None
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.delivered_at is not None


@pytest.mark.django_db(transaction=True)
def test_the_sweep_sends_due_retries_and_lost_tasks_but_not_those_on_their_way(
    private_ok, api, tenant, receiver, broker
):
    subscribe(api, receiver.url, ["media.failed"])
    media = [MediaFactory(tenant=tenant) for _ in range(3)]
    transitions.fail(Media.objects.filter(pk__in=[m.pk for m in media]), "corrupt")
    retry, lost, on_its_way = WebhookDelivery.objects.order_by("pk")
    broker.delete(QUEUE_WEBHOOKS)  # the tasks emit sent
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=retry.pk).update(sent_at=None, next_attempt_at=now - timedelta(seconds=1))
    WebhookDelivery.objects.filter(pk=lost.pk).update(next_attempt_at=now - timedelta(minutes=11))

    assert sorted(webhooks.send_due()) == sorted([retry.pk, lost.pk])

    assert sorted(args[0] for _, args in queued_tasks(broker, QUEUE_WEBHOOKS)) == sorted([retry.pk, lost.pk])
    assert webhooks.send_due() == []  # sent once, not at every sweep
    assert on_its_way.pk not in [args[0] for _, args in queued_tasks(broker, QUEUE_WEBHOOKS)]


@pytest.mark.django_db(transaction=True)
def test_no_endpoint_no_delivery_and_events_not_subscribed_are_not_sent(private_ok, api, tenant, receiver):
    item = MediaFactory(tenant=tenant)
    transitions.fail(Media.objects.filter(pk=item.pk), "corrupt")
    assert not WebhookDelivery.objects.exists()

    subscribe(api, receiver.url, ["media.ready"])
    transitions.fail(Media.objects.filter(pk=MediaFactory(tenant=tenant).pk), "corrupt")
    assert not WebhookDelivery.objects.exists()


# --- End to end: a real worker, a real receiver ------------------------------------------


@pytest.mark.usefixtures("private_ok")
def test_media_ready_failed_and_deleted_are_delivered_signed(worker, api, tenant, receiver):
    secret = subscribe(api, receiver.url)["secret"]
    upload = SimpleUploadedFile("shoe.jpg", jpeg_bytes(96, 64, seed=3), content_type="image/jpeg")
    media_id = api.post("/api/v1/media/", {"file": upload}, format="multipart").json()["id"]

    wait_for(lambda: len(receiver.received) >= 1, 90, what="media.ready")
    ready = verified(secret, receiver.received[0])
    assert ready["type"] == "media.ready" and ready["data"]["id"] == media_id
    shown = api.get(f"/api/v1/media/{media_id}/").json()
    # The item as the API shows it (the API's file_url is absolute to its request).
    assert {**ready["data"], "file_url": None} == {**shown, "file_url": None}
    assert receiver.received[0].path == "/hooks/stockmind?source=test"
    assert receiver.received[0].headers["Content-Type"] == "application/json"

    transitions.fail(Media.objects.filter(pk=MediaFactory(tenant=tenant).pk), "The stored file is missing.")
    wait_for(lambda: len(receiver.received) >= 2, 30, what="media.failed")
    failed = verified(secret, receiver.received[1])
    assert failed["type"] == "media.failed" and failed["data"]["error"] == "The stored file is missing."

    assert api.delete(f"/api/v1/media/{media_id}/").status_code == 204
    wait_for(lambda: len(receiver.received) >= 3, 30, what="media.deleted")
    deleted = verified(secret, receiver.received[2])
    assert deleted["type"] == "media.deleted" and deleted["data"]["id"] == media_id
    assert len(set(receiver.messages())) == 3


@pytest.mark.usefixtures("private_ok")
def test_a_500_is_retried_with_the_same_webhook_id(worker, api, tenant, receiver):
    secret = subscribe(api, receiver.url, ["media.failed"])["secret"]
    receiver.answers = [500]

    transitions.fail(Media.objects.filter(pk=MediaFactory(tenant=tenant).pk), "corrupt")

    wait_for(lambda: len(receiver.received) >= 2, 30, what="the retry")
    first, retry = receiver.received[:2]
    assert first.headers["webhook-id"] == retry.headers["webhook-id"]
    assert verified(secret, first) == verified(secret, retry)
    delivery = wait_for(lambda: WebhookDelivery.objects.filter(status="succeeded").first(), 10, what="succeeded")
    assert [a.status_code for a in delivery.attempt_log.all()] == [500, 200]


@pytest.mark.usefixtures("private_ok")
def test_a_receiver_down_for_a_while_gets_every_event_once_back(worker, api, tenant):
    down = Receiver()  # its port, nobody listening yet
    subscribe(api, down.url, ["media.failed"])
    items = [MediaFactory(tenant=tenant) for _ in range(3)]

    transitions.fail(Media.objects.filter(pk__in=[m.pk for m in items]), "corrupt")
    wait_for(lambda: all(d.attempts >= 2 for d in WebhookDelivery.objects.all()), 30, what="failed attempts while down")
    assert all("Connection" in d.last_error for d in WebhookDelivery.objects.all())
    down.start()
    try:
        wait_for(lambda: WebhookDelivery.objects.filter(status="succeeded").count() == 3, 30, what="all delivered")
    finally:
        down.stop()

    payloads = [json.loads(r.body) for r in down.received]
    assert sorted(p["data"]["id"] for p in payloads) == sorted(m.pk for m in items)
    assert sorted(down.messages()) == sorted(WebhookDelivery.objects.values_list("message_id", flat=True))


@pytest.mark.usefixtures("private_ok")
def test_another_tenants_endpoints_are_never_touched(worker, api, other_api, tenant, other_tenant, receiver):
    theirs = Receiver().start()
    try:
        subscribe(other_api, theirs.url)
        subscribe(api, receiver.url, ["media.failed", "media.deleted"])
        item = MediaFactory(tenant=tenant)

        transitions.fail(Media.objects.filter(pk=item.pk), "corrupt")
        assert api.delete(f"/api/v1/media/{item.pk}/").status_code == 204
        wait_for(lambda: len(receiver.received) >= 2, 30, what="acme's deliveries")

        assert theirs.received == []
        assert not WebhookDelivery.objects.filter(tenant=other_tenant).exists()
        assert set(WebhookDelivery.objects.values_list("endpoint__tenant", flat=True)) == {tenant.pk}
    finally:
        theirs.stop()


# --- The admin ------------------------------------------------------------------------


@pytest.mark.usefixtures("private_ok")
def test_the_admin_lists_attempts_and_sends_a_delivery_again(worker, api, tenant, receiver, client):
    subscribe(api, receiver.url, ["media.failed"])
    receiver.answers = [500]
    transitions.fail(Media.objects.filter(pk=MediaFactory(tenant=tenant).pk), "corrupt")
    delivery = wait_for(lambda: WebhookDelivery.objects.filter(status="succeeded").first(), 30, what="delivered")
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password-123")
    client.force_login(user)

    listing = client.get("/admin/catalog/webhookdelivery/", {"tenant__id__exact": tenant.pk})
    assert listing.status_code == 200 and delivery.message_id in listing.content.decode()
    page = client.get(f"/admin/catalog/webhookdelivery/{delivery.pk}/change/").content.decode()
    assert "HTTP 500" in page and "200" in page
    assert client.get("/admin/catalog/webhookendpoint/").status_code == 200

    response = client.post(
        "/admin/catalog/webhookdelivery/", {"action": "send_again", "_selected_action": [delivery.pk]}, follow=True
    )

    assert "Sending 1 delivery(ies) again" in response.content.decode()
    wait_for(lambda: len(receiver.received) >= 3, 30, what="the resend")
    assert receiver.messages() == [delivery.message_id] * 3


def test_resolve_pins_the_checked_address(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    target = resolve("http://127.0.0.1:8080/a/b?c=d")
    assert (target.address, target.port, target.path, target.host_header) == (
        "127.0.0.1",
        8080,
        "/a/b?c=d",
        "127.0.0.1:8080",
    )
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(TargetRefused):
        resolve("http://127.0.0.1:8080/")
