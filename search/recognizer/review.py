"""The review list: media the active recognizer could not assign on its own,
each with its best candidates, waiting for an operator; and assigning a
product, which ends an item's wait."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

from catalog.errors import Conflict
from catalog.models import Media, Product, Tenant
from catalog.products import assign_product
from search.models import RecognizerSuggestion


def reaches(confidence: float, threshold: float) -> bool:
    """Whether a prediction is confident enough to assign on its own. A
    threshold of 1 turns auto-assignment off (a saturated softmax gives 1.0)."""
    return threshold < 1.0 and confidence >= threshold


def assign(media_id: int, product: Product) -> bool:
    """Give an unassigned item `product` (catalog.products.assign_product) and
    take it off the review list; False when it is gone or was assigned meanwhile."""
    with transaction.atomic():
        assigned = assign_product(media_id, product)
        RecognizerSuggestion.objects.filter(media_id=media_id).delete()
    return assigned


def accept_suggestion(suggestion: RecognizerSuggestion, product_id: int) -> Product:
    """An operator's choice among a suggestion's candidates."""
    if product_id not in {candidate["product"] for candidate in suggestion.candidates}:
        raise Conflict("That product is not one of this item's suggestions.")
    product = Product.objects.filter(pk=product_id, tenant_id=suggestion.tenant_id).first()
    if product is None:
        raise Conflict("That product no longer exists.")
    if suggestion.media.status == Media.Status.FAILED:
        raise Conflict(f"Media {suggestion.media_id} failed since: it waits for no product.")
    if not assign(suggestion.media_id, product):
        raise Conflict(f"Media {suggestion.media_id} already has a product.")
    return product


def _reaching(tenant: Tenant, threshold: float) -> QuerySet[RecognizerSuggestion]:
    waiting = RecognizerSuggestion.objects.waiting().filter(tenant=tenant)
    return waiting.filter(top_confidence__gte=threshold) if threshold < 1.0 else waiting.none()


def waiting_at(tenant: Tenant, threshold: float) -> int:
    """How many items of the review list a threshold of `threshold` would assign."""
    return _reaching(tenant, threshold).count()


def apply_threshold(tenant: Tenant, threshold: float) -> int:
    """Assign the waiting items whose best candidate reaches `threshold`
    (after the tenant's auto-assign confidence was lowered)."""
    assigned = 0
    for suggestion in _reaching(tenant, threshold).order_by("pk").iterator():
        product = Product.objects.filter(pk=suggestion.candidates[0]["product"], tenant=tenant).first()
        if product is not None and assign(suggestion.media_id, product):
            assigned += 1
    return assigned
