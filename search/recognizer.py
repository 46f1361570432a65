"""The per-tenant product recognizer: which product does an unassigned photo
or video show?

A version is a multinomial logistic regression over the CLIP vectors of the
tenant's media that are assigned to products (images and video frames alike),
trained on a stratified split that holds out whole media (frames of one video
are near copies of each other: splitting them would measure memory, not
recognition). Training is deterministic (zero initialisation, a seeded
shuffle), so unchanged data gives the same metrics again.

The active version predicts for unassigned media: at or above the tenant's
auto-assign confidence the product is assigned; below, the item waits in the
review list with its best candidates.
"""

from __future__ import annotations

import io
import logging
import math
import queue
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from catalog.batches import id_batches
from catalog.errors import Conflict
from catalog.models import Media, Product, Tenant
from media_pipeline.embedder import model_name_for, submit_to_torch_thread
from media_pipeline.errors import TRANSIENT_ERRORS
from media_pipeline.queue import PREDICT_UNASSIGNED_TASK, TRAIN_RECOGNIZER_TASK, enqueue_maintenance
from search.models import Embedding, RecognizerModel, RecognizerSuggestion, Thresholds

logger = logging.getLogger(__name__)

# Share of each product's media held out for evaluation (at least one media
# of every product that has two or more).
HOLDOUT_FRACTION = 0.2
SPLIT_SEED = 0
# Adam on standardized features; enough steps for the loss to settle on
# catalogs from a few dozen to tens of thousands of vectors. The light L2
# penalty keeps confidences close to the held-out accuracy (on generated
# catalogs, mean top confidence 0.94 at 95% accuracy), which is what makes
# the auto-assign threshold mean something; 1e-3 halves them.
LEARNING_RATE = 0.05
WEIGHT_DECAY = 1e-4
BATCH_SIZE = 1024
MIN_STEPS = 300
MAX_EPOCHS = 100
SUGGESTIONS_KEPT = 3
TOP_K_METRIC = 5
# Media read per query when predicting: bounds the vectors held in memory
# (a video brings up to VIDEO_MAX_FRAMES of them).
PREDICT_BATCH_SIZE = 200
# Progress is written to the version's row at most this often.
PROGRESS_INTERVAL_S = 0.5

Progress = Callable[[int, str], None]


class TrainingError(Exception):
    """The data cannot make a recognizer; the message says why."""


def current_embedding_model() -> str:
    """The name under which the pipeline stores vectors now."""
    return model_name_for(settings.CLIP_MODEL)


# --- the classifier ----------------------------------------------------------


@dataclass(frozen=True)
class LinearClassifier:
    weights: np.ndarray  # (classes, 512)
    bias: np.ndarray  # (classes,)
    mean: np.ndarray  # (512,) feature mean of the training set
    scale: np.ndarray  # (512,) feature standard deviation of the training set
    product_ids: np.ndarray  # (classes,) the product of each class

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        logits = ((vectors - self.mean) / self.scale) @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            weights=self.weights,
            bias=self.bias,
            mean=self.mean,
            scale=self.scale,
            product_ids=self.product_ids,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearClassifier:
        with np.load(io.BytesIO(data)) as arrays:
            return cls(**{name: arrays[name] for name in arrays.files})


