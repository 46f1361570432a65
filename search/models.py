from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from pgvector.django import HnswIndex, VectorField

from catalog.models import Media, Product, Tenant, TenantOwned, VideoFrame

EMBEDDING_DIMENSIONS = 512
HNSW_EF_SEARCH_RANGE = (10, 1000)


class Embedding(TenantOwned):
    """One vector per image, or per sampled frame of a video. One table for both,
    so that one nearest-neighbour query covers images and frames."""

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
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["tenant", "product"], name="embedding_tenant_product"),
            # Throughput (embeddings per second) for /metrics.
            models.Index(fields=["created_at"], name="embedding_created_at"),
        ]

    def __str__(self) -> str:
        where = f" frame {self.frame_id}" if self.frame_id else ""
        return f"embedding of media #{self.media_id}{where}"


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
        help_text="The recognizer assigns a product on its own at or above this confidence.",
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
