"""`c`: the time chart of the current grouping's top series, read in a worker thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmtop.tui.widgets.series_chart import SeriesChart
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static


class SeriesLoaded(Message):
    """The chart's series were read (a store.series.SeriesSet, or None when the read failed)."""

    def __init__(self, series: Any, error: str | None = None) -> None:
        super().__init__()
        self.series = series
        self.error = error


class ChartScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,c,backspace", "dismiss", "Close")]

    def __init__(self, title: str, load: Callable[[], Any]) -> None:
        super().__init__()
        self.title_text = title
        self.load = load

    def compose(self) -> ComposeResult:
        with Vertical(id="chart-box"):
            yield Static(Text(self.title_text), classes="title")
            yield SeriesChart(id="chart")
            yield Static("", id="chart-error")

    def on_mount(self) -> None:
        self.run_worker(self._read, thread=True, group="chart")

    def _read(self) -> None:
        try:
            self.post_message(SeriesLoaded(self.load()))
        except Exception as exc:  # a failed read is a line on the screen, not a crash
            self.post_message(SeriesLoaded(None, str(exc)))

    def on_series_loaded(self, message: SeriesLoaded) -> None:
        if message.error:
            self.query_one("#chart-error", Static).update(Text(message.error, style="bold red"))
        self.query_one(SeriesChart).series = message.series

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
