"""The stuck sweeper, run by Celery beat: claims that outlived their tenant's
stuck threshold are requeued while attempts remain and failed after the last;
`pending` items whose queue message was lost are enqueued again."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from catalog import transitions
from catalog.models import Media

logger = logging.getLogger(__name__)

# Rows handled per statement: bounded so one sweep never holds locks on a
# whole backlog.
SWEEP_BATCH_SIZE = 500


@dataclass(frozen=True)
class SweepReport:
    requeued: int
    failed: int
    pending_requeued: int


def requeue_stuck(ids: list[int], now: datetime) -> int:
    """Of the given items, those still stuck with attempts left go back to pending."""
    stuck = Media.objects.stuck(now).filter(pk__in=ids).exclude(attempts__gte=settings.MEDIA_MAX_ATTEMPTS)
    return len(transitions.back_to_pending(stuck))


def fail_stuck(ids: list[int], now: datetime) -> int:
    """Of the given items, those still stuck after their last attempt fail."""
    failed = 0
    last = Media.objects.stuck(now).filter(pk__in=ids).out_of_attempts()
    for pk, attempts, started in last.values_list("pk", "attempts", "processing_started_at"):
        minutes = int((now - started).total_seconds() // 60) if started else 0
        reason = (
            f"Gave up after {attempts} attempts: the last one stopped answering "
            f"(processing for {minutes} min without finishing)."
        )
        failed += len(transitions.fail(Media.objects.stuck(now).filter(pk=pk).out_of_attempts(), reason, now))
    return failed


def requeue_lost_pending(now: datetime) -> int:
    """Send again the pending items untouched for PENDING_REQUEUE_MINUTES."""
    cutoff = now - timedelta(minutes=settings.PENDING_REQUEUE_MINUTES)
    lost = Media.objects.pending().filter(updated_at__lt=cutoff).order_by("pk")
    return len(transitions.resend_pending(list(lost.values_list("pk", flat=True)[:SWEEP_BATCH_SIZE]), now))


def sweep(now: datetime | None = None) -> SweepReport:
    now = now or timezone.now()
    stuck_ids = list(Media.objects.stuck(now).values_list("pk", flat=True)[:SWEEP_BATCH_SIZE])
    report = SweepReport(
        requeued=requeue_stuck(stuck_ids, now),
        failed=fail_stuck(stuck_ids, now),
        pending_requeued=requeue_lost_pending(now),
    )
    if any((report.requeued, report.failed, report.pending_requeued)):
        logger.info("sweep: %s", report)
    return report
