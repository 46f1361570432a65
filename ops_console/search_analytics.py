"""What shoppers searched for and what they found, overall and per tenant,
for the console's search analytics page.

The figures come from the log rolled up by day (search/search_days.py): the
window's closed days are SearchDay rows, today is summarized from the log as
it is read, and the two are added up here. Only the text queries that found
nothing are read from the log itself, through its covering
(tenant, created_at) index (bench/search_analytics.py measures the page with
a million searches).

A search "found nothing" when its first page came back empty: a page past
the end of the results (offset > 0) is not counted as zero-result, and the
best-score histogram reads first pages only (a later page's best is not the
search's best). p95 of the search time is read from the days' time bins:
within one bin (10%) of the exact value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
from django.db import connection
from django.utils import timezone

from catalog.models import Tenant, TenantSettings
from search import search_days
from search.models import SearchDay, SearchFeedback, SearchLog
from search.search_days import SCORE_BINS, SCORE_MIN, SCORE_WIDTH

LOG_TABLE = SearchLog._meta.db_table
KINDS = tuple(SearchLog.Kind.values)
EVENTS = tuple(SearchFeedback.Event.values)
# The windows an operator can choose, in days; the first is the default.
WINDOWS = (30, 7, 1, 90)
TOP_QUERIES = 20
TENANT_ROWS = 100


@dataclass
class Figures:
    """One scope's figures: everything, or one tenant."""

    searches: int = 0
    first_pages: int = 0
    zero_results: int = 0  # first pages that came back empty
    p95_ms: float | None = None
    # Searches (of the window) with at least one event of each kind.
    with_event: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENTS, 0))

    @property
    def zero_result_rate(self) -> float | None:
        return self.zero_results / self.first_pages if self.first_pages else None

    def rate(self, event: str) -> float | None:
        return self.with_event[event] / self.searches if self.searches else None

    @property
    def click_rate(self) -> float | None:
        return self.rate(SearchFeedback.Event.CLICK)

    @property
    def add_to_cart_rate(self) -> float | None:
        return self.rate(SearchFeedback.Event.ADD_TO_CART)

    @property
    def purchase_rate(self) -> float | None:
        return self.rate(SearchFeedback.Event.PURCHASE)


@dataclass
class Day:
    day: date
    by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


@dataclass(frozen=True)
class ScoreBin:
    low: float
    high: float
    count: int


@dataclass
class TenantRow:
    tenant: Tenant
    figures: Figures


@dataclass
class SearchAnalytics:
    generated_at: datetime
    tenant: Tenant | None
    days: int
    score_kind: str  # the kind the histogram reads; empty for all
    figures: Figures
    per_day: list[Day]  # oldest first, every day of the window
    histogram: list[ScoreBin]
    unscored_first_pages: int  # first pages with no vector score (nothing found, or keywords only)
    min_score: float | None  # the tenant's minimum similarity, drawn on the histogram
    zero_result_queries: list[tuple[str, int]]  # (text, searches), most frequent first
    tenants: list[TenantRow]  # the busiest first; empty for one tenant
    tenant_count: int


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def day_rows(since: datetime, now: datetime, tenant: Tenant | None = None) -> list[tuple]:
    """The window's days as tuples of search_days.FIELDS: its closed days
    rolled up (any missing are, now), today summarized from the log."""
    today = now.astimezone(UTC).date()
    closed = [since.date() + timedelta(days=n) for n in range((today - since.date()).days)]
    search_days.ensure_rolled_up(closed)
    rows = SearchDay.objects.filter(day__gte=since.date(), day__lt=today)
    if tenant is not None:
        rows = rows.filter(tenant=tenant)
    start = search_days.day_start(today)
    live = search_days.summarize(start, start + timedelta(days=1), tenant)
    return [*rows.order_by().values_list(*search_days.FIELDS), *map(search_days.as_tuple, live)]


# The columns of day_rows' tuples that add up into Figures, in this order.
_COUNTS = ("searches", "first_pages", "zero_results", *search_days.EVENT_FIELDS.values())


