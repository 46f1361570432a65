"""The S3 -> SQS -> Celery bridge (DESIGN.md flow 2).

Each S3 event becomes, idempotently on (tenant, key) and the object's
ETag/sequencer, a Media row and one processing task; a removed object removes
its media. An SQS message is deleted only once its work is recorded and
enqueued: after a crash it is delivered again and recognised. Events that can
never succeed are recorded as RejectedS3Event and deleted; messages that keep
failing for other reasons reach the dead-letter queue by the redrive policy.
"""

from __future__ import annotations

import logging
import signal
from collections import Counter
from typing import TYPE_CHECKING

from django.db import close_old_connections, connection, transaction

from catalog import transitions
from catalog.aws import sqs_client
from catalog.media import delete_media
from catalog.models import Media, Product, Tenant
from catalog.storage_keys import KeyRejected, MediaKey, is_app_written, parse_media_key
from config.queues import send_processing
from config.transient import TRANSIENT_ERRORS
from media_pipeline.models import RejectedS3Event
from media_pipeline.s3_events import MalformedMessage, ObjectEvent, newer, parse_message

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)

MAX_STORED_BODY = 10_000


class Rejected(Exception):
    """This event can never be processed; record it and let the message go."""


def _tenant_for(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise Rejected(f"No tenant '{slug}'.")
    if not tenant.is_active:
        raise Rejected(f"Tenant '{slug}' is inactive.")
    return tenant


def handle_event(event: ObjectEvent) -> str:
    """Record one object event; returns what was done."""
    if is_app_written(event.key):
        return "ignored"  # our own unassigned uploads and thumbnails
    try:
        key = parse_media_key(event.key)
    except KeyRejected as exc:
        raise Rejected(str(exc)) from exc
    tenant = _tenant_for(key.tenant_slug)
    if event.created:
        return _object_created(tenant, key, event)
    if event.removed:
        return _object_removed(tenant, event)
    return "ignored"


def _object_created(tenant: Tenant, key: MediaKey, event: ObjectEvent) -> str:
    with transaction.atomic():
        product, _ = Product.objects.get_or_create(tenant=tenant, sku=key.sku, defaults={"title": key.sku})
        media, created = Media.objects.select_for_update().get_or_create(
            tenant=tenant,
            storage_key=event.key,
            defaults={
                "product": product,
                "kind": key.kind,
                "source": Media.Source.S3,
                "original_filename": key.name[:255],
                "content_type": key.format.content_type,
                "size": event.size,
                "s3_etag": event.etag,
                "s3_sequencer": event.sequencer,
            },
        )
        if created:
            action, to_send = "created", [media.pk]
        elif media.source == Media.Source.UPLOAD:
            action, to_send = "ignored", []  # a direct upload stored by the API itself
        elif event.etag == media.s3_etag and event.sequencer in ("", media.s3_sequencer):
            # The same object version again: a redelivered or duplicated event.
            # A bridge stopped before deleting the message may have stopped before
            # enqueueing too, so a still-pending item is sent again (the worker's
            # claim makes a second delivery a no-op).
            action, to_send = "duplicate", [media.pk] if media.status == Media.Status.PENDING else []
        elif newer(event.sequencer, media.s3_sequencer):
            Media.objects.filter(pk=media.pk).update(
                size=event.size, s3_etag=event.etag, s3_sequencer=event.sequencer, sha256="", width=None, height=None
            )
            # Even mid-processing: the claim is cleared, so the run on the old
            # version is discarded when it tries to store its result.
            transitions.back_to_pending(Media.objects.filter(pk=media.pk))
            action, to_send = "replaced", []  # back_to_pending enqueues after commit
        else:
            action, to_send = "stale", []
    send_processing(to_send)
    return action


def _object_removed(tenant: Tenant, event: ObjectEvent) -> str:
    media = Media.objects.filter(tenant=tenant, storage_key=event.key, source=Media.Source.S3).first()
    if media is None:
        return "ignored"
    if event.sequencer and media.s3_sequencer and not newer(event.sequencer, media.s3_sequencer):
        return "stale"  # an older deletion than the version we hold
    delete_media(Media.objects.filter(pk=media.pk))
    return "removed"


def _storable(text: str) -> str:
    # A record of what was refused must itself be storable: PostgreSQL text
    # takes no NUL character.
    return str(text).replace("\x00", "\\x00")


def _reject(message: MessageTypeDef, reason: str, event: ObjectEvent | None = None) -> None:
    slug = ""
    if event is not None and event.key.startswith("clients/"):
        slug = event.key.split("/")[1][:64]
    RejectedS3Event.objects.create(
        message_id=_storable(message.get("MessageId", ""))[:100],
        event_name=_storable(event.name) if event else "",
        bucket=_storable(event.bucket) if event else "",
        key=_storable(event.key)[:1024] if event else "",
        tenant_slug=_storable(slug),
        reason=_storable(reason),
        body=_storable(str(message.get("Body", "")))[:MAX_STORED_BODY],
    )
    logger.warning("rejected S3 event %s %s: %s", message.get("MessageId"), event.key if event else "", reason)


def process_message(message: MessageTypeDef) -> list[str]:
    """Everything one SQS message asks for. Raises on transient trouble (the
    message must stay); permanent trouble is recorded and returned as 'rejected'."""
    try:
        events = parse_message(message.get("Body", ""))
    except MalformedMessage as exc:
        _reject(message, str(exc))
        return ["rejected"]
    if not events:
        return ["test-event"]
    outcomes = []
    for event in events:
        try:
            outcomes.append(handle_event(event))
        except Rejected as exc:
            _reject(message, str(exc), event)
            outcomes.append("rejected")
    return outcomes


class Bridge:
    def __init__(self, queue_url: str, *, wait_seconds: int = 20, batch_size: int = 10, client=None):
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self.batch_size = batch_size
        self.client = client or sqs_client()
        self.stopping = False
        self.unavailable = False  # a message of the batch in hand met a transient error

    def receive(self) -> list[MessageTypeDef]:
        response = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["ApproximateReceiveCount"],
        )
        return response.get("Messages", [])

    def delete(self, message: MessageTypeDef) -> None:
        self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def handle(self, message: MessageTypeDef) -> bool:
        """Process one message and delete it when its work is safe; True if deleted."""
        message_id = message.get("MessageId")
        receives = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
        try:
            outcomes = process_message(message)
        except TRANSIENT_ERRORS as exc:
            logger.warning("message %s (receive %s) left for retry: %s", message_id, receives, exc)
            self.unavailable = True
            return False
        except Exception:
            logger.exception(
                "message %s (receive %s) failed; left for retry, then the dead-letter queue", message_id, receives
            )
            return False
        self.delete(message)
        logger.info("message %s: %s", message_id, ", ".join(outcomes))
        return True

    def run_once(self) -> Counter:
        """One batch. Raises a transient error, receiving nothing, while the
        database is down: every receive counts toward the dead-letter queue,
        so an outage must not use them up. A batch whose message meets a
        transient error stops there; the rest come back after their
        visibility timeout."""
        connection.ensure_connection()
        counts: Counter = Counter()
        self.unavailable = False
        for message in self.receive():
            if self.unavailable:
                counts["left"] += 1
                continue
            counts["deleted" if self.handle(message) else "left"] += 1
        counts["unavailable"] = int(self.unavailable)
        return counts

    def run(self, max_batches: int | None = None) -> None:
        """Poll until SIGTERM/SIGINT (the batch in hand is finished first)."""

        def stop(signum, frame) -> None:
            logger.info("signal %s: finishing the batch in hand, then stopping", signum)
            self.stopping = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        batches, pauses = 0, 0
        try:
            while not self.stopping and (max_batches is None or batches < max_batches):
                close_old_connections()  # a long-lived process: drop broken or expired connections
                try:
                    unavailable = self.run_once()["unavailable"]
                except TRANSIENT_ERRORS as exc:
                    logger.warning("SQS or database unavailable (%s); trying again", exc)
                    unavailable = True
                pauses = pauses + 1 if unavailable else 0
                if pauses:
                    self._pause(pauses)
                batches += 1
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        logger.info("bridge stopped")

    def _pause(self, times: int) -> None:
        """Back off while a service is down: 1, 2, 4 ... at most 30 seconds."""
        import time

        deadline = time.monotonic() + min(30, 2 ** (times - 1))
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(0.2)
