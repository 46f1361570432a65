"""A tenant's webhook endpoints and the deliveries of its events to them
(API.md "Webhooks"; the sending is catalog/webhooks.py)."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q

from catalog.models.tenants import TenantOwned


class WebhookEvent(models.TextChoices):
    MEDIA_READY = "media.ready"
    MEDIA_FAILED = "media.failed"
    MEDIA_DELETED = "media.deleted"


class WebhookEndpoint(TenantOwned):
    url = models.URLField(max_length=2000)
    events = models.JSONField(help_text="The event types sent to this URL (WebhookEvent values).")
    # The signing key as the Standard Webhooks specification writes it:
    # "whsec_" + base64. Kept in clear: signing needs the key itself.
    secret = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The first failed attempt since the last success: an endpoint failing for
    # WEBHOOK_DISABLE_AFTER_S is deactivated.
    failing_since = models.DateTimeField(null=True, blank=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deactivated_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "is_active"], name="webhook_endpoint_tenant_active")]

    def __str__(self) -> str:
        return self.url


class WebhookDeliveryQuerySet(models.QuerySet["WebhookDelivery"]):
    def due(self, now: datetime) -> WebhookDeliveryQuerySet:
        """Pending, its time come, and no attempt under way (none, or one whose claim lapsed)."""
        return self.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now).filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
        )


class WebhookDelivery(TenantOwned):
    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for its next attempt
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # out of attempts, or its endpoint was deactivated

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    # `webhook-id`: the same on every attempt, so a receiver can drop a repeat.
    message_id = models.CharField(max_length=40, unique=True)
    event_type = models.CharField(max_length=32, choices=WebhookEvent.choices)
    # The exact body sent on every attempt (the item as it was when the event happened).
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts since it was (re)sent.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a task was sent for the next attempt (None: beat's sweep sends it when due).
    sent_at = models.DateTimeField(null=True, blank=True)
    # An attempt holds its delivery until then; one whose worker died is taken again after it.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The sweep's question: which pending deliveries are due.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id}"


class WebhookAttempt(TenantOwned):
    """One POST of a delivery: what the receiver answered, or why there was no answer."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["attempted_at", "id"]
        indexes = [models.Index(fields=["delivery", "attempted_at"], name="webhook_attempt_delivery")]

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
