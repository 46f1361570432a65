from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from pgvector.django import HnswIndex, VectorField

from catalog.models import Media, Product, Tenant, TenantOwned, VideoFrame

EMBEDDING_DIMENSIONS = 512
HNSW_EF_SEARCH_RANGE = (10, 1000)
# Build parameters of the index shared by all tenants (`reindex --rebuild` can
# set others); each large tenant's own index has its own (search/tenant_indexes.py).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
TENANT_INDEX_PREFIX = "embedding_hnsw_t"


def tenant_index_name(tenant_id: int, model_name: str) -> str:
    """The name of the HNSW index over one tenant's vectors of one model: the
    model is hashed, as a name may hold any characters and an index name only 63."""
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:8]
    return f"{TENANT_INDEX_PREFIX}{tenant_id}_{digest}"


class Embedding(TenantOwned):
    """One vector per image, or per sampled frame of a video. One table for both,
    so that one nearest-neighbour query covers images and frames.

    Besides the indexes below, each large tenant has an HNSW index over its own
    vectors, kept by search/tenant_indexes.py (not by migrations: which ones
    exist follows the data). The vector is stored in the row, not in TOAST
    (migration 0005)."""

    media = models.ForeignKey(Media, on_delete=models.CASCADE, related_name="embeddings")
    frame = models.ForeignKey(VideoFrame, null=True, blank=True, on_delete=models.CASCADE, related_name="embeddings")
    # Denormalized from media.product so a search needs no join to group by product.
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_name = models.CharField(max_length=200)
    vector = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One vector per image (frame NULL) or per frame, per model: a re-run
            # of a task cannot add a second set.
            models.UniqueConstraint(
                fields=["media", "frame", "model_name"], name="embedding_unique_per_source", nulls_distinct=False
            ),
        ]
        indexes = [
            HnswIndex(
                name="embedding_vector_hnsw",
                fields=["vector"],
                m=HNSW_M,
                ef_construction=HNSW_EF_CONSTRUCTION,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["tenant", "product"], name="embedding_tenant_product"),
            # Throughput (embeddings per second) for /metrics.
            models.Index(fields=["created_at"], name="embedding_created_at"),
        ]

    def __str__(self) -> str:
        where = f" frame {self.frame_id}" if self.frame_id else ""
        return f"embedding of media #{self.media_id}{where}"

    @classmethod
    def build(cls, media: Media, frames, vectors, model_name: str) -> list[Embedding]:
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


def _unit_interval() -> list:
    return [MinValueValidator(0.0), MaxValueValidator(1.0)]


class Thresholds(models.Model):
    """Per-tenant knobs that operators tune in the admin."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="thresholds")
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
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "thresholds"
        constraints = [
            models.CheckConstraint(
                condition=Q(min_similarity__gte=0, min_similarity__lte=1)
                & Q(near_duplicate_similarity__gte=0, near_duplicate_similarity__lte=1)
                & Q(auto_assign_confidence__gte=0, auto_assign_confidence__lte=1),
                name="thresholds_similarities_in_unit_interval",
            ),
            models.CheckConstraint(
                condition=Q(hnsw_ef_search__gte=HNSW_EF_SEARCH_RANGE[0], hnsw_ef_search__lte=HNSW_EF_SEARCH_RANGE[1]),
                name="thresholds_ef_search_in_range",
            ),
            models.CheckConstraint(condition=Q(stuck_after_minutes__gte=1), name="thresholds_stuck_after_positive"),
        ]

    def __str__(self) -> str:
        return f"thresholds of {self.tenant.slug}"

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> Thresholds:
        thresholds, _ = cls.objects.get_or_create(tenant=tenant)
        return thresholds


class ThresholdChange(models.Model):
    """One edit of one threshold: who, when, from what to what."""

    thresholds = models.ForeignKey(Thresholds, on_delete=models.CASCADE, related_name="changes")
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
        return f"{self.thresholds.tenant.slug}.{self.field}: {self.old_value} -> {self.new_value}"


class RecognizerModelQuerySet(models.QuerySet["RecognizerModel"]):
    def active(self) -> RecognizerModelQuerySet:
        return self.filter(is_active=True)


class RecognizerModel(TenantOwned):
    """One trained version of a tenant's product recognizer: a linear classifier
    over the CLIP vectors of media assigned to products, predicting the product
    of unassigned media. At most one version per tenant is active."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        TRAINING = "training"
        READY = "ready"
        FAILED = "failed"

    version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done while training.")
    progress_message = models.CharField(max_length=200, blank=True, default="")
    error = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    # The CLIP model whose vectors it was trained on: it can only read those.
    embedding_model = models.CharField(max_length=200, blank=True, default="")
    classes = models.PositiveIntegerField(null=True, blank=True)
    train_samples = models.PositiveIntegerField(null=True, blank=True, help_text="Vectors trained on.")
    train_media = models.PositiveIntegerField(null=True, blank=True)
    test_media = models.PositiveIntegerField(null=True, blank=True, help_text="Held-out media evaluated.")
    top1_accuracy = models.FloatField(null=True, blank=True)
    top5_accuracy = models.FloatField(null=True, blank=True)
    training_seconds = models.FloatField(null=True, blank=True)
    # The classifier itself: an .npz of weights, bias, feature mean and the
    # product id of each class.
    parameters = models.BinaryField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RecognizerModelQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "-version"]
        verbose_name = "recognizer version"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "version"], name="recognizer_version_unique_per_tenant"),
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(is_active=True), name="recognizer_one_active_per_tenant"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "training", "ready", "failed"]), name="recognizer_status_valid"
            ),
            models.CheckConstraint(condition=Q(is_active=False) | Q(status="ready"), name="recognizer_active_is_ready"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug} recognizer v{self.version}"

    @property
    def can_activate(self) -> bool:
        return self.status == self.Status.READY and not self.is_active


class RecognizerSuggestion(TenantOwned):
    """The active recognizer's best guesses for an unassigned media item whose
    confidence stayed below the tenant's auto-assign threshold: it waits for an
    operator in the review list."""

    media = models.OneToOneField(Media, on_delete=models.CASCADE, related_name="recognizer_suggestion")
    recognizer = models.ForeignKey(RecognizerModel, on_delete=models.CASCADE, related_name="suggestions")
    # Best first: [{"product": id, "sku": ..., "title": ..., "confidence": 0.87}, ...]
    candidates = models.JSONField(default=list)
    top_confidence = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-top_confidence", "pk"]
        verbose_name = "media item to review"
        verbose_name_plural = "review list (recognizer suggestions)"
        indexes = [models.Index(fields=["tenant", "top_confidence"], name="suggestion_tenant_confidence")]

    def __str__(self) -> str:
        return f"suggestions for media #{self.media_id}"
