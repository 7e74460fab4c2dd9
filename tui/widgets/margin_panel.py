"""Margin: each customer's LLM cost this month as a share of the plan they pay (`[plans]`),
worst projected share first, coloured at the margin rule's warning and paging shares."""

from __future__ import annotations

from datetime import datetime

from llmtop.store.views import CustomerMargin, MarginBoard
from llmtop.tui.format import money, pct, safe
from llmtop.tui.widgets.panel import Panel, line, lines
from rich.text import Text
from textual.reactive import reactive

#: Customers listed (the rest are counted on the last line).
ROWS = 3
NAME = 18


def _style(share: float, b: MarginBoard) -> str:
    if share * 100.0 >= b.critical_pct:
        return "bold red"
    if share * 100.0 >= b.share_pct:
        return "bold yellow"
    return ""


def _row(m: CustomerMargin, b: MarginBoard) -> Text:
    name = safe(m.customer).plain
    name = name if len(name) <= NAME else name[: NAME - 1] + "…"
    return line(
        f"{name:<{NAME}} {money(m.month_to_date):>9} {money(m.revenue):>8} ",
        (f"{pct(m.share, 0):>6}", _style(m.share, b)),
        " ",
        (f"{pct(m.projected_share, 0):>9}", _style(m.projected_share, b)),
    )


class MarginPanel(Panel):
    TITLE = "Margin"

    board: reactive[MarginBoard | None] = reactive(None)

    def watch_board(self, board: MarginBoard | None) -> None:
        if board is None:
            return
        self.border_title = f"Margin ({datetime.fromtimestamp(board.month_start):%B} to date)"
        self.query_one(".panel-body").update(self.figures(board))  # type: ignore[attr-defined]

    def figures(self, b: MarginBoard) -> Text:
        over = sum(1 for m in b.customers if m.share * 100.0 >= b.share_pct)
        rows = [
            line(
                f"{len(b.customers)} customers with a plan · ",
                (f"{over} past {b.share_pct:g}%", "bold yellow" if over else ""),
                " of their plan",
            ),
            line(
                (
                    f"{'customer':<{NAME}} {'cost':>9} {'plan':>8} {'share':>6} {'month end':>9}",
                    "dim",
                )
            ),
        ]
        rows.extend(_row(m, b) for m in b.customers[:ROWS])
        if len(b.customers) > ROWS:
            rows.append(line((f"+{len(b.customers) - ROWS} more", "dim")))
        return lines(*rows)
