"""The catalog's models: tenants with their keys and settings (tenants.py);
products, media, video frames and the vectors of both (media.py); webhook
endpoints and their deliveries (webhooks.py)."""

from catalog.models.media import (
    EMBEDDING_DIMENSIONS,
    EMBEDDING_TABLE,
    MEDIA_TABLE,
    SKU_CHARS,
    SKU_PATTERN,
    Embedding,
    Media,
    MediaQuerySet,
    Product,
    VideoFrame,
    sku_validator,
)
from catalog.models.tenants import (
    API_KEY_PREFIX_LENGTH,
    HNSW_EF_SEARCH_RANGE,
    TENANT_SLUG_CHARS,
    TENANT_SLUG_REGEX,
    ApiKey,
    SearchCutoff,
    Tenant,
    TenantOwned,
    TenantSettings,
    TenantSettingsChange,
    hash_api_secret,
)
from catalog.models.webhooks import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryQuerySet,
    WebhookEndpoint,
    WebhookEvent,
)

__all__ = [
    "API_KEY_PREFIX_LENGTH",
    "EMBEDDING_DIMENSIONS",
    "EMBEDDING_TABLE",
    "HNSW_EF_SEARCH_RANGE",
    "MEDIA_TABLE",
    "SKU_CHARS",
    "SKU_PATTERN",
    "TENANT_SLUG_CHARS",
    "TENANT_SLUG_REGEX",
    "ApiKey",
    "Embedding",
    "Media",
    "MediaQuerySet",
    "Product",
    "SearchCutoff",
    "Tenant",
    "TenantOwned",
    "TenantSettings",
    "TenantSettingsChange",
    "VideoFrame",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDeliveryQuerySet",
    "WebhookEndpoint",
    "WebhookEvent",
    "hash_api_secret",
    "sku_validator",
]
