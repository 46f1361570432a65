"""Duplicates, in three tiers, found when an item is processed: it points at
the oldest earlier item of its tenant it duplicates (`duplicate_of`), and
says how (`duplicate_kind`):

- `exact`: the same bytes (sha256);
- `near_identical`: the same picture re-encoded, resized or lightly cropped.
  For an image: an earlier image whose perceptual hash is within
  CANDIDATE_BITS (in a large tenant, one that shares a band of the hash:
  EXACT_SCAN_MAX_IMAGES), or its nearest by CLIP, and whose thumbnail
  `same_picture` aligns with this one's
  (media_pipeline/fingerprints.py). For a video: an earlier video of about
  the same length whose kept frames' hashes, frame by frame in time, nearly
  all match;
- `similar` (images): the nearest earlier image by CLIP at or above the
  tenant's near-duplicate similarity.

The first two do not depend on the model; the third does, and with the
small random model of tests and the demo nearly every pair of images scores
above 0.95. Only earlier items (a smaller id) are candidates, so the newer
of two copies points at the older, and every copy at the first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Abs
from PIL import Image

from catalog.models import (
    EMBEDDING_TABLE,
    HALFVEC,
    HALFVEC_VECTOR,
    MEDIA_TABLE,
    Media,
    TenantSettings,
    VideoFrame,
)
from media_pipeline.embedder import current_model_name
from media_pipeline.fingerprints import CANDIDATE_BITS, HASH_BITS, Picture, hash_distance, same_picture

logger = logging.getLogger(__name__)

# Perceptual-hash candidates verified per image, nearest first; the CLIP
# nearest is verified too when at least this similar (a copy of a picture,
# crops included, scores above 0.95 with CLIP's real weights).
HASH_CANDIDATES = 3
CLIP_CANDIDATE_FLOOR = 0.9
# Two videos compare when their lengths differ by at most this share.
VIDEO_LENGTH_TOLERANCE = 0.05
VIDEO_CANDIDATES = 10
# Later unlinked images an original verifies as copies that were ready
# before it (concurrent workers, a retry), nearest by hash first.
LATER_CANDIDATES = 5
# Frames match when their hashes differ in at most this many bits (a
# re-encoded frame moves a few); videos match when this share of the
# frames of each finds one at about the same time.
FRAME_BITS = 10
FRAMES_MATCHING = 0.8
FRAME_TIME_TOLERANCE_MS = 1000


@dataclass(frozen=True)
class Match:
    original_id: int
    kind: str
    similarity: float


# A tenant with more hashed images than this has its candidates read through
# indexes, so that the check costs about the same in a tenant of any size
# (bench/duplicates.py): the hash bands' GIN index (catalog migration 0020)
# and the tenant's own HNSW index (search/tenant_indexes.py). A smaller tenant
# is read whole, which costs less than that there and finds every hash within
# CANDIDATE_BITS, the crops' too.
EXACT_SCAN_MAX_IMAGES = 2_000
# The nearest earlier vectors read for an image's nearest earlier image by
# CLIP, before their media are checked: any not ready (being processed again)
# is passed over.
NEAREST_READ = 10

# An image's nearest earlier image of its tenant by CLIP. The tenant and the
# model reach the query as constants (Django binds parameters on the client),
# and the image's vector as an InitPlan's value, so that a tenant with an HNSW index of its own
# has it scanned in distance order (iteratively, past the later vectors) for
# the NEAREST_READ nearest earlier vectors of images, of which the first whose
# image is ready is kept (ordered by the index's halfvec expression, ranked
# by the float32 distance); any other tenant is read exactly, as searches read
# them (search/query.py). The vectors are read alone first, on nothing a
# B-tree could serve (`media_id + 0`), so that the planner cannot start from
# the tenant's media or its ids instead.
NEAREST_EARLIER_IMAGE = """
    SELECT near.media_id, 1 - near.distance
    FROM (
        SELECT media_id, vector <=> ({own}) AS distance
        FROM {embeddings}
        WHERE tenant_id = %(tenant)s AND model_name = %(model)s AND frame_id IS NULL AND media_id + 0 < %(id)s
        ORDER BY {order}
        LIMIT {read}
    ) near
    JOIN {media} m ON m.id = near.media_id AND m.kind = 'image' AND m.status = 'ready'
    ORDER BY near.distance
    LIMIT 1
