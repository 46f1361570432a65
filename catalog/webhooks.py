"""Webhooks (API.md "Webhooks"), following the Standard Webhooks specification.

- `create_endpoint`: a tenant's URL (checked, catalog/webhook_targets.py) and
  its events, with a new signing secret.
- `emit`: an event of media items becomes one delivery per subscribed active
  endpoint of their tenant, in the caller's transaction (the event and the
  change it reports commit together: none is lost to a crash in between),
  each sent to the `webhooks` queue after commit.
- `attempt_delivery`: one POST of a delivery, claimed so that two copies of its
  task never both send it, bounded by WEBHOOK_TIMEOUT_S, recorded with its
  answer; a failed one is retried after WEBHOOK_RETRY_DELAYS_S (same
  `webhook-id`, fresh timestamp and signature), and an endpoint failing for
  WEBHOOK_DISABLE_AFTER_S is deactivated.
- `send_due`: beat's sweep, for the retries too far off for a countdown and
  for tasks the broker lost.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import math
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from catalog.models import Media, Tenant, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from catalog.representations import MediaSerializer
from catalog.webhook_targets import Target, TargetRefused, resolve
from config.queues import enqueue_webhook_deliveries, send_webhook_deliveries

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix the specification gives every secret, not a secret
# The specification asks for 24 to 64 random bytes.
SECRET_BYTES = 32
# Of a receiver's answer, this much is kept on a failed attempt's record.
KEPT_ANSWER_BYTES = 500
MAX_ERROR_LENGTH = 2000
USER_AGENT = "StockMind-Webhooks/1"
# A delivery whose task was sent but has not run this long after it was due
# lost its task (a broker restart): beat's sweep sends it again.
LOST_TASK_AFTER = timedelta(minutes=10)
# An attempt's task is killed after this long (a DNS lookup that hangs: the
# receiver itself gets WEBHOOK_TIMEOUT_S); its claim lasts a little longer.
ATTEMPT_LIMIT_S = 120
CLAIM_HOLD = timedelta(seconds=ATTEMPT_LIMIT_S + 30)
# The most deliveries one sweep sends: the next sweep takes the rest.
SWEEP_BATCH = 1000


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def create_endpoint(tenant: Tenant, url: str, events: Sequence[str]) -> WebhookEndpoint:
    """A new endpoint of `tenant`; TargetRefused when the URL may not be sent to."""
    resolve(url)
    return WebhookEndpoint.objects.create(
        tenant=tenant, url=url, events=list(dict.fromkeys(events)), secret=new_secret()
    )


# --- Events --------------------------------------------------------------------


def emit(event: WebhookEvent, media_ids: Sequence[int]) -> list[int]:
    """Queue `event` for each of the items to every active endpoint of their
    tenant that takes it, each item as the API shows it now; returns the
    deliveries' ids. Call it in the transaction that made the change (before
    a deletion), so that the event commits with it."""
    ids = list(media_ids)
    if not ids:
        return []
    endpoints = list(
        WebhookEndpoint.objects.filter(
            is_active=True,
            events__contains=[event.value],
            tenant_id__in=Media.objects.filter(pk__in=ids).values("tenant_id"),
        )
    )
    if not endpoints:
        return []
    items = (
        Media.objects.filter(pk__in=ids).select_related("product").annotate(frame_count=Count("frames")).order_by("pk")
    )
    stamp = timezone.now()
    deliveries = []
    for media in items:
        body = json.dumps(
            {"type": event.value, "timestamp": stamp.isoformat(), "data": MediaSerializer(media).data},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        deliveries += [
            WebhookDelivery(
                tenant_id=media.tenant_id,
                endpoint=endpoint,
                message_id=f"msg_{uuid.uuid4().hex}",
                event_type=event.value,
                body=body,
                next_attempt_at=stamp,
                sent_at=stamp,
            )
            for endpoint in endpoints
            if endpoint.tenant_id == media.tenant_id
        ]
    created = WebhookDelivery.objects.bulk_create(deliveries)
    delivery_ids = [delivery.pk for delivery in created]
    enqueue_webhook_deliveries(delivery_ids)
    return delivery_ids


# --- Attempts ------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status_code: int | None  # None: no HTTP answer (refused, unreachable, timed out)
    error: str  # empty when it succeeded
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address, the certificate verified against the URL's host."""

    def __init__(self, target: Target, timeout: float):
        super().__init__(target.address, target.port, timeout=timeout, context=ssl.create_default_context())
        self._server_hostname = target.host

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_hostname)  # type: ignore[attr-defined]


