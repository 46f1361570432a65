"""Editing a tenant's settings, with every change recorded: who, when, from
what to what."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from catalog.models import TenantSettings, TenantSettingsChange


@transaction.atomic
def save_settings(
    tenant_settings: TenantSettings, user: Any | None
) -> tuple[TenantSettings, list[TenantSettingsChange]]:
    """Save `tenant_settings` (already validated) and record each value that
    changed; returns the settings as they were before, and the changes."""
    previous = TenantSettings.objects.select_for_update().get(pk=tenant_settings.pk)
    tenant_settings.updated_by = user if user is not None and user.is_authenticated else None
    tenant_settings.save()
    changes = TenantSettingsChange.objects.bulk_create(
        TenantSettingsChange(
            tenant_settings=tenant_settings,
            field=field,
            old_value=str(getattr(previous, field)),
            new_value=str(getattr(tenant_settings, field)),
            changed_by=tenant_settings.updated_by,
        )
        for field in TenantSettings.EDITABLE
        if getattr(previous, field) != getattr(tenant_settings, field)
    )
    return previous, changes
