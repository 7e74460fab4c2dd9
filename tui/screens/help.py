"""`?`: every key, in one place, like htop's F1."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, str], ...] = (
    ("1 2 3 4 5 6", "window: 5m, 1h, 6h, 24h, 7d, 30d"),
    ("w", "custom window: a length (90m) or a range (START .. END)"),
    ("p", "pause / resume live updates (the clock freezes)"),
    ("g", "group by another dimension (any tag, model, error class…)"),
    ("/", "filter: team=search model~gpt-4o* status=failure"),
    ("enter", "drill into the selected row / open a request's detail"),
    ("esc, backspace", "back up the drill path / close a screen"),
    ("l", "list the individual requests at this level"),
    ("s / S", "sort by the next column / reverse the sort (or click a header; ▼▲ shows it)"),
    ("d", "Δ column: against the previous window / the same window last week"),
    ("c", "time chart of the grouping's top 5 series"),
    (
        "e",
        "export the view, every column, to a .csv or .json file (a request list: all its requests)",
    ),
    ("y", "copy the selected trace id, request id or group name (OSC 52)"),
    ("ctrl+p", "command palette: every llmtop command by name"),
    ("a", "focus the alerts list (its order holds while focused; ● new)"),
    ("k  (in alerts)", "acknowledge the incident under the cursor"),
    ("z  (in alerts)", "snooze it: 15m, 1h, 4h, until tomorrow 09:00, or typed"),
    ("space  (in alerts)", "unfold / fold an incident's related alerts"),
    ("enter  (in alerts)", "the alert's detail: numbers, causes, related, chart"),
    ("tab  (in alerts)", "leave the list (the engine's order comes back)"),
    ("enter, d  (in a detail)", "jump to the drill-down that explains the alert"),
    ("k, z  (in a detail)", "acknowledge / snooze the alert's incident"),
    ("r", "reload now (and re-read the rules file)"),
    ("?", "this help"),
    ("q", "quit"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for k, what in KEYS:
            table.add_row(Text(k, style="bold"), Text(what))
        with VerticalScroll(id="help-body"):
            yield Static(Text("llmtop keys", style="bold"), classes="title")
            yield Static(table)
            yield Static(
                Text(
                    "Mouse: click a row to select, a header to sort. "
                    "Unpriced = model not in the price catalogue (cost unknown, never $0); "
                    "unmetered = a stream that reported no usage.",
                    style="dim",
                )
            )

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
