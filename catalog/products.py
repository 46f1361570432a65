"""Creating and deleting products, and assigning media to them."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.errors import Conflict
from catalog.media import delete_media
from catalog.models import Embedding, Media, Product, Tenant


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


def assign_product(media_id: int, product: Product) -> bool:
    """Give an unassigned media item of `product`'s tenant its product, and
    its vectors with it (they carry the product for search); False when the
    item is gone or was assigned meanwhile."""
    with transaction.atomic():
        updated = Media.objects.filter(pk=media_id, tenant_id=product.tenant_id, product__isnull=True).update(
            product=product, updated_at=timezone.now()
        )
        if updated:
            Embedding.objects.filter(media_id=media_id).update(product=product)
    return bool(updated)
