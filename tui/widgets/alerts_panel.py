"""Firing alerts: severity, scope, what, likely cause, owner, since; ack, snooze, jump (posted
as messages: the screen acts on them).

One line per incident: the alerts filed under an incident's root (Alert.parent) are folded into
its line as "+N related (25 customer, 24 user)" and unfold with space, so an incident that fires
55 alerts takes one line, not the whole panel.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmtop.tui.format import clock, safe
from llmtop.tui.messages import AckRequested, JumpRequested, SnoozeRequested
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import OptionList
from textual.widgets.option_list import Option

SNOOZE_SECONDS = 3600.0


def group_states(states: Sequence[Any]) -> list[tuple[Any, list[Any]]]:
    """(root, alerts filed under it) in the given order; an alert whose root is not among
    `states` (resolved, or from an older pass) stands on its own."""
    present = {s.fingerprint for s in states}
    children: dict[str, list[Any]] = {}
    roots = []
    for s in states:
        parent = getattr(s, "parent", None)
        if parent is not None and parent in present and parent != s.fingerprint:
            children.setdefault(parent, []).append(s)
        else:
            roots.append(s)
    return [(r, children.get(r.fingerprint, [])) for r in roots]


@dataclass(frozen=True)
class Waiting:
    """The line standing for alerts whose cause analysis is still to come: each is on its own
    until analysed (nothing yet ties it to an incident), and an incident's 50 customers must not
    take 50 lines meanwhile. They do not page until analysed (Alert.pending)."""

    fingerprint: str = "llmtop:pending"
    scope: str = ""
    rule: str = ""
    severity: str = "warning"
    state: str = "open"


def _badge(t: Text, severity: str) -> None:
    t.append(
        f" {severity.upper():8} ",
        style="bold reverse red" if severity == "critical" else "bold reverse yellow",
    )


def _kinds(items: Sequence[Any], scope: str | None = None) -> str:
    """ "25 customer, 24 user, 1 spike": scope dimensions, or the rule for an alert on `scope`
    itself (a root's burn rate beside its band)."""
    kinds = Counter(
        a.rule if a.scope == scope else (a.scope or "all").split("=", 1)[0] for a in items
    )
    return ", ".join(f"{n} {k}" for k, n in kinds.most_common())


def _waiting_line(items: Sequence[Any], severity: str) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    _badge(t, severity)
    t.append(f" {len(items)} alerts, likely causes being analysed", style="bold")
    t.append(f" ({_kinds(items)})")
    t.append(" · they page only if not part of an incident above", style="dim")
    return t


def related_text(root: Any, children: Sequence[Any]) -> str:
    return f"+{len(children)} related ({_kinds(children, root.scope)})" if children else ""


def _line(a: Any, related: str = "", child: bool = False) -> Text:
    sev = getattr(a, "severity", "warning")
    st = getattr(a, "state", "open")
    t = Text(no_wrap=True, overflow="ellipsis")
    if child:
        t.append("   └ ", style="dim")
    _badge(t, sev)
    if st != "open":
        t.append(f" {st} ", style="dim")
    t.append(" ")
    t.append_text(safe(getattr(a, "scope", "") or "all", "bold"))
    if related:  # before the long texts: the line ends in an ellipsis on narrow terminals
        t.append(" · ")
        t.append(related, style="bold")
    t.append(" · ")
    t.append_text(safe(getattr(a, "title", "")))
    t.append(" · cause: ")
    t.append_text(safe(getattr(a, "cause", "") or "—", "italic"))
    t.append(" · owner: ")
    t.append_text(safe(getattr(a, "owner", None) or "—", "bold"))
    since = getattr(a, "since", None) or getattr(a, "first_seen", None)
    if since:
        t.append(f" · since {clock(since)}", style="dim")
    return t


class AlertsPanel(Vertical):
    BINDINGS = [
        Binding("k", "ack", "Ack"),
        Binding("z", "snooze", "Snooze 1h"),
        Binding("enter", "jump", "Explain", show=False),
        Binding("space", "toggle_related", "Related"),
    ]
    states: reactive[list[Any]] = reactive(list)
    #: Roots whose related alerts are unfolded.
    expanded: reactive[frozenset[str]] = reactive(frozenset())

    def compose(self) -> ComposeResult:
        yield OptionList(id="alert-list")

    def on_mount(self) -> None:
        self._children: dict[str, list[Any]] = {}
        self.border_title = "Alerts"
        self.display = False

    def watch_states(self) -> None:
        self._render_list()

    def watch_expanded(self) -> None:
        self._render_list()

    def _render_list(self) -> None:
        live = [s for s in self.states if getattr(s, "state", "open") != "resolved"]
        self.display = bool(live)
        ol = self.query_one(OptionList)
        keep = self._selected()
        was = ol.highlighted  # clear_options() resets it
        visible: list[Any] = []
        options: list[Option] = []
        self._children = {}
        groups = group_states(live)
        waiting = [r for r, ch in groups if getattr(r, "pending", False) and not ch]
        if len(waiting) < 2:
            waiting = []
        lines: list[tuple[Any, list[Any], Text]] = []
        for r, ch in groups:
            if r not in waiting:
                lines.append((r, ch, _line(r, related_text(r, ch))))
            elif r is waiting[0]:  # where the first of them would stand: severity order holds
                sev = "critical" if any(w.severity == "critical" for w in waiting) else "warning"
                lines.append((Waiting(severity=sev), waiting, _waiting_line(waiting, sev)))
        for root, children, text in lines:
            self._children[root.fingerprint] = children
            visible.append(root)
            options.append(Option(text, id=root.fingerprint))
            if root.fingerprint in self.expanded:
                for c in children:
                    visible.append(c)
                    options.append(Option(_line(c, child=True), id=c.fingerprint))
        ol.clear_options()
        ol.add_options(options)
        self._visible = visible
        if visible:
            at = next(
                (i for i, s in enumerate(visible) if keep and s.fingerprint == keep.fingerprint),
                None,
            )
            ol.highlighted = at if at is not None else min(was or 0, len(visible) - 1)

    def focus_list(self) -> None:
        if self.display:
            self.query_one(OptionList).focus()

    def _selected(self) -> Any | None:
        if not self.is_mounted:
            return None
        ol = self.query_one(OptionList)
        vis = getattr(self, "_visible", [])
        if ol.highlighted is None or ol.highlighted >= len(vis):
            return None
        return vis[ol.highlighted]

    def action_toggle_related(self) -> None:
        a = self._selected()
        if a is None:
            return
        root = next((r for r, ch in self._children.items() if a in ch), a.fingerprint)
        if not self._children.get(root):
            return
        self.expanded = self.expanded ^ {root}

    def action_ack(self) -> None:
        a = self._selected()
        if a is not None and not isinstance(a, Waiting):
            self.post_message(AckRequested(a.fingerprint))

    def action_snooze(self) -> None:
        a = self._selected()
        if a is not None and not isinstance(a, Waiting):
            self.post_message(SnoozeRequested(a.fingerprint, time.time() + SNOOZE_SECONDS))

    def action_jump(self) -> None:
        a = self._selected()
        drill = getattr(a, "drill", None) if a is not None else None
        if drill:
            self.post_message(JumpRequested(*drill))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_jump()
