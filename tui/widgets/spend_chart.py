"""The alert detail's chart: the scope's spend over time, with the alert's start marked.

A textual-plotext plot (labelled axes, a well-kept plotting library), drawn in watch_figures
from the figures a worker read; the x axis is minutes relative to the instant the figures are
for, so the chart reads the same whatever the clock says.
"""

from __future__ import annotations

from typing import Any

from llmtop.store.filters import format_window
from llmtop.tui.format import clock, money
from textual.reactive import reactive
from textual_plotext import PlotextPlot


def _minutes(m: float) -> str:
    if m == 0:
        return "now"
    m = -m
    return f"-{m / 60:g}h" if m >= 60 and m % 60 == 0 else f"-{m:g}m"


class SpendChart(PlotextPlot):
    """Bars of $ per bucket; a vertical line where the alert started."""

    figures: reactive[Any] = reactive(None)
    #: Epoch seconds the alert started (its `since`).
    since: reactive[float | None] = reactive(None)

    def watch_figures(self) -> None:
        self.draw()

    def watch_since(self) -> None:
        self.draw()

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        f = self.figures
        if f is None or not f.series:
            plt.title("reading…")
            self.refresh()
            return
        xs = [(t + f.bucket / 2 - f.now) / 60.0 for t, _ in f.series]
        ys = [v for _, v in f.series]
        plt.bar(xs, ys, width=0.8)
        if self.since is not None and xs[0] <= (self.since - f.now) / 60.0 <= 0:
            plt.vline((self.since - f.now) / 60.0, "red")
            plt.title(f"alert started {clock(self.since)[:5]} (red line)")
        span = -xs[0] + f.bucket / 120.0
        step = next((m for m in (5, 10, 15, 30, 60, 120, 240, 720, 1440) if span / m <= 6), 2880)
        ticks = [-step * i for i in range(int(span // step), -1, -1)]
        plt.xticks(ticks, [_minutes(t) for t in ticks])
        top = max(ys) or 1.0
        plt.yticks([top * i / 3 for i in range(4)], [money(top * i / 3) for i in range(4)])
        plt.xlabel(f"time before {clock(f.now)[:5]}")
        plt.ylabel(f"$ per {format_window(round(f.bucket))}")
        self.refresh()
