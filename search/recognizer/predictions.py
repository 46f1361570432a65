"""The active version's predictions for unassigned media: at or above the
tenant's auto-assign confidence the product is assigned; below, the item waits
in the review list with its best candidates. Run for the whole tenant when a
version is activated (a task), and for each item that becomes ready."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from django.db import transaction

from catalog.batches import id_batches
from catalog.models import Embedding, Media, Product, Tenant, TenantSettings
from media_pipeline.embedder import current_model_name
from search.models import RecognizerModel, RecognizerSuggestion
from search.recognizer.classifier import LinearClassifier
from search.recognizer.review import assign, reaches
from search.vectors import media_vectors, stored_vectors

logger = logging.getLogger(__name__)

SUGGESTIONS_KEPT = 3
# Media read per query when predicting: bounds the vectors held in memory
# (a video brings up to VIDEO_MAX_FRAMES of them).
PREDICT_BATCH_SIZE = 200


@dataclass
class PredictionReport:
    assigned: int = 0
    waiting: int = 0
    without_vectors: int = 0


@lru_cache(maxsize=16)
def _classifier(recognizer_id: int) -> LinearClassifier:
    # A version's parameters never change once trained.
    data = RecognizerModel.objects.filter(pk=recognizer_id).values_list("parameters", flat=True).get()
    return LinearClassifier.from_bytes(bytes(data or b""))


def _candidates(
    recognizer: RecognizerModel, probabilities: np.ndarray
) -> tuple[list[list[dict[str, Any]]], dict[int, Product]]:
    """Each row's best SUGGESTIONS_KEPT products still in the catalog, best
    first; and those products by id."""
    classifier = _classifier(recognizer.pk)
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :SUGGESTIONS_KEPT]
    wanted = {int(classifier.product_ids[c]) for c in top.ravel()}
    products = Product.objects.filter(tenant=recognizer.tenant, pk__in=wanted).in_bulk()
    rows = [
        [
            {"product": pid, "sku": products[pid].sku, "title": products[pid].title, "confidence": float(row[c])}
            for c in best
            if (pid := int(classifier.product_ids[c])) in products  # deleted since training
        ]
        for row, best in zip(probabilities, top, strict=True)
    ]
    return rows, products


def predict(recognizer: RecognizerModel, media_ids: Iterable[int], threshold: float) -> PredictionReport:
    """Assign or suggest products for the given unassigned media."""
    report = PredictionReport()
    unassigned = Media.objects.unassigned().filter(tenant=recognizer.tenant, pk__in=list(media_ids))
    ids = list(unassigned.values_list("pk", flat=True))
    rows = Embedding.objects.filter(media_id__in=ids, model_name=recognizer.embedding_model)
    row_ids, vectors = stored_vectors(rows.values_list("media_id", "vector"))
    report.without_vectors = len(set(ids) - set(row_ids.tolist()))
    if not len(row_ids):
        return report
    media, per_media = media_vectors(row_ids, vectors)
    probabilities = _classifier(recognizer.pk).probabilities(per_media)
    candidates_of, products = _candidates(recognizer, probabilities)
    suggestions = []
    for media_id, candidates in zip(media.tolist(), candidates_of, strict=True):
        if not candidates:
            continue
        best = candidates[0]
        if reaches(best["confidence"], threshold) and assign(media_id, products[best["product"]]):
            report.assigned += 1
            continue
        suggestions.append(
            RecognizerSuggestion(
                tenant=recognizer.tenant,
                media_id=media_id,
                recognizer=recognizer,
                candidates=candidates,
                top_confidence=best["confidence"],
            )
        )
    report.waiting += _store_suggestions(recognizer.tenant, suggestions)
    return report


def _store_suggestions(tenant: Tenant, suggestions: Sequence[RecognizerSuggestion]) -> int:
    """Replace the suggestions of the items still unassigned (an upload or an
    operator may have been quicker); returns how many were stored."""
    waiting = [s.media_id for s in suggestions]
    with transaction.atomic():
        RecognizerSuggestion.objects.filter(media_id__in=waiting).delete()
        still = set(Media.objects.unassigned().filter(tenant=tenant, pk__in=waiting).values_list("pk", flat=True))
        RecognizerSuggestion.objects.bulk_create(s for s in suggestions if s.media_id in still)
    return len(still)


def predict_unassigned(tenant: Tenant, progress: Callable[[int, int], None] | None = None) -> PredictionReport:
    """Predict for every unassigned ready media of `tenant` with its active
    version; suggestions of other versions are dropped."""
    report = PredictionReport()
    recognizer = RecognizerModel.objects.active().select_related("tenant").filter(tenant=tenant).first()
    RecognizerSuggestion.objects.filter(tenant=tenant).exclude(recognizer=recognizer).delete()
    if recognizer is None:
        return report
    threshold = TenantSettings.of(tenant).auto_assign_confidence
    pending = Media.objects.unassigned().filter(tenant=tenant)
    total = pending.count()
    for ids in id_batches(pending, PREDICT_BATCH_SIZE):
        batch = predict(recognizer, ids, threshold)
        report.assigned += batch.assigned
        report.waiting += batch.waiting
        report.without_vectors += batch.without_vectors
        if progress:
            progress(report.assigned + report.waiting + report.without_vectors, total)
    logger.info("predictions for %s with %s: %s", tenant.slug, recognizer, report)
    return report


def predict_ready(media: Sequence[Media]) -> PredictionReport | None:
    """After items of one tenant are processed: the active version's
    predictions for the unassigned ones, in one pass; None without a version
    that reads the current model's vectors."""
    recognizer = RecognizerModel.objects.active().select_related("tenant").filter(tenant_id=media[0].tenant_id).first()
    if recognizer is None or recognizer.embedding_model != current_model_name():
        return None
    unassigned = [item.pk for item in media if item.product_id is None]
    threshold = TenantSettings.of(media[0].tenant).auto_assign_confidence
    return predict(recognizer, unassigned, threshold) if unassigned else PredictionReport()


def on_media_ready(sender: Any, media: Sequence[Media], **kwargs: Any) -> None:
    """Receiver of catalog.signals.media_ready (connected in SearchConfig.ready):
    the predictions of each tenant's items."""
    by_tenant: dict[int, list[Media]] = defaultdict(list)
    for item in media:
        by_tenant[item.tenant_id].append(item)
    for items in by_tenant.values():
        try:
            predict_ready(items)
        except Exception:
            # The items are ready and stay so; without a prediction they are simply
            # unassigned until the recognizer's next run over unassigned media.
            logger.exception("recognizer predictions for media %s failed", [item.pk for item in items])