def fit(
    vectors: np.ndarray,
    labels: np.ndarray,
    sample_weights: np.ndarray,
    classes: int,
    progress: Callable[[float, str], None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weights, bias, mean and scale of a softmax regression on `vectors`;
    `progress(fraction done, message)` after each epoch. The training runs on
    the process's torch thread (media_pipeline.embedder.on_torch_thread);
    `progress` is called on this one, which holds the database connection."""
    reports: queue.SimpleQueue[tuple[float, str]] = queue.SimpleQueue()
    training = submit_to_torch_thread(
        lambda: _fit(vectors, labels, sample_weights, classes, lambda *report: reports.put(report))
    )
    while not (training.done() and reports.empty()):
        try:
            progress(*reports.get(timeout=0.05))
        except queue.Empty:
            pass
    return training.result()


def _fit(
    vectors: np.ndarray,
    labels: np.ndarray,
    sample_weights: np.ndarray,
    classes: int,
    progress: Callable[[float, str], None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import torch

    mean = vectors.mean(axis=0)
    scale = np.maximum(vectors.std(axis=0), 1e-6)
    x = torch.from_numpy(((vectors - mean) / scale).astype(np.float32))
    y = torch.from_numpy(labels.astype(np.int64))
    w = torch.from_numpy((sample_weights / sample_weights.mean()).astype(np.float32))
    weights = torch.zeros((classes, x.shape[1]), requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.Adam([weights, bias], lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    batches = math.ceil(len(x) / BATCH_SIZE)
    epochs = min(MAX_EPOCHS, max(1, math.ceil(MIN_STEPS / batches)))
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            losses = torch.nn.functional.cross_entropy(x[batch] @ weights.T + bias, y[batch], reduction="none")
            loss = (losses * w[batch]).sum() / w[batch].sum() + WEIGHT_DECAY * (weights**2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        progress((epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs}, loss {loss.item():.4f}")
    return weights.detach().numpy(), bias.detach().numpy(), mean.astype(np.float32), scale.astype(np.float32)


# --- training data -----------------------------------------------------------


@dataclass(frozen=True)
class TrainingData:
    vectors: np.ndarray  # (n, 512), unit rows
    media_ids: np.ndarray  # (n,)
    labels: np.ndarray  # (n,) class index
    product_ids: np.ndarray  # (classes,)


def load_training_data(tenant: Tenant, embedding_model: str) -> TrainingData:
    rows = (
        Embedding.objects.filter(
            tenant=tenant,
            model_name=embedding_model,
            product__isnull=False,
            media__status=Media.Status.READY,
            media__product__isnull=False,
        )
        .order_by("media_id", "frame_id")
        .values_list("media_id", "media__product_id", "vector")
    )
    media_ids, products, vectors = [], [], []
    for media_id, product_id, vector in rows.iterator(chunk_size=2000):
        media_ids.append(media_id)
        products.append(product_id)
        vectors.append(vector)
    product_ids, labels = np.unique(np.asarray(products, dtype=np.int64), return_inverse=True)
    return TrainingData(
        vectors=np.asarray(vectors, dtype=np.float32).reshape(-1, 512),
        media_ids=np.asarray(media_ids, dtype=np.int64),
        labels=labels.astype(np.int64),
        product_ids=product_ids,
    )


def held_out_media(media_ids: np.ndarray, labels: np.ndarray, fraction: float = HOLDOUT_FRACTION) -> set[int]:
    """Media held out for evaluation: a seeded `fraction` of each product's
    media, at least one of every product with two or more, never all of one."""
    by_class: dict[int, set[int]] = defaultdict(set)
    for media_id, label in zip(media_ids.tolist(), labels.tolist(), strict=True):
        by_class[label].add(media_id)
    rng = np.random.default_rng(SPLIT_SEED)
    held: set[int] = set()
    for label in sorted(by_class):
        media = sorted(by_class[label])
        if len(media) < 2:
            continue
        count = min(len(media) - 1, max(1, round(len(media) * fraction)))
        held.update(int(m) for m in rng.permutation(media)[:count])
    return held


def media_vectors(media_ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One unit vector per media (its image's, or the mean direction of its
    frames), as search's "more like this" sees it; returns (ids, vectors)."""
    ids, inverse = np.unique(media_ids, return_inverse=True)
    sums = np.zeros((len(ids), vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, vectors)
    norms = np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return ids, (sums / norms).astype(np.float32)


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, probabilities.shape[1])
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float(np.mean([label in row for label, row in zip(labels, top, strict=True)]))


# --- training a version ------------------------------------------------------


def progress_writer(recognizer_id: int) -> Progress:
    last = [0.0]

    def write(percent: int, message: str) -> None:
        now = time.monotonic()
        if percent < 100 and now - last[0] < PROGRESS_INTERVAL_S:
            return
        last[0] = now
        RecognizerModel.objects.filter(pk=recognizer_id).update(progress=percent, progress_message=message[:200])

    return write


def train(recognizer: RecognizerModel, progress: Progress | None = None) -> RecognizerModel:
    """Train `recognizer` (a queued version) on its tenant's assigned media and
    record its metrics; a version that cannot be trained ends `failed` with the
    reason."""
    progress = progress or progress_writer(recognizer.pk)
    started = time.perf_counter()
    claimed = RecognizerModel.objects.filter(
        pk=recognizer.pk, status__in=[RecognizerModel.Status.QUEUED, RecognizerModel.Status.TRAINING]
    ).update(status=RecognizerModel.Status.TRAINING, started_at=timezone.now(), progress=0, error="")
    if not claimed:
        logger.info("recognizer %s is not waiting to be trained: skipped", recognizer.pk)
        return recognizer
    try:
        fields = _train(recognizer, progress)
    except TrainingError as exc:
        fields = {"status": RecognizerModel.Status.FAILED, "error": str(exc)}
    except TRANSIENT_ERRORS:
        raise  # the task is retried, and takes its version up again
    except Exception as exc:
        # A bug, not the data's fault: the version says so instead of
        # staying "training" until it counts as abandoned.
        logger.exception("training %s failed", recognizer)
        fields = {"status": RecognizerModel.Status.FAILED, "error": f"Training error: {type(exc).__name__}: {exc}"}
    fields.update(finished_at=timezone.now(), training_seconds=round(time.perf_counter() - started, 3))
    RecognizerModel.objects.filter(pk=recognizer.pk).update(**fields)
    recognizer.refresh_from_db()
    logger.info("trained %s: %s", recognizer, recognizer.status)
    return recognizer


def _train(recognizer: RecognizerModel, progress: Progress) -> dict:
    embedding_model = recognizer.embedding_model or current_embedding_model()
    progress(2, "loading the vectors of assigned media")
    data = load_training_data(recognizer.tenant, embedding_model)
    classes = len(data.product_ids)
    if classes < 2:
        raise TrainingError(
            f"Training needs media of at least two products processed with {embedding_model}; found {classes}."
        )
    held = held_out_media(data.media_ids, data.labels)
    if not held:
        raise TrainingError("No product has two or more media, so nothing can be held out to measure accuracy.")
    test = np.isin(data.media_ids, np.fromiter(held, dtype=np.int64))
    train_rows = ~test
    # Each media counts once, however many frames it has.
    _, inverse, per_media = np.unique(data.media_ids[train_rows], return_inverse=True, return_counts=True)
    sample_weights = 1.0 / per_media[inverse]

    def fit_progress(done: float, message: str) -> None:
        progress(5 + int(85 * done), f"fitting: {message}")

    progress(5, f"fitting {classes} classes on {int(train_rows.sum())} vectors")
    weights, bias, mean, scale = fit(
        data.vectors[train_rows], data.labels[train_rows], sample_weights, classes, fit_progress
    )
    classifier = LinearClassifier(weights, bias, mean, scale, data.product_ids)

    progress(92, f"evaluating on {len(held)} held-out media")
    test_ids, test_vectors = media_vectors(data.media_ids[test], data.vectors[test])
    label_of = dict(zip(data.media_ids.tolist(), data.labels.tolist(), strict=True))
    test_labels = np.array([label_of[int(m)] for m in test_ids])
    probabilities = classifier.probabilities(test_vectors)
    progress(100, "done")
    return {
        "status": RecognizerModel.Status.READY,
        "embedding_model": embedding_model,
        "classes": classes,
        "train_samples": int(train_rows.sum()),
        "train_media": len(np.unique(data.media_ids[train_rows])),
        "test_media": len(test_ids),
        "top1_accuracy": round(top_k_accuracy(probabilities, test_labels, 1), 6),
        "top5_accuracy": round(top_k_accuracy(probabilities, test_labels, TOP_K_METRIC), 6),
        "parameters": classifier.to_bytes(),
        "progress": 100,
        "progress_message": "done",
    }


def train_version(recognizer_id: int) -> RecognizerModel | None:
    recognizer = RecognizerModel.objects.select_related("tenant").filter(pk=recognizer_id).first()
    if recognizer is None:
        logger.info("recognizer %s is gone: nothing to train", recognizer_id)
        return None
    return train(recognizer)


def _is_abandoned(recognizer: RecognizerModel, now) -> bool:
    """A version still queued or training after the task time limit lost its worker."""
    since = recognizer.started_at or recognizer.created_at
    return now - since > timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)


@transaction.atomic
def start_training(tenant: Tenant, user=None, *, enqueue: bool = True) -> RecognizerModel:
    """A new queued version of `tenant`'s recognizer, its training task sent
    after commit. One training per tenant at a time."""
    Tenant.objects.select_for_update().get(pk=tenant.pk)  # serializes version numbers
    now = timezone.now()
    running = RecognizerModel.objects.filter(
        tenant=tenant, status__in=[RecognizerModel.Status.QUEUED, RecognizerModel.Status.TRAINING]
    )
    for other in running:
        if not _is_abandoned(other, now):
            raise Conflict(f"Version {other.version} of {tenant.slug}'s recognizer is still {other.status}.")
        other.status, other.error = RecognizerModel.Status.FAILED, "Abandoned: its worker stopped answering."
        other.save(update_fields=["status", "error"])
    latest = RecognizerModel.objects.filter(tenant=tenant).aggregate(v=Max("version"))["v"] or 0
    recognizer = RecognizerModel.objects.create(
        tenant=tenant,
        version=latest + 1,
        embedding_model=current_embedding_model(),
        created_by=user if user is not None and getattr(user, "is_authenticated", False) else None,
        progress_message="waiting for a worker",
    )
    if enqueue:

        def refused(exc: Exception) -> None:
            RecognizerModel.objects.filter(pk=recognizer.pk, status=RecognizerModel.Status.QUEUED).update(
                status=RecognizerModel.Status.FAILED, error=f"The task queue refused the job: {exc}"
            )

        enqueue_maintenance(TRAIN_RECOGNIZER_TASK, recognizer.pk, on_error=refused)
    return recognizer


# --- activating versions -----------------------------------------------------


@transaction.atomic
def activate(recognizer: RecognizerModel, *, predict: bool = True) -> RecognizerModel:
    """Make `recognizer` its tenant's active version; its predictions for the
    unassigned media are computed after commit (a task)."""
    locked = RecognizerModel.objects.select_for_update().select_related("tenant").get(pk=recognizer.pk)
    if locked.status != RecognizerModel.Status.READY:
        raise Conflict(f"Version {locked.version} is {locked.status}: only a trained version can be activated.")
    if locked.embedding_model != current_embedding_model():
        raise Conflict(
            f"Version {locked.version} was trained on vectors of {locked.embedding_model}, but media are now "
            f"embedded with {current_embedding_model()}: train a new version."
        )
    RecognizerModel.objects.filter(tenant=locked.tenant, is_active=True).exclude(pk=locked.pk).update(is_active=False)
    if not locked.is_active:
        locked.is_active, locked.activated_at = True, timezone.now()
        locked.save(update_fields=["is_active", "activated_at"])
    if predict:
        enqueue_maintenance(PREDICT_UNASSIGNED_TASK, locked.tenant_id)
    return locked


def rollback(tenant: Tenant) -> RecognizerModel:
    """Activate the version that was active before the current one."""
    current = RecognizerModel.objects.active().filter(tenant=tenant).first()
    earlier = (
        RecognizerModel.objects.filter(tenant=tenant, status=RecognizerModel.Status.READY, activated_at__isnull=False)
        .exclude(pk=current.pk if current else None)
        .order_by("-activated_at")
        .first()
    )
    if earlier is None:
        raise Conflict(f"{tenant.slug} has no earlier active version to roll back to.")
    return activate(earlier)


@lru_cache(maxsize=16)
def _classifier(recognizer_id: int) -> LinearClassifier:
    # A version's parameters never change once trained.
    data = RecognizerModel.objects.filter(pk=recognizer_id).values_list("parameters", flat=True).get()
    return LinearClassifier.from_bytes(bytes(data))


# --- predictions, assignments and the review list ----------------------------


@dataclass
class PredictionReport:
    assigned: int = 0
    waiting: int = 0
    without_vectors: int = 0


def reaches(confidence: float, threshold: float) -> bool:
    """Whether a prediction is confident enough to assign on its own. A
    threshold of 1 turns auto-assignment off (a saturated softmax gives 1.0)."""
    return threshold < 1.0 and confidence >= threshold


def assign_product(media_id: int, product: Product) -> bool:
    """Give an unassigned media item its product, and its vectors with it;
    False when it is gone or was assigned meanwhile."""
    with transaction.atomic():
        updated = Media.objects.filter(pk=media_id, tenant_id=product.tenant_id, product__isnull=True).update(
            product=product, updated_at=timezone.now()
        )
        if updated:
            Embedding.objects.filter(media_id=media_id).update(product=product)
        RecognizerSuggestion.objects.filter(media_id=media_id).delete()
    return bool(updated)


def accept_suggestion(suggestion: RecognizerSuggestion, product_id: int) -> Product:
    """An operator's choice among a suggestion's candidates."""
    if product_id not in {candidate["product"] for candidate in suggestion.candidates}:
        raise Conflict("That product is not one of this item's suggestions.")
    product = Product.objects.filter(pk=product_id, tenant_id=suggestion.tenant_id).first()
    if product is None:
        raise Conflict("That product no longer exists.")
    if not assign_product(suggestion.media_id, product):
        raise Conflict(f"Media {suggestion.media_id} already has a product.")
    return product


def _unassigned(tenant: Tenant):
    return Media.objects.filter(tenant=tenant, status=Media.Status.READY, product__isnull=True)


def predict(recognizer: RecognizerModel, media_ids: Iterable[int], threshold: float) -> PredictionReport:
    """Assign or suggest products for the given unassigned media."""
    report = PredictionReport()
    classifier = _classifier(recognizer.pk)
    ids = list(_unassigned(recognizer.tenant).filter(pk__in=list(media_ids)).values_list("pk", flat=True))
    rows = Embedding.objects.filter(media_id__in=ids, model_name=recognizer.embedding_model).values_list(
        "media_id", "vector"
    )
    found = list(rows)
    report.without_vectors = len(set(ids) - {media_id for media_id, _ in found})
    if not found:
        return report
    media, vectors = media_vectors(
        np.array([m for m, _ in found], dtype=np.int64), np.asarray([v for _, v in found], dtype=np.float32)
    )
    probabilities = classifier.probabilities(vectors)
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :SUGGESTIONS_KEPT]
    wanted = {int(classifier.product_ids[c]) for c in top.ravel()}
    products = Product.objects.filter(tenant=recognizer.tenant, pk__in=wanted).in_bulk()
    suggestions = []
    for media_id, row, best in zip(media.tolist(), probabilities, top, strict=True):
        candidates = [
            {"product": pid, "sku": products[pid].sku, "title": products[pid].title, "confidence": float(row[c])}
            for c in best
            if (pid := int(classifier.product_ids[c])) in products  # deleted since training
        ]
        if not candidates:
            continue
        if reaches(candidates[0]["confidence"], threshold) and assign_product(
            media_id, products[candidates[0]["product"]]
        ):
            report.assigned += 1
            continue
        suggestions.append(
            RecognizerSuggestion(
                tenant=recognizer.tenant,
                media_id=media_id,
                recognizer=recognizer,
                candidates=candidates,
                top_confidence=candidates[0]["confidence"],
            )
        )
    with transaction.atomic():
        RecognizerSuggestion.objects.filter(media_id__in=[s.media_id for s in suggestions]).delete()
        # Only those still unassigned: an upload or an operator may have been quicker.
        waiting = [s.media_id for s in suggestions]
        still = set(_unassigned(recognizer.tenant).filter(pk__in=waiting).values_list("pk", flat=True))
        RecognizerSuggestion.objects.bulk_create(s for s in suggestions if s.media_id in still)
    report.waiting += len(still)
    return report


