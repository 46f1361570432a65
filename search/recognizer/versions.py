"""A recognizer version's life: queued (one training per tenant at a time),
trained on a worker with its progress on the row, measured on held-out media,
activated (its predictions follow), rolled back. A version that cannot be
trained ends `failed` with the reason."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from catalog.errors import Conflict
from catalog.models import Tenant
from config.queues import PREDICT_UNASSIGNED_TASK, TRAIN_RECOGNIZER_TASK, enqueue_maintenance
from config.transient import TRANSIENT_ERRORS
from media_pipeline.embedder import current_model_name
from search.models import RecognizerModel
from search.recognizer.classifier import LinearClassifier, fit, top_k_accuracy
from search.recognizer.training_data import held_out_media, load_training_data
from search.vectors import media_vectors

logger = logging.getLogger(__name__)

TOP_K_METRIC = 5
# Progress is written to the version's row at most this often.
PROGRESS_INTERVAL_S = 0.5

Progress = Callable[[int, str], None]


class TrainingError(Exception):
    """The data cannot make a recognizer; the message says why."""


def progress_writer(recognizer_id: int) -> Progress:
    """A Progress that records (percent, message) on the version's row."""
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


def _train(recognizer: RecognizerModel, progress: Progress) -> dict[str, Any]:
    embedding_model = recognizer.embedding_model or current_model_name()
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


def _is_abandoned(recognizer: RecognizerModel, now: datetime) -> bool:
    """A version still queued or training after the task time limit lost its worker."""
    since = recognizer.started_at or recognizer.created_at
    return now - since > timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)


@transaction.atomic
def start_training(tenant: Tenant, user: Any = None, *, enqueue: bool = True) -> RecognizerModel:
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
        embedding_model=current_model_name(),
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


@transaction.atomic
def activate(recognizer: RecognizerModel, *, predict: bool = True) -> RecognizerModel:
    """Make `recognizer` its tenant's active version; its predictions for the
    unassigned media are computed after commit (a task)."""
    locked = RecognizerModel.objects.select_for_update().select_related("tenant").get(pk=recognizer.pk)
    if locked.status != RecognizerModel.Status.READY:
        raise Conflict(f"Version {locked.version} is {locked.status}: only a trained version can be activated.")
    if locked.embedding_model != current_model_name():
        raise Conflict(
            f"Version {locked.version} was trained on vectors of {locked.embedding_model}, but media are now "
            f"embedded with {current_model_name()}: train a new version."
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
    earlier = RecognizerModel.objects.filter(
        tenant=tenant, status=RecognizerModel.Status.READY, activated_at__isnull=False
    ).order_by("-activated_at")
    if current is not None:
        earlier = earlier.exclude(pk=current.pk)
    version = earlier.first()
    if version is None:
        raise Conflict(f"{tenant.slug} has no earlier active version to roll back to.")
    return activate(version)
