from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
sku_validator = RegexValidator(
    SKU_PATTERN,
    "A SKU is 1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


TENANT_SLUG_REGEX = r"^[a-z0-9][a-z0-9-]{0,63}$"
tenant_slug_validator = RegexValidator(
    TENANT_SLUG_REGEX, "A tenant slug is lowercase letters, digits and hyphens, starting with a letter or digit."
)


class Tenant(models.Model):
    # The slug names the tenant in object keys (clients/<slug>/...), so it keeps
    # to the characters the key layout accepts.
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
        """The active key for `plaintext`, or None. Constant-time on the secret."""
        parts = plaintext.split("_", 2)
        if len(parts) != 3 or parts[0] != "sm" or len(parts[1]) != API_KEY_PREFIX_LENGTH:
            return None
        key = cls.objects.active().select_related("tenant").filter(prefix=parts[1]).first()
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


# --- catalog --------------------------------------------------------------------


class Product(TenantOwned):
    sku = models.CharField(max_length=64, validators=[sku_validator])
    title = models.CharField(max_length=300)
    category = models.CharField(max_length=100, blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "sku"], name="product_sku_unique_per_tenant"),
            models.CheckConstraint(condition=Q(sku__regex=SKU_PATTERN), name="product_sku_valid"),
        ]
        indexes = [models.Index(fields=["tenant", "category"], name="product_tenant_category")]

    def __str__(self) -> str:
        return f"{self.sku} — {self.title}"


class Media(TenantOwned):
    class Kind(models.TextChoices):
        IMAGE = "image"
        VIDEO = "video"

    class Source(models.TextChoices):
        UPLOAD = "upload"
        S3 = "s3"

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"

    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.CASCADE, related_name="media")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    source = models.CharField(max_length=6, choices=Source.choices, default=Source.UPLOAD)
    storage_key = models.CharField(max_length=512)
    original_filename = models.CharField(max_length=255, blank=True, default="")
    content_type = models.CharField(max_length=100)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, blank=True, default="")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # The id of the task that holds the `processing` claim: a redelivery of that
    # same task (worker lost, transient retry) may take the claim again; any
    # other delivery may not.
    claim_token = models.CharField(max_length=64, blank=True, default="", editable=False)
    # The older media of the same tenant this one nearly duplicates, if any.
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="near_duplicates"
    )
    duplicate_similarity = models.FloatField(null=True, blank=True)
    # For objects that arrived through S3 events: the object version this row
    # describes, so a repeated event is recognised and a newer one wins.
    s3_etag = models.CharField(max_length=100, blank=True, default="")
    s3_sequencer = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        verbose_name_plural = "media"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "storage_key"], name="media_storage_key_unique_per_tenant"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "processing", "ready", "failed"]), name="media_status_valid"
            ),
            models.CheckConstraint(condition=Q(kind__in=["image", "video"]), name="media_kind_valid"),
            models.CheckConstraint(condition=Q(source__in=["upload", "s3"]), name="media_source_valid"),
            models.CheckConstraint(condition=Q(size__gte=0), name="media_size_not_negative"),
        ]
        indexes = [
            models.Index(fields=["tenant", "status"], name="media_tenant_status"),
            models.Index(fields=["tenant", "sha256"], name="media_tenant_sha256"),
            models.Index(fields=["status", "processing_started_at"], name="media_status_started"),
            # The dashboard's last 24 hours (throughput, processing times) read
            # from this index alone.
            models.Index(
                fields=["processed_at"],
                include=["status", "tenant", "processing_started_at"],
                name="media_processed_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"


class VideoFrame(TenantOwned):
    media = models.ForeignKey(Media, on_delete=models.CASCADE, related_name="frames")
    index = models.PositiveIntegerField()
    timestamp_ms = models.PositiveIntegerField()
    thumbnail_key = models.CharField(max_length=512, blank=True, default="")
    is_keyframe = models.BooleanField(default=False)

    class Meta:
        ordering = ["media", "index"]
        constraints = [models.UniqueConstraint(fields=["media", "index"], name="videoframe_index_unique_per_media")]

    def __str__(self) -> str:
        return f"frame {self.index} of media #{self.media_id} @ {self.timestamp_ms} ms"
