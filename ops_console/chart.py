"""The console's bar charts as SVG geometry the templates draw: stacked bars
(one segment per series) with a label under some of them, and optionally a
vertical marker line. No JavaScript, nothing to load."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ops_console.dashboard import Throughput
from ops_console.search_analytics import KINDS, SearchAnalytics
from search.search_days import SCORE_MAX, SCORE_MIN

BAR_WIDTH = 22
BAR_GAP = 6
PLOT_HEIGHT = 120
LABEL_EVERY_HOURS = 3


@dataclass(frozen=True)
class Segment:
    series: str  # the CSS class that colours it
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    x: int
    segments: tuple[Segment, ...]  # bottom first
    label: str  # drawn under the bar; empty for none
    title: str  # the tooltip


@dataclass(frozen=True)
class Column:
    """One bar's data: a value per series, in the chart's series order."""

    values: Sequence[int]
    label: str
    title: str


def stacked_bars(
    series: Sequence[str],
    columns: Sequence[Column],
    *,
    bar_width: int = BAR_WIDTH,
    marker_at: float | None = None,
    marker_title: str = "",
) -> dict:
    """`marker_at` (0 to 1 along the horizontal axis) draws a vertical line there."""
    peak = max((sum(column.values) for column in columns), default=0)
    scale = PLOT_HEIGHT / (peak or 1)
    step = bar_width + BAR_GAP
    bars = []
    for number, column in enumerate(columns):
        top = float(PLOT_HEIGHT)
        segments = []
        for name, value in zip(series, column.values, strict=True):
            height = value * scale
            top -= height
            segments.append(Segment(name, top, height))
        bars.append(Bar(x=number * step, segments=tuple(segments), label=column.label, title=column.title))
    width = len(columns) * step
    return {
        "bars": bars,
        "peak": peak,
        "width": width,
        "height": PLOT_HEIGHT,
        "bar_width": bar_width,
        "label_y": PLOT_HEIGHT + 14,
        "total_height": PLOT_HEIGHT + 20,
        "marker_x": None if marker_at is None else max(round(marker_at * width - BAR_GAP / 2, 1), 0.0),
        "marker_title": marker_title,
    }


def throughput_chart(hours: Sequence[Throughput]) -> dict:
    return stacked_bars(
        ("ready", "failed"),
        [
            Column(
                values=(hour.ready, hour.failed),
                label=f"{hour.hour:%H}:00" if number % LABEL_EVERY_HOURS == 0 else "",
                title=f"{hour.hour:%Y-%m-%d %H}:00 UTC: {hour.ready} ready, {hour.failed} failed",
            )
            for number, hour in enumerate(hours)
        ],
    )


def analytics_charts(analytics: SearchAnalytics) -> dict:
    """The search analytics page's two charts: searches per day by kind, and
    the histogram of the best score with the tenant's minimum score on it."""
    every = max(1, len(analytics.per_day) // 10)
    per_day = stacked_bars(
        KINDS,
        [
            Column(
                values=[day.by_kind[kind] for kind in KINDS],
                label=f"{day.day:%m-%d}" if number % every == 0 else "",
                title=f"{day.day:%Y-%m-%d}: {day.total} searches ("
                + ", ".join(f"{day.by_kind[kind]} {kind}" for kind in KINDS)
                + ")",
            )
            for number, day in enumerate(analytics.per_day)
        ],
        bar_width=BAR_WIDTH if len(analytics.per_day) <= 31 else 8,
    )
    span = SCORE_MAX - SCORE_MIN
    minimum = analytics.min_score
    scores = stacked_bars(
        ("score",),
        [
            Column(
                values=(score_bin.count,),
                label=f"{score_bin.low:.2f}" if number % 4 == 0 else "",
                title=f"best score {score_bin.low:.2f} to {score_bin.high:.2f}: {score_bin.count} searches",
            )
            for number, score_bin in enumerate(analytics.histogram)
        ],
        marker_at=None if minimum is None else min(max((minimum - SCORE_MIN) / span, 0.0), 1.0),
        marker_title=f"the tenant's minimum score, {minimum:.2f}" if minimum is not None else "",
    )
    return {"per_day_chart": per_day, "score_chart": scores}
