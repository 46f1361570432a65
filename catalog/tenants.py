"""Creating tenants: every creator (the command, the admin, the demo) goes
through `create_tenant`, which gives the tenant its settings in the same
transaction, so every tenant has exactly one row of settings."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction

from catalog.errors import Conflict
from catalog.models import TENANT_SLUG_REGEX, Tenant, TenantSettings


@transaction.atomic
def create_tenant(tenant: Tenant, **settings: Any) -> Tenant:
    """Save the new, unsaved `tenant` with its settings: the defaults, or
    `settings` (field values of TenantSettings) where given."""
    if not re.match(TENANT_SLUG_REGEX, tenant.slug):
        raise ValueError(f"'{tenant.slug}' is not a valid slug: use lowercase letters, digits and hyphens.")
    if Tenant.objects.filter(slug=tenant.slug).exists():
        raise Conflict(f"Tenant '{tenant.slug}' already exists.")
    tenant.name = tenant.name or tenant.slug
    tenant.save()
    TenantSettings.objects.create(tenant=tenant, **settings)
    return tenant
