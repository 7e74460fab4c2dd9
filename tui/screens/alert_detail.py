"""One alert, whole: its rule and numbers, its likely causes with the dollars each explains,
owner, since, the other alerts of its incident, and the scope's spend over time with the
alert's start marked. `enter` goes on to the drill-down that explains it; `k` and `z` act on it.

The figures are read by a worker (tui.alerting.read_figures) that posts AlertFiguresLoaded;
the handler assigns `figures`; watch_figures renders the numbers and the chart.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from llmtop.alerts.detectors import RATE_RULES
from llmtop.store.filters import format_window
from llmtop.tui.alerting import (
    PER_CALL_RULES,
    AlertFigures,
    incident_severity,
    is_escalated,
    read_figures,
)
from llmtop.tui.format import money, safe, stamp
from llmtop.tui.messages import AlertFiguresLoaded
from llmtop.tui.widgets.spend_chart import SpendChart
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

#: What the screen was closed with: (what, fingerprint); what is "jump", "ack" or "snooze".
Outcome = tuple[str, str]


def _ago(seconds: float) -> str:
    if seconds < 60:
        return "just now"
    return f"{format_window(max(60, round(seconds / 60) * 60))} ago"


def _badge(severity: str) -> Text:
    style = "bold reverse red" if severity == "critical" else "bold reverse yellow"
    return Text(f" {severity.upper()} ", style=style)


def numbers_text(rule: str, title: str, f: AlertFigures | None, error: str | None) -> Text:
    """The rule's own verdict, then the scope's window against its baseline."""
    t = Text()
    t.append("Rule ", style="bold")
    t.append_text(safe(rule))
    t.append(" · ")
    t.append_text(safe(title))
    t.append("\n")
    if error:
        t.append(f"figures: {error}", style="bold red")
        return t
    if f is None:
        t.append("reading the figures…", style="dim")
        return t
    w = format_window(round(f.window))
    if rule in PER_CALL_RULES:
        return _per_call(t, f, w)
    if rule in RATE_RULES:
        # A rate rule's verdict is its rate (the title); the scope's spend is context, and in
        # bold beside it read as a second, contradicting verdict.
        t.append("Spend, for context: ", style="dim")
    t.append(f"Last {w}: ", style="bold")
    t.append(f"{money(f.spend)} over {f.requests} requests")
    t.append(f" · {f.baseline_label}: ", style="bold")
    if f.mean is None:
        t.append("no data")
        return t
    t.append(money(f.mean))
    if f.sigma is not None:
        t.append(f" ± {money(f.sigma)} (σ)")
    t.append("\n")
    parts = [
        f"{f.sigmas:+.1f}σ" if f.sigmas is not None else "σ: —",
        f"×{f.ratio:.1f} its baseline" if f.ratio is not None else "new spend",
        f"{'+' if (f.extra or 0) >= 0 else '−'}{money(abs(f.extra or 0.0))} over it",
    ]
    t.append(" · ".join(parts), style="dim" if rule in RATE_RULES else "bold")
    return t


def _per_call(t: Text, f: AlertFigures, w: str) -> Text:
    """A cost-per-call alert's verdict in its own terms: each call since the change against
    the calls of the same span on the previous days."""
    now_pc, base_pc = f.per_call, f.baseline_per_call
    t.append(f"Since the change ({w}): ", style="bold")
    if now_pc is None:
        t.append("no calls")
        return t
    t.append(f"{money(now_pc)} a call over {f.requests} calls")
    t.append(f" · {f.baseline_label}: ", style="bold")
    if base_pc is None:
        t.append("no calls")
        return t
    t.append(f"{money(base_pc)} a call over {sum(f.baseline_requests)} calls\n")
    t.append(
        f"×{now_pc / base_pc:.1f} per call" if base_pc > 0 else "calls were free", style="bold"
    )
    return t


def causes_table(causes: tuple[tuple[str, float], ...]) -> Table:
    table = Table(box=None, padding=(0, 1), show_edge=False, expand=True)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("explains", justify="right", no_wrap=True)
    table.add_column("likely cause", ratio=1)
    for i, (text, dollars) in enumerate(causes, 1):
        table.add_row(str(i), money(dollars) if dollars else "—", safe(text))
    if not causes:
        table.add_row("", "", Text("none found", style="dim"))
    return table


def related_table(alert: Any, root: Any, children: list[Any]) -> Table:
    table = Table(box=None, padding=(0, 1), show_edge=False, show_header=False, expand=True)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(ratio=1, no_wrap=True)
    for a in (root, *children):
        if a.fingerprint == alert.fingerprint:
            continue
        kind = "root" if a is root else a.severity
        scope = safe(a.scope or "all", "bold")
        table.add_row(Text(kind, style="dim"), scope, safe(f"{a.rule} · {a.title}"))
    if table.row_count == 0:
        table.add_row(Text("none", style="dim"), Text(""), Text(""))
    return table


class AlertDetailScreen(ModalScreen["Outcome | None"]):
    DEFAULT_CSS = """
    AlertDetailScreen {
        align: center middle;
    }
    /* The whole screen: the chart gets the width, and no dashboard shows around it. */
    #alert-detail-body {
        width: 100%;
        height: 1fr;
        border: round $error;
        background: $surface;
        padding: 0 1;
    }
    #alert-detail-body > .h {
        margin-top: 1;
    }
    #alert-numbers, #alert-who {
        height: auto;
    }
    #alert-chart {
        height: 14;
        margin-top: 1;
    }
    """
    BINDINGS = [
        Binding("escape,q,backspace", "close", "Close"),
        Binding("enter,d", "jump", "Drill down"),
        Binding("k", "act('ack')", "Ack"),
        Binding("z", "act('snooze')", "Snooze…"),
    ]
    figures: reactive[AlertFigures | None] = reactive(None, init=False)
    error: reactive[str | None] = reactive(None, init=False)

    def __init__(
        self,
        alert: Any,
        incident: tuple[Any, list[Any]] | None,
        db_path: Path,
        window: float,
        now: float,
    ) -> None:
        super().__init__()
        self.alert = alert
        self.root, self.related = incident if incident is not None else (alert, [])
        self.db_path = db_path
        self.window = window
        self.now = now

    def compose(self) -> ComposeResult:
        a = self.alert
        sev = incident_severity(self.root, self.related)
        is_root = a.fingerprint == self.root.fingerprint
        # A related alert has its own severity (the panel's line shows it); the incident's
        # severity, escalation and state are said as the incident's, not as this alert's.
        head = _badge(sev if is_root else a.severity)
        if is_root and (is_escalated(a) or is_escalated(self.root)):
            head.append(" escalated ", style="bold red")
        head.append(" ")
        head.append_text(safe(a.scope or "all", "bold"))
        if not is_root:
            head.append(f" · {a.rule} · filed under ", style="dim")
            head.append_text(safe(self.root.scope or "all", "dim bold"))
            mark = ", escalated" if is_escalated(self.root) else ""
            head.append(f" (a {sev} incident{mark})", style="dim")
        head.append(f" · {a.state}", style="dim")
        if a.state == "snoozed" and a.snoozed_until:
            head.append(f" until {stamp(a.snoozed_until)[:16]}", style="dim")
        who = Text()
        who.append("Owner ", style="bold")
        who.append_text(safe(a.owner or "—"))
        who.append(" · ")
        who.append("Since ", style="bold")
        who.append(f"{stamp(a.since)[:16]} ({_ago(self.now - a.since)})")
        with VerticalScroll(id="alert-detail-body"):
            yield Static(head, classes="title")
            yield Static(numbers_text(a.rule, a.title, None, None), id="alert-numbers")
            yield Static(who, id="alert-who")
            # Ranked, not sorted by the dollars column: the rule's own signal (a hit rate, an
            # error rate) first, then by dollars explained, a new version weighing a little more.
            yield Static(Text("Likely causes, most likely first", style="bold"), classes="h")
            yield Static(causes_table(a.causes), id="alert-causes")
            chart = SpendChart(id="alert-chart")
            chart.since = a.since
            yield chart
            # The alerts the table lists: the root and its children, less this one.
            n = sum(
                1 for r in (self.root, *self.related) if r.fingerprint != self.alert.fingerprint
            )
            yield Static(Text(f"Related alerts of this incident ({n})", style="bold"), classes="h")
            yield Static(related_table(a, self.root, self.related), id="alert-related")
        yield Footer()

    def on_mount(self) -> None:
        self.run_worker(
            partial(self._read, self.db_path, self.alert, self.window, self.now),
            thread=True,
            group="alert-detail",
        )

    def _read(self, db_path: Path, alert: Any, window: float, now: float) -> None:
        try:
            figures = read_figures(db_path, alert, window, now)
        except Exception as exc:  # a failed read is a line on the screen, not a crash
            self.post_message(AlertFiguresLoaded(str(exc)))
            return
        self.post_message(AlertFiguresLoaded(figures))

    def on_alert_figures_loaded(self, message: AlertFiguresLoaded) -> None:
        if isinstance(message.figures, str):
            self.error = message.figures
        else:
            self.figures = message.figures

    def watch_figures(self, figures: AlertFigures | None) -> None:
        self.query_one("#alert-numbers", Static).update(
            numbers_text(self.alert.rule, self.alert.title, figures, self.error)
        )
        self.query_one(SpendChart).figures = figures

    def watch_error(self, error: str | None) -> None:
        self.query_one("#alert-numbers", Static).update(
            numbers_text(self.alert.rule, self.alert.title, self.figures, error)
        )

    def action_close(self) -> None:
        self.dismiss(None)

    def action_jump(self) -> None:
        self.dismiss(("jump", self.alert.fingerprint))

    def action_act(self, what: str) -> None:
        if self.alert.state != "resolved":
            self.dismiss((what, self.alert.fingerprint))