def predict_unassigned(tenant: Tenant, progress: Callable[[int, int], None] | None = None) -> PredictionReport:
    """Predict for every unassigned ready media of `tenant` with its active
    version; suggestions of other versions are dropped."""
    report = PredictionReport()
    recognizer = RecognizerModel.objects.active().select_related("tenant").filter(tenant=tenant).first()
    RecognizerSuggestion.objects.filter(tenant=tenant).exclude(recognizer=recognizer).delete()
    if recognizer is None:
        return report
    threshold = Thresholds.for_tenant(tenant).auto_assign_confidence
    pending = _unassigned(tenant)
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


def predict_media(media: Media) -> PredictionReport | None:
    """After an unassigned item is processed: the active version's prediction."""
    if media.product_id is not None:
        return None
    recognizer = RecognizerModel.objects.active().select_related("tenant").filter(tenant_id=media.tenant_id).first()
    if recognizer is None or recognizer.embedding_model != current_embedding_model():
        return None
    return predict(recognizer, [media.pk], Thresholds.for_tenant(media.tenant).auto_assign_confidence)


def _reaching(tenant: Tenant, threshold: float):
    waiting = RecognizerSuggestion.objects.filter(tenant=tenant, media__product__isnull=True)
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
        if product is not None and assign_product(suggestion.media_id, product):
            assigned += 1
    return assigned
