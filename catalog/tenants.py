"""Creating tenants and their keys (used by the management commands and the demo)."""

from __future__ import annotations

import re

from django.db import transaction

from catalog.errors import Conflict
from catalog.models import TENANT_SLUG_REGEX, ApiKey, Tenant


@transaction.atomic
def create_tenant(slug: str, name: str = "") -> tuple[Tenant, str]:
    """A new tenant with a write key; returns the key's plaintext (shown once)."""
    if not re.match(TENANT_SLUG_REGEX, slug):
        raise ValueError(f"'{slug}' is not a valid slug: use lowercase letters, digits and hyphens.")
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict(f"Tenant '{slug}' already exists.")
    tenant = Tenant.objects.create(slug=slug, name=name or slug)
    _, plaintext = ApiKey.issue(tenant, name="initial write key", scope=ApiKey.Scope.WRITE)
    return tenant, plaintext
