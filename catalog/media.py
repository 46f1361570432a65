"""Deleting media: rows (frames and embeddings go by cascade) and stored files,
the files once the deletion has committed; or only what processing made of
them (vectors, frames, thumbnails), which a failed item must not keep."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

from catalog.models import Embedding, Media, VideoFrame, WebhookEvent
from catalog.storage_keys import delete_files_on_commit
from catalog.webhooks import emit


def _thumbnail_keys(media: QuerySet[Media]) -> set[str]:
    """The thumbnails processing stored for the given media: a video's frames'
    (its own is its first frame's) and an image's."""
    keys = set(VideoFrame.objects.filter(media__in=media).values_list("thumbnail_key", flat=True))
    keys |= set(media.values_list("thumbnail_key", flat=True))
    return keys - {""}


def _stored_keys(media: QuerySet[Media]) -> list[str]:
    """Storage keys of the given media queryset and of their thumbnails."""
    return [*media.values_list("storage_key", flat=True), *_thumbnail_keys(media)]


def unlink_copies(media_ids: list[int]) -> int:
    """The copies of these items no longer name them (they are going, or
    failed): their links are cleared, tier and all; how many."""
    return Media.objects.filter(duplicate_of__in=media_ids).update(
        duplicate_of=None, duplicate_kind="", duplicate_similarity=None
    )


@transaction.atomic
def delete_media(queryset: QuerySet[Media]) -> int:
    """Delete media (with their frames and embeddings, by cascade) and their
    files; `media.deleted` goes out with each item as it was."""
    keys = _stored_keys(queryset)
    ids = list(queryset.values_list("pk", flat=True))
    emit(WebhookEvent.MEDIA_DELETED, ids)
    unlink_copies(ids)
    Media.objects.filter(pk__in=ids).delete()
    delete_files_on_commit(keys)
    return len(ids)


def delete_results(media_ids: list[int]) -> int:
    """Delete the vectors and frames of the given media, and the frames'
    thumbnails once the transaction commits; returns how many rows went."""
    vectors = Embedding.objects.filter(media_id__in=media_ids)
    frames = VideoFrame.objects.filter(media_id__in=media_ids)
    delete_files_on_commit(frames.exclude(thumbnail_key="").values_list("thumbnail_key", flat=True))
    # The vectors first: the frames' deletion would otherwise look for theirs.
    deleted, _ = vectors.delete()
    return deleted + frames.delete()[0]
