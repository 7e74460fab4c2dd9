"""Firing alerts: severity, scope, what, likely cause, owner, since; ack, snooze, jump (posted
as messages: the screen acts on them).

One line per incident: the alerts filed under an incident's root (Alert.parent) are folded into
its line as "+N related (25 customer, 24 user)" and unfold with space, so an incident that fires
55 alerts takes one line, not the whole panel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmtop.tui.alerting import incident_severity, is_escalated
from llmtop.tui.format import clock, safe, until
from llmtop.tui.messages import AckRequested, AlertDetailRequested, SnoozeLengthRequested
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import OptionList
from textual.widgets.option_list import Option


def group_states(states: Sequence[Any]) -> list[tuple[Any, list[Any]]]:
    """(root, alerts filed under it) in the given order; an alert whose root is not among
    `states` (resolved, or from an older pass) stands on its own."""
    present = {s.fingerprint for s in states}

    def stored_parent(s: Any) -> str | None:
        p = getattr(s, "parent", None)
        return p if p is not None and p in present and p != s.fingerprint else None

    # One incident, one line. Parents are recorded per pass, so a root gone quiet and the alert
    # firing now on its scope are both roots of the one incident (two lines, one "quiet 1m"):
    # the others go under the firing one (the first listed, when none or several fire).
    lead: dict[str, str] = {}
    by_incident: dict[str, list[Any]] = {}
    for s in states:
        if getattr(s, "incident", None) and stored_parent(s) is None:
            by_incident.setdefault(s.incident, []).append(s)
    for members in by_incident.values():
        first = min(members, key=lambda m: getattr(m, "quiet_for", 0.0) > 0)
        for m in members:
            if m is not first:
                lead[m.fingerprint] = first.fingerprint
    children: dict[str, list[Any]] = {}
    roots = []
    for s in states:
        parent = stored_parent(s)
        parent = lead.get(s.fingerprint) or (lead.get(parent, parent) if parent else None)
        if parent is not None:
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


def related_text(root: Any, children: Sequence[Any], short: bool = False) -> str:
    if not children:
        return ""
    return (
        f"+{len(children)}"
        if short
        else f"+{len(children)} related ({_kinds(children, root.scope)})"
    )


#: Panel widths (columns inside its border) where the line's layout changes: below NARROW the
#: labels go and `since` is HH:MM; from WIDE on, every label and the full time are spelled out.
#: The border and the list's gutter take 4 columns: these are 100 and 160-column terminals.
NARROW, WIDE = 96, 156
#: Lines the list shows (llmtop.tcss: AlertsPanel > OptionList max-height).
LIST_LINES = 4


def alert_line(
    a: Any,
    related: str = "",
    child: bool = False,
    *,
    severity: str | None = None,
    width: int = WIDE,
    new: bool = False,
    quiet: float | None = None,
    cause_line: bool = False,
) -> Text:
    """Severity, scope, owner and since first, so they show at 80 columns; then the related
    count, the headline and the cause, which the ellipsis cuts on narrow terminals.

    With `cause_line` the cause goes on a second line of its own: a headline like
    "support-summarize burning $26.23/h over the last 2m, 3.3x its normal $8.05/h" fills a
    120-column line, and the cause, what on-call came for, was never on screen."""
    sev = severity or getattr(a, "severity", "warning")
    st = getattr(a, "state", "open")
    t = Text(no_wrap=True, overflow="ellipsis")
    if new:
        t.append("● ", style="bold")
    if child:
        t.append("   └ ", style="dim")
    _badge(t, sev)
    wide, narrow = width >= WIDE, width < NARROW
    # State marks: after the badge, or below NARROW after owner and since, which must show at
    # 80 columns ("escalated snoozed till 21:14" pushed the owner off and since with it).
    marks = Text()
    if child:
        # Escalation and state are the incident's, on its root's line: on a related warning
        # "escalated" read as if that alert had turned critical.
        st = "open"
    elif is_escalated(a):
        marks.append(" escalated ", style="bold red")
    if st == "snoozed" and getattr(a, "snoozed_until", None):
        # Until when: a snooze that silently ends pages again, and "snoozed" alone hid that.
        ref = getattr(a, "last_seen", None) or a.snoozed_until  # the pass that listed it
        marks.append(f" snoozed till {until(a.snoozed_until, ref)} ", style="dim")
    elif st != "open":
        marks.append(f" {st} ", style="dim")
    quiet = getattr(a, "quiet_for", 0.0) if quiet is None else quiet
    if quiet:
        # Not firing now; it resolves after 10 quiet minutes (alerts.state.RESOLVE_AFTER).
        marks.append(f" quiet {int(quiet // 60)}m ", style="dim italic")
    if not narrow:
        t.append_text(marks)
    t.append(" ")
    t.append_text(safe(getattr(a, "scope", "") or "all", "bold"))
    t.append(" · owner " if wide else " · ")
    t.append_text(safe(getattr(a, "owner", None) or "—", "bold"))
    since = getattr(a, "since", None) or getattr(a, "first_seen", None)
    if since:
        when = clock(since)
        t.append(f" · since {when}" if wide else f" · {when[:5]}", style="dim")
    if narrow and marks.plain:
        t.append(" ·")
        t.append_text(marks)
    if related:
        t.append(" · ")
        t.append(related, style="bold")
    t.append(" · ")
    t.append_text(safe(getattr(a, "title", "")))
    if cause_line:
        t.append("\n     cause: ", style="dim")
        t.append_text(safe(getattr(a, "cause", "") or "—", "italic"))
    elif not narrow:
        t.append(" · cause: ")
        t.append_text(safe(getattr(a, "cause", "") or "—", "italic"))
    return t


def _resolved_line(a: Any, children: Sequence[Any]) -> Text:
    """What a resolved incident leaves: one dim line, until the engine stops listing it."""
    t = Text(no_wrap=True, overflow="ellipsis", style="dim")
    t.append(" ✓ resolved ", style="bold")
    t.append(clock(getattr(a, "last_seen", a.since))[:5])
    t.append(" ")
    t.append_text(safe(a.scope or "all", "bold"))
    if children:
        t.append(f" · +{len(children)} related")
    t.append(" · ")
    t.append_text(safe(getattr(a, "title", "")))
    return t


class AlertsPanel(Vertical):
    """The firing incidents, one line each, then one line per recently resolved incident.

    While the list has focus its order holds: a pass that re-sorts the alerts (an ack moves
    one down, a new critical one would go first) would otherwise move rows under the cursor
    between two key presses. New incidents are appended, marked ●; the engine's order returns
    when the list loses focus. Keys act on the line under the cursor, by fingerprint.
    """

    BINDINGS = [
        Binding("k", "ack", "Ack"),
        Binding("z", "snooze", "Snooze…"),
        Binding("enter", "open", "Details", show=False),
        Binding("space", "toggle_related", "Related"),
    ]
    states: reactive[list[Any]] = reactive(list)
    #: Roots whose related alerts are unfolded.
    expanded: reactive[frozenset[str]] = reactive(frozenset())

    def compose(self) -> ComposeResult:
        yield OptionList(id="alert-list")

    def on_mount(self) -> None:
        self._children: dict[str, list[Any]] = {}
        self._visible: list[Any] = []
        #: Fingerprints in the order shown while focused (None: follow the engine's order).
        self._order: list[str] | None = None
        self._known: set[str] = set()
        self._fresh: set[str] = set()
        #: The list has the focus (or had it when a screen opened on top): the order holds.
        self._hold = False
        #: Line fingerprints in the order last shown.
        self._shown: list[str] = []
        self.border_title = "Alerts"
        self.display = False

    def watch_states(self) -> None:
        self._render_list()

    def watch_expanded(self) -> None:
        self._render_list()

    def on_resize(self) -> None:
        self._render_list()

    def on_descendant_focus(self) -> None:
        if not self._hold:  # from here on, the order shown now holds
            self._hold, self._order = True, list(self._shown)

    def on_descendant_blur(self) -> None:
        # A screen opened on top (the alert's detail, the snooze prompt) takes the focus for a
        # while: the order holds until focus moves elsewhere on this screen.
        if self.screen.is_current:
            self._hold, self._order, self._fresh = False, None, set()
            self._render_list()

    def incident(self, fingerprint: str) -> tuple[Any, list[Any]] | None:
        """(root, related alerts) of the incident an alert belongs to, as shown."""
        for root, children in group_states(self.states):
            if root.fingerprint == fingerprint or any(
                c.fingerprint == fingerprint for c in children
            ):
                return root, children
        return None

    def _lines(self) -> list[tuple[Any, list[Any], bool]]:
        """(root, children, resolved) per line, in the engine's order."""
        live = [s for s in self.states if getattr(s, "state", "open") != "resolved"]
        # An alert that resolved inside an incident still open (its spike calmed, its cache-hit
        # drop fires on) is no resolved incident: "✓ resolved 20:02 feature=..." under the open
        # line of the same incident said it was over.
        open_incidents = {getattr(s, "incident", None) for s in live} - {None}
        gone = [
            s
            for s in self.states
            if getattr(s, "state", "open") == "resolved"
            and getattr(s, "incident", None) not in open_incidents
        ]
        groups = group_states(live)
        waiting = [r for r, ch in groups if getattr(r, "pending", False) and not ch]
        if len(waiting) < 2:
            waiting = []
        lines: list[tuple[Any, list[Any], bool]] = []
        for r, ch in groups:
            if r not in waiting:
                lines.append((r, ch, False))
            elif r is waiting[0]:  # where the first of them would stand: severity order holds
                sev = "critical" if any(w.severity == "critical" for w in waiting) else "warning"
                lines.append((Waiting(severity=sev), waiting, False))
        lines += [(r, ch, True) for r, ch in group_states(gone)]
        return lines

    def _render_list(self) -> None:
        if not self.is_mounted:
            return
        ol = self.query_one(OptionList)
        lines = self._lines()
        self.display = bool(lines)
        keep = self._selected()
        was = ol.highlighted  # clear_options() resets it
        focused = self._hold
        if focused and self._order is not None:
            pos = {fp: i for i, fp in enumerate(self._order)}
            lines.sort(key=lambda line: pos.get(line[0].fingerprint, len(pos)))
            self._fresh |= {r.fingerprint for r, _, _ in lines} - self._known
        width = self.content_size.width or WIDE
        # The cause gets its own line while every line still fits the list (its max-height is
        # 4): one or two incidents, nothing unfolded. Even at 200 columns a headline and "+1
        # related (...)" left no room for it on the first.
        shown = len(lines) + sum(
            len(ch) for r, ch, gone in lines if r.fingerprint in self.expanded and not gone
        )
        cause_line = shown * 2 <= LIST_LINES
        visible: list[Any] = []
        options: list[Option] = []
        self._children = {}
        for root, children, resolved in lines:
            self._children[root.fingerprint] = children
            visible.append(root)
            if isinstance(root, Waiting):
                text = _waiting_line(children, root.severity)
            elif resolved:
                text = _resolved_line(root, children)
            else:
                short = width < NARROW
                text = alert_line(
                    root,
                    related_text(root, children, short),
                    severity=incident_severity(root, children),
                    width=width,
                    new=root.fingerprint in self._fresh,
                    # An incident is quiet when none of its alerts fires.
                    quiet=min(getattr(a, "quiet_for", 0.0) for a in (root, *children)),
                    cause_line=cause_line,
                )
            options.append(Option(text, id=root.fingerprint))
            if root.fingerprint in self.expanded and not resolved:
                for c in children:
                    visible.append(c)
                    options.append(Option(alert_line(c, child=True, width=width), id=c.fingerprint))
        ol.clear_options()
        ol.add_options(options)
        self._visible = visible
        self._shown = [r.fingerprint for r, _, _ in lines]
        self._known = set(self._shown)
        if focused:
            self._order = list(self._shown)
        if visible:
            at = next(
                (i for i, s in enumerate(visible) if keep and s.fingerprint == keep.fingerprint),
                None,
            )
            ol.highlighted = at if at is not None else min(was or 0, len(visible) - 1)

    def focus_list(self) -> None:
        """Focus the list on its top line, the most urgent incident (README: "press `a`, then
        `enter`"): a highlight left from an earlier visit, or from a list since re-sorted, would
        open some other alert."""
        if self.display:
            ol = self.query_one(OptionList)
            if not ol.has_focus and ol.option_count:
                ol.highlighted = 0
            ol.focus()

    def selected(self) -> Any | None:
        """The alert under the cursor (None: no list, or the cursor is on no alert)."""
        return self._selected()

    def _selected(self) -> Any | None:
        if not self.is_mounted:
            return None
        ol = self.query_one(OptionList)
        vis = self._visible
        if ol.highlighted is None or ol.highlighted >= len(vis):
            return None
        return vis[ol.highlighted]

    def _actionable(self) -> Any | None:
        a = self._selected()
        if a is None or isinstance(a, Waiting) or getattr(a, "state", "open") == "resolved":
            return None
        return a

    def action_toggle_related(self) -> None:
        a = self._selected()
        if a is None:
            return
        root = next((r for r, ch in self._children.items() if a in ch), a.fingerprint)
        if not self._children.get(root):
            return
        self.expanded = self.expanded ^ {root}

    def action_ack(self) -> None:
        a = self._actionable()
        if a is not None:
            self.post_message(AckRequested(a.fingerprint))

    def action_snooze(self) -> None:
        a = self._actionable()
        if a is not None:
            self.post_message(SnoozeLengthRequested(a.fingerprint))

    def action_open(self) -> None:
        a = self._selected()
        if a is not None and not isinstance(a, Waiting):
            self.post_message(AlertDetailRequested(a.fingerprint))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_open()
