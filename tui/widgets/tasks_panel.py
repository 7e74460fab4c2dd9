"""Tasks: how many tasks the window's calls made up, how many succeeded, and what one successful
task cost per feature (the spend of failed tasks counted against the successes)."""

from __future__ import annotations

from llmtop.store.filters import format_window
from llmtop.store.views import TaskBoard, TaskStats
from llmtop.tui.format import clock, count, money, pct, safe
from llmtop.tui.widgets.panel import Panel, line, lines
from rich.text import Text
from textual.reactive import reactive

#: Features listed under the totals, biggest spend first.
ROWS = 3
NAME = 20


def _row(s: TaskStats) -> Text:
    name = safe(s.key).plain
    name = name if len(name) <= NAME else name[: NAME - 1] + "…"
    ok_style = "bold red" if (s.success_rate or 0.0) < 0.9 else ""
    return line(
        f"{name:<{NAME}} {count(s.tasks):>7} ",
        (f"{pct(s.success_rate):>7}", ok_style),
        f" {money(s.cost_per_success):>10}",
    )


class TasksPanel(Panel):
    TITLE = "Tasks"

    board: reactive[TaskBoard | None] = reactive(None)

    def watch_board(self, board: TaskBoard | None) -> None:
        if board is None:
            return
        self.border_title = f"Tasks ({format_window(board.end - board.start)})"
        self.border_subtitle = f"as of {clock(board.end)}"
        self.query_one(".panel-body").update(self.figures(board))  # type: ignore[attr-defined]

    def figures(self, b: TaskBoard) -> Text:
        t = b.total
        recorded = t.recorded / t.tasks if t.tasks else None
        rows = [
            line(
                f"{count(t.tasks)} tasks · succeeded ",
                (pct(t.success_rate), "bold"),
                " · per successful task ",
                (money(t.cost_per_success), "bold"),
            ),
            line(
                "spent on failed tasks ",
                (money(t.failed_spend), "yellow"),
                f" · outcomes recorded {pct(recorded, 0)}",
            ),
            line((f"{'feature':<{NAME}} {'tasks':>7} {'success':>7} {'$/success':>10}", "dim")),
        ]
        rows.extend(_row(s) for s in b.features[:ROWS])
        return lines(*rows)
