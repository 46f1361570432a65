"""Editing a tenant's thresholds, with every change recorded."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from search.models import ThresholdChange, Thresholds

EDITABLE = (
    "min_similarity",
    "near_duplicate_similarity",
    "auto_assign_confidence",
    "stuck_after_minutes",
    "hnsw_ef_search",
)


@transaction.atomic
def save_thresholds(thresholds: Thresholds, user: Any | None) -> list[ThresholdChange]:
    """Save `thresholds` (already validated) and record each value that changed."""
    previous = Thresholds.objects.select_for_update().filter(pk=thresholds.pk).first()
    thresholds.updated_by = user if user is not None and user.is_authenticated else None
    thresholds.save()
    if previous is None:
        return []
    return ThresholdChange.objects.bulk_create(
        ThresholdChange(
            thresholds=thresholds,
            field=field,
            old_value=str(getattr(previous, field)),
            new_value=str(getattr(thresholds, field)),
            changed_by=thresholds.updated_by,
        )
        for field in EDITABLE
        if getattr(previous, field) != getattr(thresholds, field)
    )
