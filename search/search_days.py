"""The search log rolled up by day: per tenant, UTC day and kind of search,
the counts the console's analytics show (searches, first pages, first pages
that found nothing), the first pages' best scores and the searches' times in
fixed bins, and the searches that led to a click, an add-to-cart or a
purchase (SearchDay rows).

A day is rolled up once it is over: beat rolls up the days just ended every
SEARCH_DAY_ROLLUP_SECONDS (yesterday again, for the feedback that comes
late), and the analytics roll up any earlier day of their window still
missing. Today's searches are summarized from the log as they are read:
with a million searches a month, a page reads a few thousand day rows and a
day of the log, not a month of it (bench/search_analytics.py).

Times are binned on a log scale, TOOK_RATIO apart: a percentile read from
the bins is interpolated within one, at most TOOK_RATIO - 1 (10%) off the
exact value and usually much closer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from catalog.models import Tenant
from search.models import SearchDay, SearchDayRollup, SearchFeedback, SearchLog

logger = logging.getLogger(__name__)

LOG_TABLE = SearchLog._meta.db_table
FEEDBACK_TABLE = SearchFeedback._meta.db_table
# The best score's bins over [SCORE_MIN, SCORE_MAX]; a score outside falls in
# the first or last.
SCORE_BINS = 20
SCORE_MIN, SCORE_MAX = 0.0, 1.0
SCORE_WIDTH = (SCORE_MAX - SCORE_MIN) / SCORE_BINS
# took_ms's bins: bin i holds [TOOK_MIN_MS * TOOK_RATIO**i, ... ** (i + 1)),
# the first everything faster, the last everything slower (past 2 minutes).
TOOK_MIN_MS = 0.1
TOOK_RATIO = 1.1
TOOK_BINS = 150
EVENT_FIELDS = {
    SearchFeedback.Event.CLICK: "with_click",
    SearchFeedback.Event.ADD_TO_CART: "with_add_to_cart",
    SearchFeedback.Event.PURCHASE: "with_purchase",
}
# A day row's fields as as_tuple() and the analytics read them.
FIELDS = (
    "tenant_id",
    "day",
    "kind",
    "searches",
    "first_pages",
    "zero_results",
    "unscored",
    "score_bins",
    "took_first_bin",
    "took_bins",
    *EVENT_FIELDS.values(),
)
# Beat rolls up this many days back from yesterday each run.
RECENT_DAYS = 2
# pg_advisory_xact_lock's first key: one day is rolled up by one process at a time.
LOCK_KEY = 0x5EA4D


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def log_scope(start: datetime, end: datetime, tenant: Tenant | None, prefix: str = "") -> tuple[str, list[Any]]:
    """The WHERE clause and its parameters of the log's searches from `start` to `end`."""
    where = f"{prefix}created_at >= %s AND {prefix}created_at < %s"
    params: list[Any] = [start, end]
    if tenant is not None:
        where, params = f"{where} AND {prefix}tenant_id = %s", [*params, tenant.pk]
    return where, params


