"""How a processed item ends, for both pipelines: ready (then duplicates
are linked and `media_ready` is sent), failed with the reason a client reads,
or skipped (not this task's to process)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from catalog import transitions
from catalog.errors import FileRejected
from catalog.models import Media
from catalog.signals import media_ready
from config.transient import TRANSIENT_ERRORS
from media_pipeline.duplicates import link_duplicates

logger = logging.getLogger(__name__)

MISSING_FILE = "The stored file is missing."


@dataclass(frozen=True)
class Outcome:
    media_id: int
    status: str  # "ready", "failed" or "skipped" (not ours to process)
    detail: str = ""


def rejection(media_id: int, exc: Exception) -> str:
    """The reason an item failed on `exc`: the file's fault, or a bug (logged).
    Transient errors (storage, database) are raised on, so the task retries."""
    if isinstance(exc, TRANSIENT_ERRORS):
        raise exc
    if isinstance(exc, FileRejected):
        return exc.message
    if isinstance(exc, FileNotFoundError):
        return MISSING_FILE
    logger.error("processing media %s failed", media_id, exc_info=exc)
    return f"Processing error: {type(exc).__name__}: {exc}"


def failed(media: Media, token: str, exc: Exception) -> Outcome:
    reason = rejection(media.pk, exc)
    transitions.fail(Media.objects.held_by(token).filter(pk=media.pk), reason)
    return Outcome(media.pk, "failed", reason)


def claim_lost(media: Media) -> Outcome:
    logger.warning("media %s lost its claim while processing: result discarded", media.pk)
    return Outcome(media.pk, "skipped", "claim lost")


def finished(stored: Sequence[Media]) -> dict[int, Outcome]:
    """After the results are stored: duplicates, then
    `media_ready` for the apps that act on ready items."""
    fresh = Media.objects.select_related("tenant", "tenant__settings").in_bulk([media.pk for media in stored])
    items = [fresh[media.pk] for media in stored if media.pk in fresh]
    link_duplicates(items)
    for receiver, error in media_ready.send_robust(sender=Media, media=items):
        if isinstance(error, Exception):
            # The items are ready and stay so; a receiver's work (a prediction)
            # is redone by its own next run over the tenant.
            logger.error("%s failed on media %s", receiver, [m.pk for m in items], exc_info=error)
    return {media.pk: Outcome(media.pk, "ready") for media in stored}
