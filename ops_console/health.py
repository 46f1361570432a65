"""Readiness: does each dependency answer, and how fast."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.core.files.storage import default_storage

from catalog.vector_engine import pgvector_problem
from config.broker import broker_client

# A readiness probe must answer quickly even when a dependency hangs.
CHECK_TIMEOUT_S = 2.0
STORAGE_PROBE_KEY = "health/readiness-probe"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    error: str = ""

    def as_dict(self) -> dict:
        result: dict = {"ok": self.ok, "latency_ms": round(self.latency_ms, 2)}
        if self.error:
            result["error"] = self.error
        return result


def _database() -> None:
    """It answers, and its pgvector is one this code runs on."""
    problem = pgvector_problem()
    if problem:
        raise RuntimeError(problem)


def _redis() -> None:
    with broker_client(CHECK_TIMEOUT_S) as client:
        client.ping()


def _storage() -> None:
    default_storage.exists(STORAGE_PROBE_KEY)  # a stat or HEAD request; raises when unreachable


def _model() -> None:
    from media_pipeline.embedder import get_embedder

    get_embedder()


CHECKS: dict[str, Callable[[], None]] = {
    "database": _database,
    "redis": _redis,
    "storage": _storage,
    "model": _model,
}


def run_checks() -> list[CheckResult]:
    results = []
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            results.append(
                CheckResult(name, False, (time.perf_counter() - started) * 1000, f"{type(exc).__name__}: {exc}")
            )
        else:
            results.append(CheckResult(name, True, (time.perf_counter() - started) * 1000))
    return results
