"""Products, their media (images and videos), the sampled frames of videos,
and the vectors of both. A media item's status changes only through
catalog/transitions.py; the selectors below name the states it is read in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import DateTimeField, ExpressionWrapper, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from pgvector.django import VectorField

from catalog.models.tenants import TenantOwned, TenantSettings

SKU_CHARS = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
SKU_PATTERN = rf"^{SKU_CHARS}$"
sku_validator = RegexValidator(
    SKU_PATTERN,
    "A SKU is 1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


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
        indexes = [
            models.Index(fields=["tenant", "category"], name="product_tenant_category"),
            # A search's attribute value (search/filters.py: `attributes @> '{"color": "red"}'`) while a
            # tenant's vector rows are not all filled with their product's attributes; then the rows'.
            GinIndex(fields=["attributes"], opclasses=["jsonb_path_ops"], name="product_attributes_gin"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} — {self.title}"


class MediaQuerySet(models.QuerySet["Media"]):
    def pending(self) -> MediaQuerySet:
        return self.filter(status=Media.Status.PENDING)

    def ready(self) -> MediaQuerySet:
        return self.filter(status=Media.Status.READY)

    def failed(self) -> MediaQuerySet:
        return self.filter(status=Media.Status.FAILED)

    def not_failed(self) -> MediaQuerySet:
        return self.exclude(status=Media.Status.FAILED)

    def processing(self) -> MediaQuerySet:
        return self.filter(status=Media.Status.PROCESSING)

    def not_processing(self) -> MediaQuerySet:
        """Those that no worker holds: reprocessing them cannot race a claim."""
        return self.exclude(status=Media.Status.PROCESSING)

    def held_by(self, token: str) -> MediaQuerySet:
        """Those whose `processing` claim task `token` holds."""
        return self.filter(status=Media.Status.PROCESSING, claim_token=token)

    def out_of_attempts(self) -> MediaQuerySet:
        """Claimed MEDIA_MAX_ATTEMPTS times already: the next claim fails them."""
        return self.filter(attempts__gte=settings.MEDIA_MAX_ATTEMPTS)

    def unassigned(self) -> MediaQuerySet:
        """Ready media without a product: what the recognizer predicts for."""
        return self.ready().filter(product__isnull=True)

    def stuck(self, now: datetime, after_minutes: int | None = None) -> MediaQuerySet:
        """`processing` items older than their tenant's stuck threshold (or
        than `after_minutes`, to preview another), oldest first."""
        minutes: Coalesce | Value = Coalesce(
            Subquery(TenantSettings.objects.filter(tenant=OuterRef("tenant")).values("stuck_after_minutes")[:1]),
            Value(TenantSettings.default("stuck_after_minutes")),
        )
        if after_minutes is not None:
            minutes = Value(after_minutes)
        deadline = ExpressionWrapper(
            Value(now) - F("stuck_after") * Value(timedelta(minutes=1)), output_field=DateTimeField()
        )
        return (
            self.processing()
            .annotate(stuck_after=minutes)
            .filter(processing_started_at__lt=deadline)
            .order_by("processing_started_at", "pk")
        )


class DuplicateKind(models.TextChoices):
    EXACT = "exact"  # the same bytes
    NEAR_IDENTICAL = "near_identical"  # the same picture re-encoded, resized or lightly cropped
    SIMILAR = "similar"  # CLIP similarity at or above the tenant's near-duplicate threshold


class Media(TenantOwned):
    DuplicateKind = DuplicateKind

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
    # What processing keeps besides the vectors: the console's picture (an
    # image's own thumbnail, a video's first kept frame's) and an image's
    # perceptual hash (media_pipeline/fingerprints.py).
    thumbnail_key = models.CharField(max_length=600, blank=True, default="", db_default="")
    phash = models.BigIntegerField(null=True, blank=True, help_text="The image's perceptual hash (64 bits).")
    # The older media of the same tenant this one duplicates, if any, and how
    # (media_pipeline/duplicates.py).
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="near_duplicates"
    )
    duplicate_kind = models.CharField(
        max_length=14, choices=DuplicateKind.choices, blank=True, default="", db_default=""
    )
    duplicate_similarity = models.FloatField(
        null=True,
        blank=True,
        help_text="1 for exact copies; for near-identical ones the share of perceptual hash bits alike; "
        "for similar ones the CLIP similarity.",
    )
    # For objects that arrived through S3 events: the object version this row
    # describes, so a repeated event is recognised and a newer one wins.
    s3_etag = models.CharField(max_length=100, blank=True, default="")
    s3_sequencer = models.CharField(max_length=64, blank=True, default="")

    objects = MediaQuerySet.as_manager()

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
            models.CheckConstraint(
                condition=Q(duplicate_kind__in=["", "exact", "near_identical", "similar"]),
                name="media_duplicate_kind_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "status"], name="media_tenant_status"),
            models.Index(fields=["tenant", "sha256"], name="media_tenant_sha256"),
            # The console's duplicate pairs, newest first, without reading the others.
            models.Index(fields=["-id"], condition=Q(duplicate_of__isnull=False), name="media_duplicates"),
            # The near-identical lookup reads a tenant's hashes from this index alone.
            models.Index(
                fields=["tenant", "phash"],
                include=["id", "status"],
                condition=Q(phash__isnull=False),
                name="media_tenant_phash",
            ),
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


# Read by raw SQL (the dashboard, metrics, near-duplicates).
MEDIA_TABLE = Media._meta.db_table


class VideoFrame(TenantOwned):
    media = models.ForeignKey(Media, on_delete=models.CASCADE, related_name="frames")
    index = models.PositiveIntegerField()
    timestamp_ms = models.PositiveIntegerField()
    thumbnail_key = models.CharField(max_length=512, blank=True, default="")
    is_keyframe = models.BooleanField(default=False)
    phash = models.BigIntegerField(null=True, blank=True, help_text="The frame's perceptual hash (64 bits).")

    class Meta:
        ordering = ["media", "index"]
        constraints = [models.UniqueConstraint(fields=["media", "index"], name="videoframe_index_unique_per_media")]

    def __str__(self) -> str:
        return f"frame {self.index} of media #{self.media_id} @ {self.timestamp_ms} ms"


# --- vectors ----------------------------------------------------------------------

# CLIP ViT-B/32's projection size: the vector column's, which every model in
# CLIP_MODEL must produce (media_pipeline/embedder.py refuses others).
EMBEDDING_DIMENSIONS = 512
# Named here because raw SQL (search/query.py, the tenant indexes, metrics)
# reads the table.
EMBEDDING_TABLE = "catalog_embedding"
# A large tenant's own HNSW index is over this expression (search/indexes.py):
# a query ordered by `<HALFVEC_VECTOR> <=> %(query)s::halfvec(512)` can read it.
HALFVEC = f"halfvec({EMBEDDING_DIMENSIONS})"
HALFVEC_VECTOR = f"vector::{HALFVEC}"


class Embedding(TenantOwned):
    """One vector per image, or per sampled frame of a video. One table for both,
    so that one nearest-neighbour query covers images and frames. A `failed`
    media item has none (catalog/transitions.py deletes them).

    Each large tenant has an HNSW index over its own vectors and a GIN index
    over their attributes, kept by search/tenant_indexes.py (not by
    migrations: which ones exist follows the data); there is none over every
    tenant's (migration 0011). The vector is stored in the row, not in TOAST
    (search migration 0005), and so are the category and attributes
    (migration 0016), where a filter reads them."""

    media = models.ForeignKey(Media, on_delete=models.CASCADE, related_name="embeddings")
    frame = models.ForeignKey(VideoFrame, null=True, blank=True, on_delete=models.CASCADE, related_name="embeddings")
    # Denormalized from media.product so a search needs no join to group by product.
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The product's category ('' without a product), so that a search's
    # category filter is a condition on the row, checked inside the HNSW scan.
    # Kept by database triggers (migration 0010), whatever writes the rows or
    # the product; NULL only on rows from before that migration, until
    # `manage.py fill_embedding_categories` fills them.
    category = models.CharField(max_length=100, null=True, blank=True, editable=False)  # noqa: DJ001 - NULL: not filled yet
    # And its attributes ({} without a product), for a search's attribute
    # filter (values and ranges), kept by the same triggers (migration 0015);
    # NULL: not filled yet.
    attributes = models.JSONField(null=True, blank=True, editable=False)
    model_name = models.CharField(max_length=200)
    vector = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = EMBEDDING_TABLE
        constraints = [
            # One vector per image (frame NULL) or per frame, per model: a re-run
            # of a task cannot add a second set.
            models.UniqueConstraint(
                fields=["media", "frame", "model_name"], name="embedding_unique_per_source", nulls_distinct=False
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "product"], name="embedding_tenant_product"),
            # A filter that keeps few of a tenant's rows is answered from these.
            models.Index(fields=["tenant", "category"], name="embedding_tenant_category"),
            # Which tenants still have rows to fill (empty once they are filled).
            models.Index(
                fields=["tenant"],
                name="embedding_fields_unfilled",
                condition=Q(category__isnull=True) | Q(attributes__isnull=True),
            ),
            # Throughput (embeddings per second) for /metrics.
            models.Index(fields=["created_at"], name="embedding_created_at"),
        ]

    def __str__(self) -> str:
        where = f" frame {self.frame_id}" if self.frame_id else ""
        return f"embedding of media #{self.media_id}{where}"

    @classmethod
    def build(cls, media: Media, frames: Sequence[VideoFrame | None], vectors: Any, model_name: str) -> list[Embedding]:
        """Unsaved rows of `media`, one per (frame, vector), the frame None for
        an image's vector; tenant and product are the media's."""
        return [
            cls(
                tenant_id=media.tenant_id,
                media=media,
                frame=frame,
                product_id=media.product_id,
                model_name=model_name,
                vector=vector,
            )
            for frame, vector in zip(frames, vectors, strict=True)
        ]
