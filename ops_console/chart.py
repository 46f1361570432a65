"""The throughput chart of the dashboard: stacked bars (ready, failed) per
hour, as SVG geometry the template draws. No JavaScript, nothing to load."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ops_console.dashboard import Throughput

BAR_WIDTH = 22
BAR_GAP = 6
PLOT_HEIGHT = 120
LABEL_EVERY_HOURS = 3


@dataclass(frozen=True)
class Bar:
    x: int
    ready_y: float
    ready_height: float
    failed_y: float
    failed_height: float
    label: str  # the hour, on every LABEL_EVERY_HOURS-th bar
    title: str  # the tooltip


def throughput_chart(hours: Sequence[Throughput]) -> dict:
    peak = max((hour.ready + hour.failed for hour in hours), default=0) or 1
    bars = []
    for number, hour in enumerate(hours):
        ready_height = PLOT_HEIGHT * hour.ready / peak
        failed_height = PLOT_HEIGHT * hour.failed / peak
        bars.append(
            Bar(
                x=number * (BAR_WIDTH + BAR_GAP),
                ready_y=PLOT_HEIGHT - ready_height,
                ready_height=ready_height,
                failed_y=PLOT_HEIGHT - ready_height - failed_height,
                failed_height=failed_height,
                label=f"{hour.hour:%H}:00" if number % LABEL_EVERY_HOURS == 0 else "",
                title=f"{hour.hour:%Y-%m-%d %H}:00 UTC: {hour.ready} ready, {hour.failed} failed",
            )
        )
    return {
        "bars": bars,
        "peak": peak if any(hour.ready or hour.failed for hour in hours) else 0,
        "width": len(hours) * (BAR_WIDTH + BAR_GAP),
        "height": PLOT_HEIGHT,
        "bar_width": BAR_WIDTH,
        "label_y": PLOT_HEIGHT + 14,
        "total_height": PLOT_HEIGHT + 20,
    }