def _connection(target: Target, timeout: float) -> http.client.HTTPConnection:
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target, timeout)
    return http.client.HTTPConnection(target.address, target.port, timeout=timeout)


def post(target: Target, headers: dict[str, str], body: bytes, timeout: float) -> Answer:
    """POST `body` to the target, never waiting on it past `timeout` in all:
    a watchdog shuts the socket of a receiver that dawdles (one that sends
    its answer a byte at a time would otherwise hold the worker for ever).
    Redirects are not followed (they could point anywhere)."""
    started = time.monotonic()
    connection = _connection(target, timeout)
    timed_out = threading.Event()

    def cut() -> None:
        timed_out.set()
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(timeout, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request("POST", target.path, body=body, headers={**headers, "Host": target.host_header})
        response = connection.getresponse()
        answer = response.read(KEPT_ANSWER_BYTES).decode("utf-8", "replace")
        if timed_out.is_set():  # the cut socket can read as a complete (empty) answer
            raise TimeoutError
        code = response.status
        error = "" if 200 <= code < 300 else f"HTTP {code} {response.reason}: {answer}".strip()
        return Answer(code, error, _ms_since(started))
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        if timed_out.is_set() or isinstance(exc, TimeoutError):
            return Answer(None, f"No answer within {timeout:g} s.", _ms_since(started))
        return Answer(None, f"{type(exc).__name__}: {exc}", _ms_since(started))
    finally:
        watchdog.cancel()
        connection.close()


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def signed_headers(endpoint: WebhookEndpoint, delivery: WebhookDelivery, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt: its id, its time and the signature of both with the body."""
    stamp = datetime.fromtimestamp(math.floor(now.timestamp()), UTC)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(endpoint.secret).sign(delivery.message_id, stamp, delivery.body),
    }


def _claim(delivery_id: int, now: datetime) -> WebhookDelivery | None:
    claimed = WebhookDelivery.objects.due(now).filter(pk=delivery_id).update(claimed_until=now + CLAIM_HOLD)
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)


def attempt_delivery(delivery_id: int) -> float | None:
    """One attempt at the delivery, if it is due and no other attempt holds
    it; returns the seconds until its retry when that retry is to be sent now
    with a countdown, else None (delivered, given up, not due, gone, or a
    retry far enough off for beat's sweep)."""
    now = timezone.now()
    delivery = _claim(delivery_id, now)
    if delivery is None:
        return None
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        _stop(WebhookDelivery.objects.filter(pk=delivery.pk), "Not sent: the endpoint is deactivated.")
        return None
    try:
        target = resolve(endpoint.url)
    except TargetRefused as exc:  # DNS changed since the endpoint was created
        answer = Answer(None, f"Refused: {exc.message}", 0)
    else:
        answer = post(
            target, signed_headers(endpoint, delivery, now), delivery.body.encode(), settings.WEBHOOK_TIMEOUT_S
        )
    return _record(delivery, answer, now)


def _record(delivery: WebhookDelivery, answer: Answer, attempted_at: datetime) -> float | None:
    delays = settings.WEBHOOK_RETRY_DELAYS_S
    with transaction.atomic():
        if not WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk).exists():
            return None  # its endpoint was deleted meanwhile, and its deliveries with it
        WebhookAttempt.objects.create(
            tenant_id=delivery.tenant_id,
            delivery=delivery,
            attempted_at=attempted_at,
            status_code=answer.status_code,
            error=answer.error[:MAX_ERROR_LENGTH],
            duration_ms=answer.duration_ms,
        )
        fields: dict[str, Any] = {
            "attempts": F("attempts") + 1,
            "claimed_until": None,
            "last_status_code": answer.status_code,
            "last_error": answer.error[:MAX_ERROR_LENGTH],
        }
        countdown: float | None = None  # a retry soon, sent by the caller with this countdown
        if answer.succeeded:
            fields.update(status=WebhookDelivery.Status.SUCCEEDED, delivered_at=timezone.now(), next_attempt_at=None)
            WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(failing_since=None)
        elif delivery.attempts < len(delays):
            retry_in = delays[delivery.attempts]
            # A retry soon goes now with a countdown (its task marked sent); a later one is left to beat's sweep.
            soon = retry_in <= settings.WEBHOOK_COUNTDOWN_MAX_S
            countdown = retry_in if soon else None
            fields.update(
                next_attempt_at=timezone.now() + timedelta(seconds=retry_in), sent_at=timezone.now() if soon else None
            )
        else:
            fields.update(status=WebhookDelivery.Status.FAILED, next_attempt_at=None)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
        if not answer.succeeded:
            _note_failure(delivery.endpoint, attempted_at)
    return countdown


def _note_failure(endpoint: WebhookEndpoint, attempted_at: datetime) -> None:
    """Start the endpoint's failing streak, or deactivate it when the streak has lasted WEBHOOK_DISABLE_AFTER_S."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=attempted_at)
    limit = timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_S)
    failing = WebhookEndpoint.objects.filter(
        pk=endpoint.pk, is_active=True, failing_since__lte=attempted_at - limit
    ).values_list("failing_since", flat=True)
    since = failing.first()
    if since is None:
        return
    reason = f"Deactivated: every delivery failed since {since:%Y-%m-%d %H:%M} UTC."
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_active=False, deactivated_at=timezone.now(), deactivated_reason=reason
    )
    _stop(WebhookDelivery.objects.filter(endpoint_id=endpoint.pk, status=WebhookDelivery.Status.PENDING), reason)
    logger.warning("webhook endpoint %s of tenant %s: %s", endpoint.pk, endpoint.tenant_id, reason)


def _stop(deliveries, reason: str) -> int:
    return deliveries.update(
        status=WebhookDelivery.Status.FAILED, next_attempt_at=None, claimed_until=None, last_error=reason
    )


# --- Sweeping and sending again ------------------------------------------------


def send_due(now: datetime | None = None) -> list[int]:
    """Send the deliveries due whose task was not sent (a retry too far off
    for a countdown) or was lost; returns their ids."""
    now = now or timezone.now()
    lost = Q(sent_at__isnull=True) | Q(next_attempt_at__lt=now - LOST_TASK_AFTER)
    ids = list(
        WebhookDelivery.objects.due(now)
        .filter(lost)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    if ids:
        # Due from now: a lost one is not sent again at every sweep.
        WebhookDelivery.objects.filter(pk__in=ids).update(sent_at=now, next_attempt_at=now)
        send_webhook_deliveries(ids)
    return ids


def send_again(deliveries) -> list[int]:
    """Send the deliveries again from the first attempt of the schedule (an
    operator's resend), with the same `webhook-id`; those of a deactivated
    endpoint and those under way are left alone. Returns the ids."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            deliveries.filter(endpoint__is_active=True)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .values_list("pk", flat=True)
        )
        WebhookDelivery.objects.filter(pk__in=ids).update(
            status=WebhookDelivery.Status.PENDING, attempts=0, next_attempt_at=now, sent_at=now, claimed_until=None
        )
        enqueue_webhook_deliveries(ids)
    return ids


def reactivate(endpoints) -> int:
    """Take deactivated endpoints back into use (their failed deliveries can then be sent again)."""
    return endpoints.filter(is_active=False).update(
        is_active=True, failing_since=None, deactivated_at=None, deactivated_reason=""
    )
