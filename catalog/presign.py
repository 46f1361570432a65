"""Presigned S3 POSTs: the client uploads straight to S3 under a key of the
tenant's layout, and S3 itself enforces the size limit and content type."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from catalog import formats
from catalog.aws import s3_client
from catalog.errors import DomainError, FileRejected
from catalog.models import Product
from catalog.storage_keys import media_key


def presigned_upload(product: Product, filename: str, content_type: str) -> dict[str, Any]:
    if not settings.S3_BUCKET_NAME:
        raise DomainError("S3 uploads are not configured on this server (S3_BUCKET_NAME).", code="s3_not_configured")
    fmt = formats.BY_CONTENT_TYPE.get(content_type.lower().strip())
    if fmt is None:
        accepted = ", ".join(sorted(formats.BY_CONTENT_TYPE))
        raise FileRejected(f"'{content_type}' is not accepted; use one of {accepted}.", code="unsupported_media_type")
    max_size = formats.max_bytes(fmt.kind)
    key = media_key(product.tenant.slug, product.sku, fmt.kind, filename, fmt.extension)
    expires = settings.S3_PRESIGN_EXPIRES_SECONDS
    post = s3_client().generate_presigned_post(
        Bucket=settings.S3_BUCKET_NAME,
        Key=key,
        Fields={"Content-Type": fmt.content_type},
        Conditions=[["content-length-range", 1, max_size], {"Content-Type": fmt.content_type}],
        ExpiresIn=expires,
    )
    return {"url": post["url"], "fields": post["fields"], "key": key, "expires_in": expires, "max_size": max_size}
