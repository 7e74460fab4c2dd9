"""Retries and errors: how often calls fail or repeat, why, and what that cost."""

from __future__ import annotations

from llmtop.store.views import Snapshot
from llmtop.tui.format import money, pct
from llmtop.tui.widgets.panel import Panel, line, lines
from rich.text import Text


class ErrorsPanel(Panel):
    TITLE = "Retries & errors"
    SPARK = True

    def body(self, s: Snapshot) -> Text:
        e = s.errors
        err_style = "bold red" if (e.error_rate or 0) >= 0.05 else ""
        classes = " · ".join(f"{k} {n}" for k, n in e.by_class[:3]) or "no errors"
        return lines(
            line(
                "errors ",
                (pct(e.error_rate), err_style),
                " · retries ",
                (pct(e.retry_rate), "bold"),
            ),
            line("fallbacks ", (pct(e.fallback_rate), "bold")),
            line(classes),
            line("spent on failures ", (money(e.failed_spend), "yellow")),
            line("spent on retries ", (money(e.retry_spend), "yellow")),
        )

    def spark(self, s: Snapshot) -> tuple[float, ...]:
        return s.errors.spark
