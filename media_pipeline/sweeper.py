"""The stuck sweeper, run by Celery beat: claims that outlived their tenant's
stuck threshold are requeued while attempts remain and failed after the last;
`pending` items whose queue message was lost are enqueued again."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import DateTimeField, ExpressionWrapper, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog.models import Media
from media_pipeline.lifecycle import back_to_pending
from media_pipeline.queue import enqueue_processing
from search.models import Thresholds

logger = logging.getLogger(__name__)

# Rows handled per statement: bounded so one sweep never holds locks on a
# whole backlog.
SWEEP_BATCH_SIZE = 500
DEFAULT_STUCK_MINUTES = Thresholds._meta.get_field("stuck_after_minutes").default


@dataclass(frozen=True)
class SweepReport:
    requeued: int
    failed: int
    pending_requeued: int


def stuck_media(now: datetime):
    """`processing` items older than their tenant's stuck threshold, oldest first."""
    minutes = Coalesce(
        Subquery(Thresholds.objects.filter(tenant=OuterRef("tenant")).values("stuck_after_minutes")[:1]),
        Value(DEFAULT_STUCK_MINUTES),
    )
    deadline = ExpressionWrapper(
        Value(now) - F("stuck_after") * Value(timedelta(minutes=1)), output_field=DateTimeField()
    )
    return (
        Media.objects.filter(status=Media.Status.PROCESSING)
        .annotate(stuck_after=minutes)
        .filter(processing_started_at__lt=deadline)
        .order_by("processing_started_at", "pk")
    )


def requeue_stuck(ids: list[int]) -> int:
    return len(
        back_to_pending(
            Media.objects.filter(pk__in=ids, status=Media.Status.PROCESSING, attempts__lt=settings.MEDIA_MAX_ATTEMPTS)
        )
    )


def fail_stuck(ids: list[int], now: datetime) -> int:
    failed = 0
    rows = Media.objects.filter(
        pk__in=ids, status=Media.Status.PROCESSING, attempts__gte=settings.MEDIA_MAX_ATTEMPTS
    ).values_list("pk", "attempts", "processing_started_at")
    for pk, attempts, started in rows:
        minutes = int((now - started).total_seconds() // 60) if started else 0
        reason = (
            f"Gave up after {attempts} attempts: the last one stopped answering "
            f"(processing for {minutes} min without finishing)."
        )
        failed += Media.objects.filter(pk=pk, status=Media.Status.PROCESSING).update(
            status=Media.Status.FAILED, error=reason, claim_token="", processed_at=now
        )
    return failed


def requeue_lost_pending(now: datetime) -> int:
    cutoff = now - timedelta(minutes=settings.PENDING_REQUEUE_MINUTES)
    ids = list(
        Media.objects.filter(status=Media.Status.PENDING, updated_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:SWEEP_BATCH_SIZE]
    )
    Media.objects.filter(pk__in=ids, status=Media.Status.PENDING).update(updated_at=now)
    enqueue_processing(ids)
    return len(ids)


def sweep(now: datetime | None = None) -> SweepReport:
    now = now or timezone.now()
    stuck_ids = list(stuck_media(now).values_list("pk", flat=True)[:SWEEP_BATCH_SIZE])
    report = SweepReport(
        requeued=requeue_stuck(stuck_ids),
        failed=fail_stuck(stuck_ids, now),
        pending_requeued=requeue_lost_pending(now),
    )
    if any((report.requeued, report.failed, report.pending_requeued)):
        logger.info("sweep: %s", report)
    return report
