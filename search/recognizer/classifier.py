"""The recognizer's model: a multinomial logistic regression over CLIP vectors
(images and video frames alike), fitted with Adam on standardized features.
Deterministic (zero initialisation, a seeded shuffle): unchanged data gives the
same classifier again."""

from __future__ import annotations

import io
import math
import queue
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from media_pipeline.embedder import submit_to_torch_thread

# Enough steps for the loss to settle on catalogs from a few dozen to tens of
# thousands of vectors. The light L2 penalty keeps confidences close to the
# held-out accuracy (on generated catalogs, mean top confidence 0.94 at 95%
# accuracy), which is what makes the auto-assign threshold mean something;
# 1e-3 halves them.
LEARNING_RATE = 0.05
WEIGHT_DECAY = 1e-4
BATCH_SIZE = 1024
MIN_STEPS = 300
MAX_EPOCHS = 100
SHUFFLE_SEED = 0

FitProgress = Callable[[float, str], None]
Fitted = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class LinearClassifier:
    weights: np.ndarray  # (classes, dimensions)
    bias: np.ndarray  # (classes,)
    mean: np.ndarray  # (dimensions,) feature mean of the training set
    scale: np.ndarray  # (dimensions,) feature standard deviation of the training set
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


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, probabilities.shape[1])
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float(np.mean([label in row for label, row in zip(labels, top, strict=True)]))


def fit(
    vectors: np.ndarray, labels: np.ndarray, sample_weights: np.ndarray, classes: int, progress: FitProgress
) -> Fitted:
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
    vectors: np.ndarray, labels: np.ndarray, sample_weights: np.ndarray, classes: int, progress: FitProgress
) -> Fitted:
    import torch

    mean = vectors.mean(axis=0)
    scale = np.maximum(vectors.std(axis=0), 1e-6)
    x = torch.from_numpy(((vectors - mean) / scale).astype(np.float32))
    y = torch.from_numpy(labels.astype(np.int64))
    w = torch.from_numpy((sample_weights / sample_weights.mean()).astype(np.float32))
    weights = torch.zeros((classes, x.shape[1]), requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.Adam([weights, bias], lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(SHUFFLE_SEED)
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
