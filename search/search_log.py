"""The search log: each search as a client asked it and what it found (its
id is the response's `search_id`), the shoppers' feedback on its results,
and the pruning of both after SEARCH_LOG_DAYS.

A search writes its row with one INSERT on the primary after its answer is
ranked, committed without waiting for the WAL to reach the disk
(`synchronous_commit = off` for that transaction only): a crash may lose the
last fraction of a second of log rows, never a catalog change, and the
search does not wait for a disk flush (bench/search_v2.py measures p95 with
and without the log)."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client import Counter

from catalog.models import Media, Product, Tenant
from search import search_days
from search.filters import ProductFilter
from search.models import SearchFeedback, SearchLog

logger = logging.getLogger(__name__)

# Registered by ops_console.metrics with the other metrics of /metrics.
SEARCHES = Counter("stockmind_searches", "Searches answered, by kind.", ["kind"], registry=None)
ZERO_RESULT_SEARCHES = Counter(
    "stockmind_zero_result_searches",
    "Searches whose first page came back empty, by kind.",
    ["kind"],
    registry=None,
)

# Rows deleted per statement: a day of a busy tenant's searches goes in a few
# statements, each holding its locks for well under a second.
PRUNE_BATCH_SIZE = 10_000


@dataclass(frozen=True)
class Logged:
    """What a search tells the log, besides its tenant and answer."""

    kind: str
    mode: str = ""
    query_text: str = ""


def record(
    tenant: Tenant,
    logged: Logged,
    *,
    product_filter: ProductFilter | None,
    k: int,
    offset: int,
    scores: list[float | None],
    took_ms: float,
    strategy: str,
    best_below_minimum: float | None = None,
) -> uuid.UUID:
    """Store one search, and return its id: `scores` are its page's, best
    first (None: a keyword-only match); `best_below_minimum`, for a first
    page that kept none, the best score the minimum left out."""
    vector_scores = [score for score in scores if score is not None]
    search_id = uuid.uuid4()
    values: list[Any] = [
        search_id,
        tenant.pk,
        logged.kind,
        logged.mode,
        logged.query_text[:1000],
        json.dumps(product_filter.as_json() if product_filter else {}),
        k,
        offset,
        len(scores),
        max(vector_scores) if vector_scores else None,
        took_ms,
        strategy,
        best_below_minimum,
        timezone.now(),
    ]
    # One round trip for the setting and the row (psycopg's client-side
    # binding sends both statements at once), inside the transaction the
    # setting lasts for.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_INSERT, values)
    SEARCHES.labels(logged.kind).inc()
    if not scores and offset == 0:
        ZERO_RESULT_SEARCHES.labels(logged.kind).inc()
    return search_id


_COLUMNS = (
    'id, tenant_id, kind, mode, query_text, filters, k, "offset", result_count, best_score, took_ms, strategy, '
    "best_below_minimum"
)
_INSERT = (  # constants; values are parameters
    "SET LOCAL synchronous_commit TO OFF; "  # noqa: S608
    f"INSERT INTO {SearchLog._meta.db_table} ({_COLUMNS}, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def record_feedback(
    search: SearchLog, event: str, *, media: Media | None = None, product: Product | None = None
) -> SearchFeedback:
    """A shopper's event on one of `search`'s results (the caller found both in its tenant)."""
    return SearchFeedback.objects.create(
        tenant_id=search.tenant_id, search=search, event=event, media=media, product=product
    )


def prune(now: datetime | None = None, *, batch_size: int = PRUNE_BATCH_SIZE) -> int:
    """Delete the searches older than SEARCH_LOG_DAYS, with their feedback
    and their days' rollups; how many searches."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.SEARCH_LOG_DAYS)
    deleted = 0
    while True:
        ids = list(SearchLog.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        SearchFeedback.objects.filter(search_id__in=ids).delete()
        deleted += SearchLog.objects.filter(pk__in=ids).delete()[1].get(SearchLog._meta.label, 0)
    search_days.prune(cutoff)
    if deleted:
        logger.info("pruned %d searches older than %s", deleted, cutoff.isoformat())
    return deleted
