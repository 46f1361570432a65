"""Deleting media: rows (frames and embeddings go by cascade) and stored files,
the files once the deletion has committed."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

from catalog.models import Media, VideoFrame
from catalog.storage_keys import delete_files_on_commit


def _stored_keys(media: QuerySet[Media]) -> list[str]:
    """Storage keys of the given media queryset and of their frames' thumbnails."""
    keys = list(media.values_list("storage_key", flat=True))
    keys += VideoFrame.objects.filter(media__in=media).exclude(thumbnail_key="").values_list("thumbnail_key", flat=True)
    return keys


@transaction.atomic
def delete_media(queryset: QuerySet[Media]) -> int:
    """Delete media (with their frames and embeddings, by cascade) and their files."""
    keys = _stored_keys(queryset)
    count = queryset.count()
    queryset.delete()
    delete_files_on_commit(keys)
    return count
