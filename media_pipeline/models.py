from django.db import models


class RejectedS3Event(models.Model):
    """An S3 event the bridge could not turn into work and will not retry: an
    unknown or inactive tenant, a key outside the layout, an unreadable message.
    Kept for operators; the SQS message itself is deleted."""

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    message_id = models.CharField(max_length=100, blank=True, default="")
    event_name = models.CharField(max_length=100, blank=True, default="")
    bucket = models.CharField(max_length=255, blank=True, default="")
    key = models.CharField(max_length=1024, blank=True, default="")
    tenant_slug = models.CharField(max_length=64, blank=True, default="", db_index=True)
    reason = models.TextField()
    body = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "rejected S3 event"

    def __str__(self) -> str:
        return f"{self.event_name or 'message'} {self.key or self.message_id}: {self.reason[:60]}"
