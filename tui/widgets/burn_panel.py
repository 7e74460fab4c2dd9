"""Burn rate: how fast money goes now, against this window and the same hour last week."""

from __future__ import annotations

from llmtop.store.views import Snapshot
from llmtop.tui.format import clock, day, money
from llmtop.tui.widgets.panel import Panel, line, lines
from rich.text import Text
from textual.reactive import reactive


class BurnPanel(Panel):
    TITLE = "Burn rate"
    SPARK = True
    #: The instant the figures are for when the view is not live (paused, or a fixed range):
    #: "now" would claim the present for a range that ended yesterday.
    at: reactive[float | None] = reactive(None, init=False, repaint=False)

    def watch_at(self) -> None:
        self._paint(self.snapshot)

    def body(self, s: Snapshot) -> Text:
        b = s.burn
        now = "now" if self.at is None else f"at {clock(self.at)[:5]}"
        vs: tuple[str, str] | str = ""
        if b.per_hour_baseline:
            ratio = b.per_hour_now / b.per_hour_baseline
            style = "bold red" if ratio >= 2 else ("yellow" if ratio >= 1.25 else "green")
            vs = (f" {ratio:.1f}× base", style)
        elif b.per_hour_baseline is None:
            vs = ""  # the base's own line says why there is none
        return lines(
            line((f"{money(b.per_hour_now)}/h", "bold"), f" {now}", vs),
            line(f"{money(b.per_hour_window)}/h avg · {b.requests_per_min:.0f} req/min {now}"),
            line(
                f"7d same-hour base {money(b.per_hour_baseline)}/h"
                if b.per_hour_baseline is not None
                else ("7d same-hour base: none yet", "dim")
            ),
            line(
                f"{'today' if self.at is None else day(self.at)} {money(b.today)}"
                f" · mo {money(b.month)}"
            ),
            line("→ month end ", (money(b.month_projection), "bold"))
            if b.month_projection is not None
            else line(("→ month end: under 1h of data", "dim")),
        )

    def spark(self, s: Snapshot) -> tuple[float, ...]:
        return s.burn.spark
