"""Presigned S3 POSTs: the client uploads straight to S3 under a key of the
tenant's layout, and S3 itself enforces the size limit and content type."""

from __future__ import annotations

from django.conf import settings

from catalog.aws import s3_client
from catalog.errors import DomainError, FileRejected
from catalog.models import Product
from catalog.storage_keys import ACCEPTED_EXTENSIONS, CONTENT_TYPES, media_key

EXTENSION_FOR_TYPE = {content_type: ext for ext, content_type in reversed(CONTENT_TYPES.items())}


def presigned_upload(product: Product, filename: str, content_type: str) -> dict:
    if not settings.S3_BUCKET_NAME:
        raise DomainError("S3 uploads are not configured on this server (S3_BUCKET_NAME).", code="s3_not_configured")
    extension = EXTENSION_FOR_TYPE.get(content_type.lower().strip())
    if extension is None:
        accepted = ", ".join(sorted(EXTENSION_FOR_TYPE))
        raise FileRejected(f"'{content_type}' is not accepted; use one of {accepted}.", code="unsupported_media_type")
    content_type = CONTENT_TYPES[extension]
    kind = ACCEPTED_EXTENSIONS[extension]
    max_size = settings.MAX_IMAGE_BYTES if kind == "image" else settings.MAX_UPLOAD_BYTES
    key = media_key(product.tenant.slug, product.sku, kind, filename, extension)
    expires = settings.S3_PRESIGN_EXPIRES_SECONDS
    post = s3_client().generate_presigned_post(
        Bucket=settings.S3_BUCKET_NAME,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[["content-length-range", 1, max_size], {"Content-Type": content_type}],
        ExpiresIn=expires,
    )
    return {"url": post["url"], "fields": post["fields"], "key": key, "expires_in": expires, "max_size": max_size}
