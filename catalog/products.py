"""Creating and deleting products."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from catalog.errors import Conflict
from catalog.media import delete_media
from catalog.models import Media, Product, Tenant


def create_product(tenant: Tenant, *, sku: str, title: str, **fields: Any) -> Product:
    try:
        with transaction.atomic():
            return Product.objects.create(tenant=tenant, sku=sku, title=title, **fields)
    except IntegrityError as exc:
        if Product.objects.filter(tenant=tenant, sku=sku).exists():
            raise Conflict(f"A product with sku '{sku}' already exists.", detail={"sku": sku}) from exc
        raise


@transaction.atomic
def delete_products(queryset: QuerySet[Product]) -> int:
    """Delete products with all their media, frames, embeddings and files."""
    delete_media(Media.objects.filter(product__in=queryset))
    count = queryset.count()
    queryset.delete()
    return count