def summarize(start: datetime, end: datetime, tenant: Tenant | None = None) -> list[dict[str, Any]]:
    """The log's searches from `start` to `end` as SearchDay rows' FIELDS
    (plain dicts: a page reads today's this way, and model instances cost)."""
    days: dict[tuple[int, date, str], dict[str, Any]] = {}

    def row(tenant_id: int, day: date, kind: str) -> dict[str, Any]:
        key = (tenant_id, day, kind)
        if key not in days:
            days[key] = {
                **dict.fromkeys(FIELDS, 0),
                "tenant_id": tenant_id,
                "day": day,
                "kind": kind,
                "score_bins": [0] * SCORE_BINS,
                "took_bins": [0] * TOOK_BINS,
            }
        return days[key]

    where, params = log_scope(start, end, tenant)
    with connection.cursor() as cursor:
        # Per first page its best score's bin, found or left out by the
        # minimum (-1: no score at all); -2: a later page.
        cursor.execute(
            f"""SELECT tenant_id, (created_at AT TIME ZONE 'UTC')::date, kind,
                       CASE WHEN "offset" > 0 THEN -2 WHEN COALESCE(best_score, best_below_minimum) IS NULL THEN -1
                            ELSE least(greatest(floor((COALESCE(best_score, best_below_minimum) - %s) / %s)::int, 0),
                                       %s) END,
                       count(*), count(*) FILTER (WHERE result_count = 0)
                FROM {LOG_TABLE} WHERE {where} GROUP BY 1, 2, 3, 4""",  # noqa: S608 - constants
            [SCORE_MIN, SCORE_WIDTH, SCORE_BINS - 1, *params],
        )
        for tenant_id, day, kind, score_bin, n, empty in cursor.fetchall():
            summary = row(tenant_id, day, kind)
            summary["searches"] += n
            if score_bin == -2:
                continue
            summary["first_pages"] += n
            summary["zero_results"] += empty
            if score_bin == -1:
                summary["unscored"] += n
            else:
                summary["score_bins"][score_bin] += n
        cursor.execute(
            f"""SELECT tenant_id, (created_at AT TIME ZONE 'UTC')::date, kind,
                       least(greatest(floor(ln(greatest(took_ms, %s) / %s) / ln(%s))::int, 0), %s), count(*)
                FROM {LOG_TABLE} WHERE {where} GROUP BY 1, 2, 3, 4""",  # noqa: S608 - constants
            [TOOK_MIN_MS, TOOK_MIN_MS, TOOK_RATIO, TOOK_BINS - 1, *params],
        )
        for tenant_id, day, kind, took_bin, n in cursor.fetchall():
            row(tenant_id, day, kind)["took_bins"][took_bin] += n
        where, params = log_scope(start, end, tenant, "s.")
        cursor.execute(
            f"""SELECT s.tenant_id, (s.created_at AT TIME ZONE 'UTC')::date, s.kind, f.event,
                       count(DISTINCT f.search_id)
                FROM {FEEDBACK_TABLE} f JOIN {LOG_TABLE} s ON s.id = f.search_id
                WHERE {where} GROUP BY 1, 2, 3, 4""",  # noqa: S608 - constants
            params,
        )
        for tenant_id, day, kind, event, n in cursor.fetchall():
            row(tenant_id, day, kind)[EVENT_FIELDS[event]] = n
    for summary in days.values():
        _trim_took_bins(summary)
    return list(days.values())


def _trim_took_bins(summary: dict[str, Any]) -> None:
    filled = [number for number, count in enumerate(summary["took_bins"]) if count]
    first, last = (filled[0], filled[-1] + 1) if filled else (0, 0)
    summary["took_first_bin"], summary["took_bins"] = first, summary["took_bins"][first:last]


def as_tuple(row: dict[str, Any]) -> tuple:
    return tuple(row[name] for name in FIELDS)


def roll_up(day: date) -> int:
    """Store one UTC day's SearchDay rows, replacing any earlier ones; how many."""
    start = day_start(day)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_KEY, day.toordinal()])
        SearchDay.objects.filter(day=day).delete()
        rows = SearchDay.objects.bulk_create(SearchDay(**row) for row in summarize(start, start + timedelta(days=1)))
        SearchDayRollup.objects.update_or_create(day=day, defaults={"rolled_up_at": timezone.now()})
    return len(rows)


def ensure_rolled_up(days: Iterable[date]) -> None:
    """Roll up those of `days` that are not yet."""
    wanted = set(days)
    done = set(SearchDayRollup.objects.filter(day__in=wanted).values_list("day", flat=True))
    for day in sorted(wanted - done):
        roll_up(day)


def roll_up_recent(now: datetime | None = None) -> int:
    """Beat: roll up the days just ended again, and any closed day of the
    log's retention not rolled up yet; how many days were rolled up."""
    today = (now or timezone.now()).astimezone(UTC).date()
    recent = [today - timedelta(days=n) for n in range(1, RECENT_DAYS + 1)]
    for day in recent:
        roll_up(day)
    kept = [today - timedelta(days=n) for n in range(RECENT_DAYS + 1, settings.SEARCH_LOG_DAYS + 1)]
    missing = set(kept) - set(SearchDayRollup.objects.filter(day__in=kept).values_list("day", flat=True))
    ensure_rolled_up(missing)
    if missing:
        logger.info("rolled up %d days of searches that were not yet", len(missing))
    return len(recent) + len(missing)


def prune(cutoff: datetime) -> None:
    """Drop the days wholly before `cutoff`, as the log's searches are."""
    first_kept = cutoff.astimezone(UTC).date()
    SearchDay.objects.filter(day__lt=first_kept).delete()
    SearchDayRollup.objects.filter(day__lt=first_kept).delete()


def percentile(bins: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 to 1) of the times counted in `bins` (TOOK_BINS of
    them), interpolated on the log scale within its bin; None for none."""
    total = sum(bins)
    if not total:
        return None
    rank = q * total
    seen = 0
    for number, count in enumerate(bins):
        if count and seen + count >= rank:
            fraction = (rank - seen) / count
            return TOOK_MIN_MS * math.pow(TOOK_RATIO, number + fraction)
        seen += count
    return TOOK_MIN_MS * math.pow(TOOK_RATIO, len(bins))
