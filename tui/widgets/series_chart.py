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
#: Least share of a bin the window must cover for the bin to be plotted (see draw).
PARTIAL_MIN = 0.25


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
        # Bins are clock-aligned, so the first and last hold only part of the window: each is
        # plotted at the end of what it holds (the last at `end`, not minutes past it) and as a
        # full bin's worth (a last bin a minute old showed a drop while spend rose); one holding
        # under a quarter of a bin is left out.
        keep = []
        for i, b in enumerate(s.bins):
            lo, hi = max(b, s.start), min(b + s.width, end)
            if hi - lo >= PARTIAL_MIN * s.width:
                keep.append((i, (hi - end) / 60.0, s.width / (hi - lo)))
        if not keep:
            plt.title("no spend in this window")
            self.refresh()
            return
        xs = [x for _, x, _ in keep]
        for line in s.series:
            name = "(none)" if line.key is None else str(line.key)
            if len(name) > LEGEND:
                name = name[: LEGEND - 1] + "…"
            ys = [line.spend[i] * scale for i, _, scale in keep]
            plt.plot(xs, ys, label=name, marker="braille")
        ticks = [xs[0], xs[len(xs) // 2], xs[-1]]
        plt.xticks(ticks, [clock(end + x * 60)[:5] for x in ticks])
        plt.xlabel(f"time (minutes up to {clock(end)})")
        plt.ylabel(f"$ per {format_window(s.width)}")
        plt.title(f"spend by {s.dimension}, top {len(s.series)}")
        self.refresh()
