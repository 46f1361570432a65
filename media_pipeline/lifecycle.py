"""Status changes of media requested from outside the worker."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

from catalog.errors import Conflict
from catalog.models import Media
from media_pipeline.queue import enqueue_processing


@transaction.atomic
def requeue(queryset: QuerySet[Media]) -> list[int]:
    """Put media back to `pending` and enqueue them; returns the ids requeued.
    A live `processing` claim is left alone: the stuck sweeper releases those."""
    ids = list(
        queryset.exclude(status=Media.Status.PROCESSING).select_for_update().order_by("pk").values_list("pk", flat=True)
    )
    Media.objects.filter(pk__in=ids).update(status=Media.Status.PENDING, error="", processing_started_at=None)
    enqueue_processing(ids)
    return ids


def request_reprocess(media: Media) -> Media:
    if not requeue(Media.objects.filter(pk=media.pk)):
        raise Conflict("This media is being processed right now; reprocess it once it is done or stuck.")
    media.refresh_from_db()
    return media
