"""Tenants, their API keys and their settings."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

# A slug names its tenant in object keys (clients/<slug>/...): the characters
# the key layout (catalog/storage_keys.py) accepts.
TENANT_SLUG_CHARS = r"[a-z0-9][a-z0-9-]{0,63}"
TENANT_SLUG_REGEX = rf"^{TENANT_SLUG_CHARS}$"
tenant_slug_validator = RegexValidator(
    TENANT_SLUG_REGEX, "A tenant slug is lowercase letters, digits and hyphens, starting with a letter or digit."
)


class Tenant(models.Model):
    """A retailer or brand. Created by catalog.tenants.create_tenant, which
    gives it its settings in the same transaction."""

    slug = models.SlugField(max_length=64, unique=True, validators=[tenant_slug_validator])
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [models.CheckConstraint(condition=Q(slug__regex=TENANT_SLUG_REGEX), name="tenant_slug_valid")]

    def __str__(self) -> str:
        return self.slug


class TenantOwned(models.Model):
    """Every catalog, media, embedding and search row belongs to one tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")

    class Meta:
        abstract = True


# --- API keys -------------------------------------------------------------------

API_KEY_PREFIX_LENGTH = 8
# Refresh last_used_at at most this often: a write per request would make every
# read request a database write.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


def hash_api_secret(secret: str) -> str:
    # The secret is 256 random bits, so a fast hash is as strong as a slow one
    # and keeps authentication cheap on every request.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        READ = "read", "read"
        WRITE = "write", "write (includes read)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=API_KEY_PREFIX_LENGTH, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scope = models.CharField(max_length=5, choices=Scope.choices, default=Scope.READ)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(scope__in=["read", "write"]), name="apikey_scope_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, tenant: Tenant, name: str, scope: str = Scope.READ) -> tuple[ApiKey, str]:
        """Create a key and return it with its plaintext, which is never stored."""
        key = cls(tenant=tenant, name=name, scope=scope)
        plaintext = key.set_new_secret()
        key.save()
        return key, plaintext

    def set_new_secret(self) -> str:
        """Give an unsaved key its prefix and secret hash; returns the plaintext."""
        self.prefix = secrets.token_hex(API_KEY_PREFIX_LENGTH // 2)
        secret = secrets.token_urlsafe(32)
        self.secret_hash = hash_api_secret(secret)
        return f"sm_{self.prefix}_{secret}"

    @classmethod
    def find(cls, plaintext: str) -> ApiKey | None:
        """The active key for `plaintext`, with its tenant and the tenant's
        settings, or None. Constant-time on the secret."""
        parts = plaintext.split("_", 2)
        if len(parts) != 3 or parts[0] != "sm" or len(parts[1]) != API_KEY_PREFIX_LENGTH:
            return None
        key = cls.objects.active().select_related("tenant", "tenant__settings").filter(prefix=parts[1]).first()
        if key is None or not hmac.compare_digest(key.secret_hash, hash_api_secret(parts[2])):
            return None
        return key

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def allows(self, scope: str) -> bool:
        return self.scope == self.Scope.WRITE or scope == self.Scope.READ

    def revoke(self) -> None:
        ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.refresh_from_db(fields=["revoked_at"])

    def touch(self, now: datetime | None = None) -> None:
        now = now or timezone.now()
        if self.last_used_at and now - self.last_used_at < API_KEY_TOUCH_INTERVAL:
            return
        ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
        self.last_used_at = now


# --- settings -------------------------------------------------------------------

# pgvector's own bounds of hnsw.ef_search are 1..1000; below 10 recall collapses.
HNSW_EF_SEARCH_RANGE = (10, 1000)


def _unit_interval() -> list:
    return [MinValueValidator(0.0), MaxValueValidator(1.0)]


class SearchCutoff(models.TextChoices):
    """API.md's `cutoff`: which results a search keeps besides those at or
    above the minimum similarity. `relative` also drops every result scoring
    more than the tenant's `relative_cutoff` below the best result of the
    ranking (the first page's first one, on every page): a shopper sees the
    close matches and not the long tail a fixed threshold lets through when
    the best result itself scores low."""

    NONE = "none"
    RELATIVE = "relative"


class TenantSettings(models.Model):
    """A tenant's knobs, which operators tune in the admin (every change is
    recorded as a TenantSettingsChange). One row per tenant, created with it."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="settings")
    min_similarity = models.FloatField(
        default=0.2, validators=_unit_interval(), help_text="Search hits below this cosine similarity are dropped."
    )
    near_duplicate_similarity = models.FloatField(
        default=0.95,
        validators=_unit_interval(),
        help_text="Two media at or above this similarity are near-duplicates.",
    )
    auto_assign_confidence = models.FloatField(
        default=0.9,
        validators=_unit_interval(),
        help_text="The recognizer assigns a product on its own at or above this confidence (1 turns that off).",
    )
    stuck_after_minutes = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 60)],
        help_text="A media item processing for longer than this is stuck.",
    )
    hnsw_ef_search = models.PositiveIntegerField(
        default=100,
        validators=[MinValueValidator(HNSW_EF_SEARCH_RANGE[0]), MaxValueValidator(HNSW_EF_SEARCH_RANGE[1])],
        help_text="pgvector hnsw.ef_search for this tenant's queries: higher is more accurate and slower.",
    )
    search_cutoff = models.CharField(
        max_length=10,
        choices=SearchCutoff.choices,
        default=SearchCutoff.NONE,
        help_text="The cutoff of searches that name none: relative also drops results far below the best one.",
    )
    relative_cutoff = models.FloatField(
        default=0.1,
        validators=_unit_interval(),
        help_text="With the relative cutoff, results scoring more than this below the best one are dropped.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # The settings an operator edits, in the order the admin shows them; each
    # change of one is recorded.
    EDITABLE = (
        "min_similarity",
        "near_duplicate_similarity",
        "auto_assign_confidence",
        "stuck_after_minutes",
        "hnsw_ef_search",
        "search_cutoff",
        "relative_cutoff",
    )

    class Meta:
        verbose_name = "tenant settings"
        verbose_name_plural = "tenant settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(min_similarity__gte=0, min_similarity__lte=1)
                & Q(near_duplicate_similarity__gte=0, near_duplicate_similarity__lte=1)
                & Q(auto_assign_confidence__gte=0, auto_assign_confidence__lte=1),
                name="tenant_settings_similarities_in_unit_interval",
            ),
            models.CheckConstraint(
                condition=Q(relative_cutoff__gte=0, relative_cutoff__lte=1) & Q(search_cutoff__in=["none", "relative"]),
                name="tenant_settings_cutoff_valid",
            ),
            models.CheckConstraint(
                condition=Q(hnsw_ef_search__gte=HNSW_EF_SEARCH_RANGE[0], hnsw_ef_search__lte=HNSW_EF_SEARCH_RANGE[1]),
                name="tenant_settings_ef_search_in_range",
            ),
            models.CheckConstraint(
                condition=Q(stuck_after_minutes__gte=1), name="tenant_settings_stuck_after_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"settings of {self.tenant.slug}"

    def cutoff_gap(self, cutoff: str | None = None) -> float | None:
        """How far below the best result a search with `cutoff` (None: this
        tenant's default) keeps results; None: no relative cutoff."""
        return self.relative_cutoff if (cutoff or self.search_cutoff) == SearchCutoff.RELATIVE else None

    @classmethod
    def of(cls, tenant: Tenant) -> TenantSettings:
        """`tenant`'s settings, as loaded with it (ApiKey.find and the pipeline
        load them along: no query). A tenant without a row, made outside
        catalog.tenants.create_tenant (a shell, a fixture, an older release
        running beside this one during an upgrade), gets the defaults, stored:
        every reader sees the same values the selectors' SQL falls back to."""
        try:
            return tenant.settings
        except cls.DoesNotExist:
            row, _ = cls.objects.get_or_create(tenant=tenant)
            tenant.settings = row
            return row

    @classmethod
    def _setting(cls, name: str) -> models.Field:
        field = cls._meta.get_field(name)
        if not isinstance(field, models.Field) or name not in cls.EDITABLE:
            raise ValueError(f"'{name}' is not a tenant setting.")
        return field

    @classmethod
    def default(cls, name: str) -> Any:
        """The value a new tenant starts with for setting `name`."""
        return cls._setting(name).get_default()

    @classmethod
    def label(cls, name: str) -> str:
        return str(cls._setting(name).verbose_name)


class TenantSettingsChange(models.Model):
    """One edit of one setting: who, when, from what to what."""

    tenant_settings = models.ForeignKey(TenantSettings, on_delete=models.CASCADE, related_name="changes")
    field = models.CharField(max_length=50)
    old_value = models.CharField(max_length=50)
    new_value = models.CharField(max_length=50)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.tenant_settings.tenant.slug}.{self.field}: {self.old_value} -> {self.new_value}"