"""
# The image's own vector, read by the statement itself.
OWN_VECTOR = (
    "SELECT vector{cast} FROM {embeddings} WHERE media_id = %(id)s AND frame_id IS NULL AND model_name = %(model)s"
)
BY_INDEX = f"{HALFVEC_VECTOR} <=> ({{own_halfvec}})"
BY_VECTOR = "distance"  # float32 throughout: what an exact scan reads


def _nearest_query(order: str) -> str:
    own = OWN_VECTOR.format(cast="", embeddings=EMBEDDING_TABLE)
    own_halfvec = OWN_VECTOR.format(cast=f"::{HALFVEC}", embeddings=EMBEDDING_TABLE)
    return NEAREST_EARLIER_IMAGE.format(
        own=own,
        embeddings=EMBEDDING_TABLE,
        media=MEDIA_TABLE,
        order=order.format(own_halfvec=own_halfvec),
        read=NEAREST_READ,
    )


# An image's nearest images of the tenant by perceptual hash: the earlier
# ones, or the later ones not linked yet. A small tenant's hashes are read
# whole from the (tenant, phash) index; a large tenant's only where they share
# one of the four bands with this hash (see catalog migration 0020).
NEAREST_HASHES = """
    SELECT id, bit_count((phash # %(hash)s)::bit(64)) AS bits
    FROM {table}
    WHERE tenant_id = %(tenant)s AND phash IS NOT NULL AND status = 'ready' AND {side} {bands}
      AND bit_count((phash # %(hash)s)::bit(64)) <= %(bits)s
    ORDER BY bits, id
    LIMIT %(limit)s
"""
BANDS = "AND stockmind_phash_bands(tenant_id, phash) && stockmind_phash_bands(%(tenant)s, %(hash)s)"
EARLIER, LATER_UNLINKED = "id < %(id)s", "id > %(id)s AND duplicate_of_id IS NULL"


def _hash_query(side: str, large: bool) -> str:
    return NEAREST_HASHES.format(table=MEDIA_TABLE, side=side, bands=BANDS if large else "")


def large_tenants(tenant_ids: set[int]) -> set[int]:
    """Those of the tenants with more than EXACT_SCAN_MAX_IMAGES hashed images
    (counted no further than that, from the (tenant, phash) index)."""
    large = set()
    with connection.cursor() as cursor:
        for tenant_id in tenant_ids:
            cursor.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {MEDIA_TABLE} WHERE tenant_id = %s AND phash IS NOT NULL"  # noqa: S608
                " LIMIT %s) AS hashed",
                [tenant_id, EXACT_SCAN_MAX_IMAGES + 1],
            )
            if cursor.fetchone()[0] > EXACT_SCAN_MAX_IMAGES:
                large.add(tenant_id)
    return large


def nearest_by_clip(images: Sequence[Media], *, exact: bool = False) -> dict[int, tuple[int, float]]:
    """media id -> (media id, cosine similarity) of the closest earlier image
    of its tenant, by the model searches read, with the tenant's own
    `hnsw_ef_search` as its searches. `exact` reads every vector even where
    the tenant has an index (bench/duplicates.py compares the two)."""
    model = current_model_name()
    found: dict[int, tuple[int, float]] = {}
    query = _nearest_query(BY_VECTOR if exact else BY_INDEX)
    ef_search = None
    with transaction.atomic(), connection.cursor() as cursor:
        if exact:
            cursor.execute("SET LOCAL enable_indexscan = off")
        for media in images:
            wanted = TenantSettings.of(media.tenant).hnsw_ef_search
            if not exact and wanted != ef_search:
                ef_search = wanted
                cursor.execute(
                    "SELECT set_config('hnsw.ef_search', %s, true),"
                    " set_config('hnsw.iterative_scan', 'strict_order', true)",
                    [str(ef_search)],
                )
            cursor.execute(query, {"tenant": media.tenant_id, "model": model, "id": media.pk})
            row = cursor.fetchone()
            if row is not None:
                found[media.pk] = (row[0], float(row[1]))
    return found


def nearest_by_hash(media: Media, large: bool, side: str = EARLIER, limit: int = HASH_CANDIDATES) -> list[int]:
    """The ids of the tenant's ready images nearest to `media` by perceptual
    hash, within CANDIDATE_BITS, on `side` of it (EARLIER or LATER_UNLINKED)."""
    params = {"hash": media.phash, "tenant": media.tenant_id, "id": media.pk, "bits": CANDIDATE_BITS, "limit": limit}
    with connection.cursor() as cursor:
        cursor.execute(_hash_query(side, large), params)
        return [media_id for media_id, _ in cursor.fetchall()]


def _exact(media: Media) -> Match | None:
    if not media.sha256:
        return None
    earlier = (
        Media.objects.filter(tenant_id=media.tenant_id, sha256=media.sha256, pk__lt=media.pk)
        .exclude(status=Media.Status.FAILED)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    return None if earlier is None else Match(earlier, Media.DuplicateKind.EXACT, 1.0)


class _Thumbnails:
    """The thumbnails one duplicate check reads, each read and made ready for
    comparisons once (a batch's images share their candidates)."""

    def __init__(self) -> None:
        self._pictures: dict[str, Picture | None] = {}

    def get(self, key: str) -> Picture | None:
        if key not in self._pictures:
            self._pictures[key] = self._read(key)
        return self._pictures[key]

    @staticmethod
    def _read(key: str) -> Picture | None:
        try:
            with default_storage.open(key, "rb") as file:
                image = Image.open(file)
                image.load()
                return Picture(image)
        except (OSError, ValueError):  # gone, or not a picture: no comparison
            logger.warning("thumbnail %s could not be read for the duplicate check", key)
            return None


def _same_pictures(media: Media, candidates: list[int], thumbnails: _Thumbnails) -> Iterator[tuple[int, float]]:
    """Those of the candidates (in their order) that are the same picture as
    `media`, each with the share of perceptual-hash bits alike."""
    if media.phash is None or not media.thumbnail_key or not candidates:
        return
    mine = thumbnails.get(media.thumbnail_key)
    if mine is None:
        return
    others = Media.objects.filter(pk__in=candidates, tenant_id=media.tenant_id).exclude(thumbnail_key="")
    found = {other_id: (key, phash) for other_id, key, phash in others.values_list("pk", "thumbnail_key", "phash")}
    for other_id in candidates:
        if other_id not in found:
            continue
        thumbnail_key, phash = found[other_id]
        theirs = thumbnails.get(thumbnail_key)
        if theirs is not None and same_picture(mine, theirs):
            yield other_id, (1 - hash_distance(media.phash, phash) / HASH_BITS if phash is not None else 0.0)


def _near_identical_image(media: Media, candidates: list[int], thumbnails: _Thumbnails) -> Match | None:
    """The first of the candidates (nearest by hash first) that is the same picture as `media`."""
    first = next(_same_pictures(media, candidates, thumbnails), None)
    return None if first is None else Match(first[0], Media.DuplicateKind.NEAR_IDENTICAL, first[1])


def _frames(media_id: int) -> list[tuple[int, int]]:
    frames = VideoFrame.objects.filter(media_id=media_id, phash__isnull=False).order_by("index")
    return [(at, phash) for at, phash in frames.values_list("timestamp_ms", "phash") if phash is not None]


def _frames_match(mine: list[tuple[int, int]], theirs: list[tuple[int, int]]) -> float:
    """The share of `mine`'s frames with a frame of `theirs` at about the same
    time and nearly the same hash."""
    if not mine or not theirs:
        return 0.0
    matched = sum(
        any(
            abs(at - other_at) <= FRAME_TIME_TOLERANCE_MS and hash_distance(phash, other_phash) <= FRAME_BITS
            for other_at, other_phash in theirs
        )
        for at, phash in mine
    )
    return matched / len(mine)


def _near_identical_video(media: Media) -> Match | None:
    if not media.duration_ms:
        return None
    mine = _frames(media.pk)
    slack = media.duration_ms * VIDEO_LENGTH_TOLERANCE
    earlier = (
        Media.objects.filter(
            tenant_id=media.tenant_id,
            kind=Media.Kind.VIDEO,
            status=Media.Status.READY,
            pk__lt=media.pk,
            duration_ms__gte=media.duration_ms - slack,
            duration_ms__lte=media.duration_ms + slack,
        )
        # The closest in length first: a tenant of many clips of one length still finds the copy's.
        .order_by(Abs(F("duration_ms") - media.duration_ms), "pk")
        .values_list("pk", flat=True)[:VIDEO_CANDIDATES]
    )
    for other_id in earlier:
        theirs = _frames(other_id)
        share = min(_frames_match(mine, theirs), _frames_match(theirs, mine))
        if share >= FRAMES_MATCHING:
            return Match(other_id, Media.DuplicateKind.NEAR_IDENTICAL, share)
    return None


# The tiers, strongest first: a copy of a copy is at most as alike as the weaker link.
STRENGTH: dict[str, int] = {
    Media.DuplicateKind.EXACT: 3,
    Media.DuplicateKind.NEAR_IDENTICAL: 2,
    Media.DuplicateKind.SIMILAR: 1,
}


def _through_root(match: Match) -> Match:
    """The match re-pointed at its original's own original, so every copy
    names the first, when the original's link is at least as strong (an
    exact copy of a near-identical copy is a near-identical copy of the
    first); otherwise the match as found."""
    link = Media.objects.filter(pk=match.original_id).values_list("duplicate_of_id", "duplicate_kind").first()
    if link is None or link[0] is None or STRENGTH.get(link[1], 0) < STRENGTH[match.kind]:
        return match
    return Match(link[0], match.kind, match.similarity)


def _save(media: Media, match: Match | None) -> Match | None:
    if match is None:
        if media.duplicate_of_id is not None or media.duplicate_kind:
            Media.objects.filter(pk=media.pk).update(duplicate_of=None, duplicate_kind="", duplicate_similarity=None)
        return None
    match = _through_root(match)
    Media.objects.filter(pk=media.pk).update(
        duplicate_of=match.original_id, duplicate_kind=match.kind, duplicate_similarity=match.similarity
    )
    return match


def image_candidates(media: Media, clip: tuple[int, float] | None, large: bool) -> list[int]:
    """The earlier images `media` may be a near-identical copy of, to verify
    nearest first: those nearest by hash, and the nearest by CLIP when it is
    at least CLIP_CANDIDATE_FLOOR alike."""
    candidates = nearest_by_hash(media, large) if media.phash is not None else []
    if clip is not None and clip[1] >= CLIP_CANDIDATE_FLOOR and clip[0] not in candidates:
        candidates.append(clip[0])
    return candidates


def _match(media: Media, nearest: dict[int, tuple[int, float]], large: bool, thumbnails: _Thumbnails) -> Match | None:
    """What `media` duplicates among the earlier items, the strongest tier first."""
    match = _exact(media)
    if match is not None:
        return match
    if media.kind == Media.Kind.VIDEO:
        return _near_identical_video(media)
    clip = nearest.get(media.pk)
    match = _near_identical_image(media, image_candidates(media, clip, large), thumbnails)
    threshold = TenantSettings.of(media.tenant).near_duplicate_similarity
    if match is None and clip is not None and clip[1] >= threshold:
        match = Match(clip[0], Media.DuplicateKind.SIMILAR, clip[1])
    return match


def _later_copies(media: Media, large: bool, thumbnails: _Thumbnails) -> list[tuple[int, str, float]]:
    """Later ready items not linked to anything that are exact or
    near-identical copies of `media`: they were ready before it, so found
    no original when they were processed. (id, kind, alike) each."""
    unlinked = Media.objects.filter(
        tenant_id=media.tenant_id, status=Media.Status.READY, pk__gt=media.pk, duplicate_of__isnull=True
    )
    found: list[tuple[int, str, float]] = []
    exact: set[int] = set()
    if media.sha256:
        exact = set(unlinked.filter(sha256=media.sha256).values_list("pk", flat=True))
        found += [(pk, Media.DuplicateKind.EXACT, 1.0) for pk in sorted(exact)]
    if media.kind == Media.Kind.IMAGE and media.phash is not None:
        later = [pk for pk in nearest_by_hash(media, large, LATER_UNLINKED, LATER_CANDIDATES) if pk not in exact]
        same = _same_pictures(media, later, thumbnails)
        found += [(pk, Media.DuplicateKind.NEAR_IDENTICAL, alike) for pk, alike in same]
    return found


def link_duplicates(items: Sequence[Media]) -> dict[int, Match | None]:
    """Find and store what each processed item duplicates, and link to it the
    later copies that were ready first; returns each item's match. An item
    whose check fails is logged and left unlinked: it stays ready."""
    images = [media for media in items if media.kind == Media.Kind.IMAGE]
    nearest = nearest_by_clip(images) if images else {}
    large = large_tenants({media.tenant_id for media in images})
    thumbnails = _Thumbnails()
    found: dict[int, Match | None] = {}
    for media in items:
        try:
            found[media.pk] = match = _save(media, _match(media, nearest, media.tenant_id in large, thumbnails))
            if match is None:  # an original: the copies that beat it here point at it
                for later_id, kind, alike in _later_copies(media, media.tenant_id in large, thumbnails):
                    Media.objects.filter(pk=later_id).update(
                        duplicate_of=media.pk, duplicate_kind=kind, duplicate_similarity=alike
                    )
        except Exception:
            logger.exception("the duplicate check of media %s failed", media.pk)
            found[media.pk] = None
    return found