def add_up(rows: list[tuple], since: datetime, now: datetime, score_kind: str = "") -> dict:
    """Figures per tenant id and overall (under None); the searches per day
    and kind; the first pages' best scores (of `score_kind`'s searches, or of
    all) per bin, and how many had none. Summed with numpy: a month of a
    few thousand rows in milliseconds."""
    column = {name: number for number, name in enumerate(search_days.FIELDS)}
    first = since.date()
    span = (now.astimezone(UTC).date() - first).days + 1
    days = {first + timedelta(days=n): Day(first + timedelta(days=n)) for n in range(span)}
    for row in rows:
        day, kind = row[column["day"]], row[column["kind"]]
        if day in days and kind in KINDS:  # a row from the future (clock skew) is left out
            days[day].by_kind[kind] += row[column["searches"]]
    figures: dict[int | None, Figures] = {}
    scores = np.zeros(SCORE_BINS, dtype=np.int64)
    unscored = 0
    if rows:
        tenant_ids, scope = np.unique([row[column["tenant_id"]] for row in rows], return_inverse=True)
        counts = np.array([[row[column[name]] for name in _COUNTS] for row in rows], dtype=np.int64)
        count_sums = np.zeros((len(tenant_ids), len(_COUNTS)), dtype=np.int64)
        took_sums = np.zeros((len(tenant_ids), search_days.TOOK_BINS), dtype=np.int64)
        np.add.at(count_sums, scope, counts)
        for row, number in zip(rows, scope.tolist(), strict=True):
            took_first_bin, bins = row[column["took_first_bin"]], row[column["took_bins"]]
            took_sums[number, took_first_bin : took_first_bin + len(bins)] += bins
        scopes = [*zip(tenant_ids.tolist(), count_sums, took_sums, strict=True)]
        scopes.append((None, count_sums.sum(axis=0), took_sums.sum(axis=0)))
        for tenant_id, sums, took_bins in scopes:
            searches, first_pages, zero_results, *events = (int(n) for n in sums)
            figures[tenant_id] = Figures(
                searches,
                first_pages,
                zero_results,
                search_days.percentile(took_bins.tolist(), 0.95),
                dict(zip(search_days.EVENT_FIELDS, events, strict=True)),
            )
        chosen = [row for row in rows if not score_kind or row[column["kind"]] == score_kind]
        if chosen:
            scores = np.array([row[column["score_bins"]] for row in chosen], dtype=np.int64).sum(axis=0)
            unscored = sum(row[column["unscored"]] for row in chosen)
    histogram = [
        ScoreBin(SCORE_MIN + n * SCORE_WIDTH, SCORE_MIN + (n + 1) * SCORE_WIDTH, int(count))
        for n, count in enumerate(scores)
    ]
    return {"figures": figures, "per_day": list(days.values()), "histogram": histogram, "unscored": unscored}


def zero_result_queries(
    since: datetime, now: datetime, tenant: Tenant | None = None, limit: int = TOP_QUERIES
) -> list[tuple[str, int]]:
    """The text queries whose first page came back empty, most often first;
    spelled alike up to case and surrounding spaces, they count as one."""
    end = search_days.day_start(now.astimezone(UTC).date()) + timedelta(days=1)
    where, params = search_days.log_scope(since, end, tenant)
    return [
        (text, n)
        for text, n in _fetch(
            f"""SELECT lower(btrim(query_text)), count(*) FROM {LOG_TABLE}
                WHERE {where} AND kind = 'text' AND "offset" = 0 AND result_count = 0 AND query_text <> ''
                GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s""",  # noqa: S608 - constants
            [*params, limit],
        )
    ]


def build_search_analytics(
    tenant: Tenant | None = None, *, days: int = WINDOWS[0], score_kind: str = "", now: datetime | None = None
) -> SearchAnalytics:
    now = now or timezone.now()
    # Whole days, in UTC: the window starts at midnight `days - 1` days ago.
    since = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    added = add_up(day_rows(since, now, tenant), since, now, score_kind)
    figures = added["figures"]
    total = figures.pop(None, Figures())
    min_score = None
    if tenant is not None:
        min_score = TenantSettings.of(tenant).min_similarity
    ranked = sorted(figures.items(), key=lambda item: (-item[1].searches, item[0] or 0))[:TENANT_ROWS]
    tenants = Tenant.objects.in_bulk([tenant_id for tenant_id, _ in ranked])
    return SearchAnalytics(
        generated_at=now,
        tenant=tenant,
        days=days,
        score_kind=score_kind,
        figures=total,
        per_day=added["per_day"],
        histogram=added["histogram"],
        unscored_first_pages=added["unscored"],
        min_score=min_score,
        zero_result_queries=zero_result_queries(since, now, tenant),
        tenants=[TenantRow(tenants[tenant_id], f) for tenant_id, f in ranked if tenant_id in tenants],
        tenant_count=len(figures),
    )
