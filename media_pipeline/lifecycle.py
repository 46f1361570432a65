"""Status changes of media requested from outside the worker."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.errors import Conflict
from catalog.models import Media
from media_pipeline.queue import enqueue_processing


@transaction.atomic
def back_to_pending(queryset: QuerySet[Media], *, send: bool = True) -> list[int]:
    """Put the selected media back to `pending`, without a claim, and (with
    `send`) enqueue them after commit; returns their ids."""
    locked = Media.objects.filter(pk__in=queryset.values("pk")).select_for_update().order_by("pk")
    ids = list(locked.values_list("pk", flat=True))
    Media.objects.filter(pk__in=ids).update(
        status=Media.Status.PENDING, error="", claim_token="", processing_started_at=None, updated_at=timezone.now()
    )
    if send:
        enqueue_processing(ids)
    return ids


def requeue(queryset: QuerySet[Media]) -> list[int]:
    """Reprocess media on request. A live `processing` claim is left alone: the
    stuck sweeper releases those."""
    return back_to_pending(queryset.exclude(status=Media.Status.PROCESSING))


def request_reprocess(media: Media) -> Media:
    if not requeue(Media.objects.filter(pk=media.pk)):
        raise Conflict("This media is being processed right now; reprocess it once it is done or stuck.")
    media.refresh_from_db()
    return media
