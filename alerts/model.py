"""What an alert is, for everything that shows one (TUI panel, toast, `llmtop check`, JSON).

Frozen dataclasses with plain fields so a worker thread can hand them to the UI thread and the CLI
can serialize them without knowing about the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

SEVERITIES = ("warning", "critical")


@dataclass(frozen=True)
class Alert:
    """One firing condition with the evidence for why it fired and who should look."""

    #: Stable per incident (rule + scope): the same incident after a restart is not a new page.
    fingerprint: str
    rule: str
    severity: str  # "warning" | "critical"
    #: A filter string in store.filters.parse_filter syntax; "" is the whole org.
    scope: str
    title: str
    cause: str
    #: (text, dollars explained), most dollars first.
    causes: tuple[tuple[str, float], ...]
    owner: str | None
    since: float
    #: (filter string, group_by dimension) for the TUI's drill-down.
    drill: tuple[str, str]
    #: Fingerprint of the alert this one is filed under: the incident's broadest alert, when
    #: this one shares its likely cause or names its scope (one bad deploy fires the feature and
    #: every customer it touched; only the feature pages). None: it pages on its own.
    parent: str | None = None
    #: Fired before its cause analysis ran (the dashboard's per-pass budget ran out): it is shown
    #: but pages only once analysed, when it is known whether it belongs to another incident.
    pending: bool = False
    #: The time ranges its rule took as normal (epoch seconds): the detail screen reads its
    #: baseline from these, so its "normal" is the headline's, not one worked out afresh.
    base: tuple[tuple[float, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return alert_json(self)


def alert_json(a: Alert | AlertState) -> dict[str, Any]:
    """An alert in `llmtop check --json`'s shape: an evaluated one, or a stored one (a quiet
    incident's, listed though nothing of it fires at that instant), the same keys either way."""
    d = {f.name: getattr(a, f.name) for f in fields(Alert)}
    d["causes"] = [{"text": t, "dollars": round(v, 4)} for t, v in a.causes]
    d["drill"] = {"filter": a.drill[0], "group_by": a.drill[1]}
    return d


@dataclass(frozen=True)
class AlertState:
    """An alert as stored in the `alerts` table: what fired plus ack/snooze/resolve state."""

    fingerprint: str
    rule: str
    severity: str
    scope: str
    title: str
    cause: str
    causes: tuple[tuple[str, float], ...]
    owner: str | None
    since: float
    last_seen: float
    state: str  # "open" | "acked" | "snoozed" | "resolved"
    snoozed_until: float | None
    drill: tuple[str, str]
    parent: str | None = None
    pending: bool = False
    #: Id of the incident it is filed under (alerts.state): what an ack or snooze attaches to.
    incident: str | None = None
    #: Its incident turned critical after it had been announced (or acked, or snoozed) as a
    #: warning, and paged once more for it.
    escalated: bool = False
    #: Seconds since it last fired, when that is over a minute and it is not resolved yet (it
    #: resolves after alerts.state.RESOLVE_AFTER): shown "quiet Nm". 0 while it fires.
    quiet_for: float = 0.0
    #: As Alert.base, from the pass that recorded it (last_seen).
    base: tuple[tuple[float, float], ...] = ()

    @property
    def first_seen(self) -> float:
        return self.since


@dataclass(frozen=True)
class Incident:
    """Alerts that are one problem, with the state an ack or snooze attaches to.

    Its id never changes while any of its alerts fires: a broader alert joining (a new root) or
    an alert escalating is the same incident, acked or snoozed as it was."""

    id: str
    #: Fingerprint of its root alert (the one that pages; it may change as alerts join).
    root: str
    #: The one severity shown everywhere (alerts.incidents.severity_of over its alerts).
    severity: str
    state: str  # "open" | "acked" | "snoozed" | "resolved"
    snoozed_until: float | None
    #: When its earliest alert's condition started.
    since: float
    opened: float
    last_seen: float
    #: The severity last announced (paged, or seen by whoever acked or snoozed it); None: never.
    paged: str | None
    escalated: bool
    resolved_at: float | None
    #: Fingerprints of its alerts, root first.
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Page:
    """One announcement of an evaluation: an incident paging, or paging again as it escalated."""

    kind: str  # "page" | "escalate"
    #: The incident's root alert, at the incident's severity.
    alert: Alert
    incident: str


@dataclass(frozen=True)
class SyncResult:
    """What alerts.state.sync_pass decided: pages to send, every alert's and incident's state,
    and the incidents resolved since the last pass (for a one-line "resolved" notice)."""

    pages: list[Page]
    states: list[AlertState]
    incidents: list[Incident]
    #: Resolved by this pass, plus (given sync_pass's `previous`) by any process since then.
    resolved: list[Incident]
    #: Resolved by this pass: the process whose pass resolved an incident announces it.
    closed: list[Incident]

    @property
    def new(self) -> list[Alert]:
        return [p.alert for p in self.pages]
