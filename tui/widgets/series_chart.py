"""The time chart (`c`): spend per time bin of the current grouping's top series, one line each.

A textual-plotext plot (labelled axes, a legend, a well-kept plotting library), drawn in
watch_series from what a worker read; the x axis is minutes before the instant the numbers
are for, labelled with clock times, so the picture is the same whatever the wall clock says.
"""

from __future__ import annotations

from typing import Any

from llmtop.store.filters import format_window
from llmtop.tui.format import clock
from textual.reactive import reactive
from textual_plotext import PlotextPlot

#: Longest legend label (tag values can be 200 characters).
LEGEND = 24


class SeriesChart(PlotextPlot):
    #: A store.series.SeriesSet, or None while it is read.
    series: reactive[Any] = reactive(None)

    def watch_series(self) -> None:
        self.draw()

    def on_mount(self) -> None:
        self.draw()

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        s = self.series
        if s is None:
            plt.title("reading…")
            self.refresh()
            return
        if not s.series or not s.bins:
            plt.title("no spend in this window")
            self.refresh()
            return
        end = s.end
        xs = [(b + s.width - end) / 60.0 for b in s.bins]
        for line in s.series:
            name = "(none)" if line.key is None else str(line.key)
            if len(name) > LEGEND:
                name = name[: LEGEND - 1] + "…"
            plt.plot(xs, list(line.spend), label=name, marker="braille")
        ticks = [xs[0], xs[len(xs) // 2], xs[-1]]
        plt.xticks(ticks, [clock(end + x * 60)[:5] for x in ticks])
        plt.xlabel(f"time (minutes up to {clock(end)})")
        plt.ylabel(f"$ per {format_window(s.width)}")
        plt.title(f"spend by {s.dimension}, top {len(s.series)}")
        self.refresh()
