import hashlib

import factory
import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from factory.django import DjangoModelFactory

from catalog.models import (
    EMBEDDING_DIMENSIONS,
    ApiKey,
    Embedding,
    Media,
    Product,
    Tenant,
    TenantSettings,
    TenantSettingsChange,
    VideoFrame,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from catalog.tenants import create_tenant
from catalog.webhooks import new_secret
from media_pipeline.models import RejectedS3Event
from search.models import (
    RecognizerModel,
    RecognizerSuggestion,
    SearchDay,
    SearchDayRollup,
    SearchFeedback,
    SearchLog,
)
from search.search_days import SCORE_BINS


class TenantFactory(DjangoModelFactory):
    """A tenant as every creator makes one (catalog.tenants.create_tenant),
    with its settings; an existing slug gives the existing tenant."""

    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return Tenant.objects.filter(slug=kwargs["slug"]).first() or create_tenant(model_class(**kwargs))


class ApiKeyFactory(DjangoModelFactory):
    """`ApiKeyFactory().plaintext` is the key a client sends."""

    class Meta:
        model = ApiKey
        exclude = ("plaintext",)

    tenant = factory.SubFactory(TenantFactory)
    name = "test key"
    scope = ApiKey.Scope.WRITE

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        key = model_class(**kwargs)
        plaintext = key.set_new_secret()
        key.save()
        key.plaintext = plaintext
        return key


class ProductFactory(DjangoModelFactory):
    class Meta:
        model = Product

    tenant = factory.SubFactory(TenantFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    title = factory.Sequence(lambda n: f"Product {n}")
    category = "shoes"
    attributes = factory.LazyFunction(dict)


class MediaFactory(DjangoModelFactory):
    class Meta:
        model = Media

    tenant = factory.SubFactory(TenantFactory)
    product = factory.SubFactory(ProductFactory, tenant=factory.SelfAttribute("..tenant"))
    kind = Media.Kind.IMAGE
    storage_key = factory.Sequence(lambda n: f"clients/test/media/image/{n:032x}-photo.jpg")
    original_filename = "photo.jpg"
    content_type = "image/jpeg"
    size = 1234
    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    width = 640
    height = 480


def stored_media(key: str, data: bytes, **fields) -> Media:
    """A media row (MediaFactory `fields`) whose file `data` is really in
    storage, under `key`, with its real sha256 (as an upload records it)."""
    fields.setdefault("sha256", hashlib.sha256(data).hexdigest())
    return MediaFactory(storage_key=default_storage.save(key, ContentFile(data)), size=len(data), **fields)


# An item as the bridge records an S3 object: not yet checked, so the worker
# probes its content.
UNCHECKED = {"source": Media.Source.S3, "width": None, "height": None, "sha256": ""}


class VideoFrameFactory(DjangoModelFactory):
    class Meta:
        model = VideoFrame

    media = factory.SubFactory(MediaFactory, kind=Media.Kind.VIDEO, content_type="video/mp4")
    tenant = factory.SelfAttribute("media.tenant")
    index = factory.Sequence(lambda n: n)
    timestamp_ms = factory.LazyAttribute(lambda o: o.index * 1000)
    thumbnail_key = factory.LazyAttribute(lambda o: f"clients/test/thumbs/{o.media.pk}-{o.index}.jpg")


def unit_vector(seed: int) -> list[float]:
    vector = np.random.default_rng(seed).standard_normal(EMBEDDING_DIMENSIONS)
    return (vector / np.linalg.norm(vector)).tolist()


class EmbeddingFactory(DjangoModelFactory):
    class Meta:
        model = Embedding

    media = factory.SubFactory(MediaFactory)
    tenant = factory.SelfAttribute("media.tenant")
    product = factory.SelfAttribute("media.product")
    model_name = "test-clip"
    vector = factory.Sequence(unit_vector)


class TenantSettingsFactory(DjangoModelFactory):
    """A tenant's settings (the row its creation made) with the given values saved."""

    class Meta:
        model = TenantSettings

    tenant = factory.SubFactory(TenantFactory)

    @classmethod
    def _create(cls, model_class, *args, tenant, **values):
        row = model_class.objects.get(tenant=tenant)
        for name, value in values.items():
            setattr(row, name, value)
        row.save()
        tenant.settings = row  # what the tenant object holds, too
        return row


class RejectedS3EventFactory(DjangoModelFactory):
    class Meta:
        model = RejectedS3Event

    key = factory.Sequence(lambda n: f"clients/nobody/products/X/media/image/{n}.jpg")
    tenant_slug = "nobody"
    event_name = "ObjectCreated:Put"
    reason = "No tenant 'nobody'."


class TenantSettingsChangeFactory(DjangoModelFactory):
    class Meta:
        model = TenantSettingsChange

    tenant_settings = factory.SubFactory(TenantSettingsFactory)
    field = "min_similarity"
    old_value = "0.2"
    new_value = "0.3"


class RecognizerModelFactory(DjangoModelFactory):
    """A trained version without parameters: enough for lists and suggestions."""

    class Meta:
        model = RecognizerModel

    tenant = factory.SubFactory(TenantFactory)
    version = factory.Sequence(lambda n: n + 1)
    status = RecognizerModel.Status.READY
    embedding_model = "clip-tiny"


class RecognizerSuggestionFactory(DjangoModelFactory):
    class Meta:
        model = RecognizerSuggestion

    media = factory.SubFactory(MediaFactory, product=None, status=Media.Status.READY)
    tenant = factory.SelfAttribute("media.tenant")
    recognizer = factory.SubFactory(RecognizerModelFactory, tenant=factory.SelfAttribute("..tenant"))
    top_confidence = 0.5

    @factory.lazy_attribute
    def candidates(self) -> list[dict]:
        product = ProductFactory(tenant=self.tenant)
        return [{"product": product.pk, "sku": product.sku, "title": product.title, "confidence": self.top_confidence}]


class SearchLogFactory(DjangoModelFactory):
    class Meta:
        model = SearchLog

    tenant = factory.SubFactory(TenantFactory)
    kind = SearchLog.Kind.TEXT
    query_text = "red shoe"
    k = 10
    result_count = 3
    best_score = 0.3
    took_ms = 2.5


class SearchFeedbackFactory(DjangoModelFactory):
    class Meta:
        model = SearchFeedback

    search = factory.SubFactory(SearchLogFactory)
    tenant = factory.SelfAttribute("search.tenant")
    event = SearchFeedback.Event.CLICK


class WebhookEndpointFactory(DjangoModelFactory):
    class Meta:
        model = WebhookEndpoint

    tenant = factory.SubFactory(TenantFactory)
    url = "https://93.184.216.34/hooks"
    events = ["media.ready", "media.failed", "media.deleted"]
    secret = factory.LazyFunction(new_secret)


class WebhookDeliveryFactory(DjangoModelFactory):
    class Meta:
        model = WebhookDelivery

    endpoint = factory.SubFactory(WebhookEndpointFactory)
    tenant = factory.SelfAttribute("endpoint.tenant")
    message_id = factory.Sequence(lambda n: f"msg_{n:032x}")
    event_type = "media.ready"
    body = '{"type": "media.ready"}'


class WebhookAttemptFactory(DjangoModelFactory):
    class Meta:
        model = WebhookAttempt

    delivery = factory.SubFactory(WebhookDeliveryFactory)
    tenant = factory.SelfAttribute("delivery.tenant")
    attempted_at = factory.LazyFunction(timezone.now)
    status_code = 500
    error = "HTTP 500 Internal Server Error"


class SearchDayFactory(DjangoModelFactory):
    class Meta:
        model = SearchDay

    tenant = factory.SubFactory(TenantFactory)
    day = factory.LazyFunction(lambda: timezone.now().date())
    kind = SearchLog.Kind.TEXT
    searches = 1
    first_pages = 1
    score_bins = factory.LazyFunction(lambda: [0] * SCORE_BINS)


class SearchDayRollupFactory(DjangoModelFactory):
    class Meta:
        model = SearchDayRollup

    day = factory.LazyFunction(lambda: timezone.now().date())
