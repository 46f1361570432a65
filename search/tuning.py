"""What a tenant's settings do: previews of proposed values against the
tenant's data as it is now (the settings page shows them before saving), and
saving with the effects a change has beyond the row (a lowered auto-assign
confidence assigns the review list's items that now reach it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from catalog.models import (
    EMBEDDING_DIMENSIONS,
    Embedding,
    Media,
    SearchCutoff,
    TenantSettings,
    TenantSettingsChange,
)
from catalog.tenant_settings import save_settings
from media_pipeline.embedder import current_model_name
from search.query import EXACT_SCAN_MAX_VECTORS
from search.recognizer.review import apply_threshold, waiting_at

# The near-duplicate and similarity previews compare every pair among the
# tenant's newest images, up to this many: 5,000 images are 12.5 million
# dot products of 512-d vectors, well under a second.
PREVIEW_MAX_IMAGES = 5_000
PREVIEW_CHUNK = 1_000
# The cutoff's preview counts what it keeps of this many best results.
CUTOFF_PREVIEW_RESULTS = 10


@dataclass(frozen=True)
class SavedSettings:
    changes: list[TenantSettingsChange]
    assigned: int  # waiting media the recognizer assigned under a lowered auto-assign threshold


@transaction.atomic
def save_with_effects(tenant_settings: TenantSettings, user: Any | None) -> SavedSettings:
    """Save `tenant_settings` (already validated), recording each change; a
    lower auto-assign confidence assigns the review list's items that now reach it."""
    previous, changes = save_settings(tenant_settings, user)
    assigned = 0
    if tenant_settings.auto_assign_confidence < previous.auto_assign_confidence:
        assigned = apply_threshold(tenant_settings.tenant, tenant_settings.auto_assign_confidence)
    return SavedSettings(changes, assigned)


# --- previews ------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    field: str
    label: str
    current_value: str
    proposed_value: str
    at_current: str
    at_proposed: str

    @property
    def changed(self) -> bool:
        return self.current_value != self.proposed_value


def nearest_image_similarities(
    tenant_id: int, model_name: str, limit: int = PREVIEW_MAX_IMAGES, neighbours: int = 1
) -> np.ndarray:
    """For each of the tenant's newest `limit` images, the cosine similarities
    of its `neighbours` nearest other images, nearest first: shape (images,
    neighbours), -inf where there are fewer others (the first column is what
    near-duplicate linking compares)."""
    rows = (
        Embedding.objects.filter(
            tenant_id=tenant_id, model_name=model_name, frame__isnull=True, media__kind=Media.Kind.IMAGE
        )
        .order_by("-media_id")
        .values_list("vector", flat=True)[:limit]
    )
    vectors = np.asarray(list(rows), dtype=np.float32).reshape(-1, EMBEDDING_DIMENSIONS)
    if len(vectors) < 2:
        return np.zeros((0, neighbours), dtype=np.float32)
    nearest = np.full((len(vectors), neighbours), -np.inf, dtype=np.float32)
    kept = min(neighbours, len(vectors) - 1)
    for start in range(0, len(vectors), PREVIEW_CHUNK):
        block = vectors[start : start + PREVIEW_CHUNK] @ vectors.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf  # not itself
        top = -np.sort(-np.partition(block, -kept, axis=1)[:, -kept:], axis=1)
        nearest[start : start + len(block), :kept] = top
    return nearest


def _share(count: int, total: int) -> str:
    return f"{count} of {total} ({count / total:.0%})" if total else "no images yet"


def preview(current: TenantSettings, proposed: TenantSettings, now: datetime | None = None) -> list[Effect]:
    """What the current and the proposed values of a tenant's settings do
    with its data as it is now."""
    now = now or timezone.now()
    tenant = current.tenant
    neighbours = nearest_image_similarities(tenant.pk, current_model_name(), neighbours=CUTOFF_PREVIEW_RESULTS)
    nearest = neighbours[:, 0]
    sampled = f" (its newest {PREVIEW_MAX_IMAGES})" if len(nearest) == PREVIEW_MAX_IMAGES else ""

    def duplicates(value: float, _: TenantSettings) -> str:
        return f"{_share(int((nearest >= value).sum()), len(nearest))} images have a near-duplicate{sampled}"

    def similar(value: float, _: TenantSettings) -> str:
        return (
            f"'More like this' finds at least one other image for "
            f"{_share(int((nearest >= value).sum()), len(nearest))} images{sampled}"
        )

    waiting = waiting_at(tenant, 0.0)  # every item in the review list

    def assignments(value: float, _: TenantSettings) -> str:
        return f"{waiting_at(tenant, value)} of the {waiting} media in the review list reach it"

    def stuck(value: int, _: TenantSettings) -> str:
        count = Media.objects.stuck(now, after_minutes=value).filter(tenant=tenant).count()
        return f"{count} media count as stuck"

    vectors = Embedding.objects.filter(tenant=tenant, model_name=current_model_name()).count()

    def ef_search(value: int, _: TenantSettings) -> str:
        if vectors <= EXACT_SCAN_MAX_VECTORS:
            return f"no effect: {vectors} vectors are searched exactly (up to {EXACT_SCAN_MAX_VECTORS})"
        return f"index scans weigh at least {value} candidates among {vectors} vectors"

    def kept_results(cutoff: str, gap: float, min_similarity: float) -> str:
        if not len(neighbours):
            return "no images yet"
        kept = neighbours >= min_similarity
        if cutoff == SearchCutoff.RELATIVE:
            kept &= neighbours >= neighbours[:, :1] - gap
        return (
            f"'More like this' keeps on average {kept.sum(axis=1).mean():.1f} of its {CUTOFF_PREVIEW_RESULTS} best "
            f"results, over {len(neighbours)} images{sampled}"
        )

    def cutoff(value: str, values: TenantSettings) -> str:
        return kept_results(value, values.relative_cutoff, values.min_similarity)

    def relative_cutoff(value: float, values: TenantSettings) -> str:
        suffix = "" if values.search_cutoff == SearchCutoff.RELATIVE else " (for searches asking for relative)"
        return kept_results(SearchCutoff.RELATIVE, value, values.min_similarity) + suffix

    described: dict[str, Callable[[Any, TenantSettings], str]] = {
        "min_similarity": similar,
        "near_duplicate_similarity": duplicates,
        "auto_assign_confidence": assignments,
        "stuck_after_minutes": stuck,
        "hnsw_ef_search": ef_search,
        "search_cutoff": cutoff,
        "relative_cutoff": relative_cutoff,
    }
    effects = []
    for field in TenantSettings.EDITABLE:
        old, new = getattr(current, field), getattr(proposed, field)
        describe = described[field]
        effects.append(
            Effect(
                field=field,
                label=TenantSettings.label(field),
                current_value=str(old),
                proposed_value=str(new),
                at_current=describe(old, current),
                at_proposed=describe(new, proposed) if new != old else "(unchanged)",
            )
        )
    return effects
