"""The recognizer's versions and the review list of its suggestions; the
search log and the shoppers' feedback on its results."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone

from catalog.models import Media, Product, TenantOwned


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


class RecognizerSuggestionQuerySet(models.QuerySet["RecognizerSuggestion"]):
    def waiting(self) -> RecognizerSuggestionQuerySet:
        """Those still waiting for an operator: their item without a product
        and not failed (one assigned or failed meanwhile waits no more)."""
        return self.filter(media__product__isnull=True).exclude(media__status=Media.Status.FAILED)


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

    objects = RecognizerSuggestionQuerySet.as_manager()

    class Meta:
        ordering = ["-top_confidence", "pk"]
        verbose_name = "media item to review"
        verbose_name_plural = "review list (recognizer suggestions)"
        indexes = [models.Index(fields=["tenant", "top_confidence"], name="suggestion_tenant_confidence")]

    def __str__(self) -> str:
        return f"suggestions for media #{self.media_id}"


class SearchLog(TenantOwned):
    """One search as a client asked it and what it found: its id is the
    `search_id` of the response, which feedback names. Kept SEARCH_LOG_DAYS
    (search/search_log.py prunes it), with its feedback."""

    class Kind(models.TextChoices):
        IMAGE = "image"
        TEXT = "text"
        SIMILAR = "similar"
        RECOMMEND = "recommend"

    # Random, not a sequence: a client cannot guess another search's id
    # (and another tenant's is refused anyway).
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    mode = models.CharField(max_length=10, blank=True, default="", help_text="A text search's mode.")
    query_text = models.CharField(max_length=1000, blank=True, default="")
    filters = models.JSONField(default=dict, blank=True)
    k = models.PositiveSmallIntegerField()
    offset = models.PositiveSmallIntegerField(default=0)
    result_count = models.PositiveSmallIntegerField()
    best_score = models.FloatField(null=True, blank=True)
    # A first page that kept nothing: the best score the minimum left out.
    best_below_minimum = models.FloatField(null=True, blank=True)
    took_ms = models.FloatField()
    strategy = models.CharField(max_length=30, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Covering the columns the console's search analytics read
            # (ops_console/search_analytics.py): their scans are index-only.
            models.Index(
                fields=["tenant", "created_at"],
                name="searchlog_tenant_covering",
                include=["kind", "offset", "result_count", "took_ms", "best_score", "best_below_minimum"],
            ),
            models.Index(fields=["created_at"], name="searchlog_created"),  # pruning
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["image", "text", "similar", "recommend"]), name="searchlog_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} search {self.pk}"


class SearchFeedback(TenantOwned):
    """What a shopper did with a search's results."""

    class Event(models.TextChoices):
        CLICK = "click"
        ADD_TO_CART = "add_to_cart"
        PURCHASE = "purchase"

    search = models.ForeignKey(SearchLog, on_delete=models.CASCADE, related_name="feedback")
    event = models.CharField(max_length=12, choices=Event.choices)
    # The log outlives what it names: a deleted item leaves the event behind.
    media = models.ForeignKey(Media, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "search feedback"
        indexes = [models.Index(fields=["tenant", "created_at"], name="searchfeedback_tenant_created")]
        constraints = [
            models.CheckConstraint(
                condition=Q(event__in=["click", "add_to_cart", "purchase"]), name="searchfeedback_event_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} on search {self.search_id}"


class SearchDay(TenantOwned):
    """One UTC day's searches of one kind by one tenant, rolled up from the
    log once the day is over (search/search_days.py), so that the console's
    analytics read a row per day instead of every search."""

    day = models.DateField()
    kind = models.CharField(max_length=10, choices=SearchLog.Kind.choices)
    searches = models.PositiveIntegerField(default=0)
    first_pages = models.PositiveIntegerField(default=0)
    zero_results = models.PositiveIntegerField(default=0, help_text="First pages that came back empty.")
    unscored = models.PositiveIntegerField(default=0, help_text="First pages with no vector score at all.")
    # First pages by their best score (kept, or left out by the minimum
    # score: SearchLog.best_below_minimum), and searches by took_ms, in the bins
    # of search/search_days.py; the time bins from took_first_bin on, up to
    # the last one not empty (most of them are: a day's times span a few).
    score_bins = ArrayField(models.PositiveIntegerField(), default=list)
    took_first_bin = models.PositiveSmallIntegerField(default=0)
    took_bins = ArrayField(models.PositiveIntegerField(), default=list)
    # Searches with at least one event of each kind.
    with_click = models.PositiveIntegerField(default=0)
    with_add_to_cart = models.PositiveIntegerField(default=0)
    with_purchase = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day", "tenant", "kind"]
        verbose_name = "search day"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day", "kind"], name="searchday_unique"),
        ]
        indexes = [models.Index(fields=["day"], name="searchday_day")]

    def __str__(self) -> str:
        return f"{self.kind} searches of {self.day}"


class SearchDayRollup(models.Model):
    """A UTC day whose searches are rolled up into SearchDay rows (a day
    without searches has none)."""

    day = models.DateField(primary_key=True)
    rolled_up_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"searches of {self.day} rolled up"
