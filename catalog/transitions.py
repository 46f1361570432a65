"""Every change of a media item's status, in one place, so that the rules
cannot differ by caller (DESIGN.md: pending -> processing -> ready | failed).

- `claim`: pending -> processing, for one task (its id is the claim token);
  the same task delivered again may take its claim again, up to
  MEDIA_MAX_ATTEMPTS claims, then the item fails.
- `mark_ready`: processing -> ready, in the transaction that stored its vectors.
- `fail`: any -> failed with a reason. A failed item never keeps vectors or
  frames, whichever path failed it: search can never return it.
- `back_to_pending` (and `requeue`, `request_reprocess`, `release_claimed`):
  -> pending without a claim, sent to the workers after commit. The vectors of
  an earlier run stay searchable until the new run replaces them.

Claims are conditional updates on locked rows, so two workers handed the
same item never both process it, and a task that lost its claim (the sweeper
requeued it) cannot record a result.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from catalog.errors import Conflict
from catalog.media import delete_results, unlink_copies
from catalog.models import Media, MediaQuerySet, WebhookEvent
from catalog.webhooks import emit
from config.queues import enqueue_processing

logger = logging.getLogger(__name__)

# The longest reason kept on a row: a traceback's message can be huge.
MAX_REASON_LENGTH = 2000


def _lock(media: MediaQuerySet) -> list[int]:
    """Lock the rows `media` selects, in id order (no deadlock between two
    callers), and return the ids of those it still selects once locked: a row
    may have changed while this waited for its lock."""
    # Locked through their ids: the selection may join tables (a changelist's
    # select_related) that FOR UPDATE cannot lock.
    locked = list(
        Media.objects.filter(pk__in=media.values("pk")).select_for_update().order_by("pk").values_list("pk", flat=True)
    )
    return list(media.filter(pk__in=locked).order_by("pk").values_list("pk", flat=True))


def claim(media_ids: Iterable[int], token: str) -> list[Media]:
    """Take the `processing` claim of the given items for task `token`; returns
    those claimed (with tenant and product), in id order. An item is claimed
    when it is pending, or when `token` itself holds it with attempts left (the
    same task delivered again: its worker was lost). One that `token` holds
    after MEDIA_MAX_ATTEMPTS claims is failed: an item that kills its worker
    every time is not retried forever. Gone, done, failed or held by another
    task: not claimed."""
    ids = list(media_ids)
    pending = Media.objects.pending()
    redelivered = Media.objects.held_by(token).filter(attempts__lt=settings.MEDIA_MAX_ATTEMPTS)
    with transaction.atomic():
        claimed = _lock((pending | redelivered).filter(pk__in=ids))
        Media.objects.filter(pk__in=claimed).update(
            status=Media.Status.PROCESSING,
            claim_token=token,
            processing_started_at=timezone.now(),
            attempts=F("attempts") + 1,
            error="",
        )
    exhausted = Media.objects.held_by(token).filter(pk__in=ids).exclude(pk__in=claimed).out_of_attempts()
    for media_id, attempts in exhausted.values_list("pk", "attempts"):
        reason = f"Gave up after {attempts} attempts: the worker processing it stopped each time."
        fail(Media.objects.held_by(token).filter(pk=media_id), reason)
    return list(Media.objects.select_related("tenant", "product").filter(pk__in=claimed).order_by("pk"))


# What processing made of an item that a failed one must not keep (its
# vectors and frames go too: delete_results). An image keeps its thumbnail,
# the operators' picture of what failed; a video's was its first frame's.
FAILED_KEEPS_NOTHING: dict[str, Any] = {
    "phash": None,
    "duplicate_of": None,
    "duplicate_kind": "",
    "duplicate_similarity": None,
}


def lock_claims(media_ids: Iterable[int], token: str) -> dict[int, int | None]:
    """Lock the rows whose claim `token` still holds, for the transaction that
    stores their results; returns each one's product id as it is now (the
    recognizer or an operator may have assigned one meanwhile)."""
    held = Media.objects.held_by(token).filter(pk__in=list(media_ids)).select_for_update().order_by("pk")
    return dict(held.values_list("pk", "product_id"))


def mark_ready(media_id: int, token: str, **fields: Any) -> bool:
    """processing -> ready with `fields` (its size, duration, a decoding
    warning), if `token` still holds the claim; False when it was lost. Call it
    in the transaction that stored the item's vectors and frames, after
    `lock_claims`."""
    ready = bool(
        Media.objects.held_by(token)
        .filter(pk=media_id)
        .update(status=Media.Status.READY, claim_token="", processed_at=timezone.now(), **fields)
    )
    if ready:
        emit(WebhookEvent.MEDIA_READY, [media_id])
    return ready


def fail(media: MediaQuerySet, reason: str, now: datetime | None = None) -> list[int]:
    """Mark the items `media` selects failed with `reason`, and delete their
    vectors and frames (the frames' thumbnails once this commits): search
    never returns a failed item. Returns the ids failed. Select with the
    state the caller expects (`Media.objects.held_by(token)`, `.stuck(now)`,
    `.not_processing()`): an item that left it meanwhile is not touched."""
    with transaction.atomic():
        ids = _lock(media)
        if ids:
            delete_results(ids)
            failed = Media.objects.filter(pk__in=ids)
            failed.update(
                status=Media.Status.FAILED,
                error=reason[:MAX_REASON_LENGTH],
                claim_token="",
                processed_at=now or timezone.now(),
                **FAILED_KEEPS_NOTHING,
            )
            failed.filter(kind=Media.Kind.VIDEO).update(thumbnail_key="")
            unlink_copies(ids)
            emit(WebhookEvent.MEDIA_FAILED, ids)
    for media_id in ids:
        logger.info("media %s failed: %s", media_id, reason)
    return ids


def back_to_pending(media: MediaQuerySet, *, send: bool = True) -> list[int]:
    """Put the items `media` selects back to `pending`, without a claim, and
    (with `send`) enqueue them after commit; returns their ids."""
    with transaction.atomic():
        ids = _lock(media)
        Media.objects.filter(pk__in=ids).update(
            status=Media.Status.PENDING,
            error="",
            claim_token="",
            processing_started_at=None,
            updated_at=timezone.now(),
        )
        if send:
            enqueue_processing(ids)
    return ids


def requeue(media: MediaQuerySet) -> list[int]:
    """Reprocess the selected items on request. A live `processing` claim is
    left alone: the stuck sweeper releases those."""
    return back_to_pending(media.not_processing())


def request_reprocess(media: Media) -> Media:
    """One item again, on a client's or an operator's request."""
    if not requeue(Media.objects.filter(pk=media.pk)):
        raise Conflict("This media is being processed right now; reprocess it once it is done or stuck.")
    media.refresh_from_db()
    return media


def release_claimed(media_ids: Sequence[int], token: str) -> list[int]:
    """Put the items that `token` still holds back to `pending`, unclaimed (its
    task gave up on a transient error); returns their ids. They are not sent:
    the sweeper sends pending items that waited PENDING_REQUEUE_MINUTES."""
    return back_to_pending(Media.objects.held_by(token).filter(pk__in=list(media_ids)), send=False)


def resend_pending(media_ids: Sequence[int], now: datetime | None = None) -> list[int]:
    """Send pending items again (their message was lost), marking them touched
    so that the next sweep waits PENDING_REQUEUE_MINUTES before another resend."""
    with transaction.atomic():
        ids = _lock(Media.objects.pending().filter(pk__in=list(media_ids)))
        Media.objects.filter(pk__in=ids).update(updated_at=now or timezone.now())
        enqueue_processing(ids)
    return ids
