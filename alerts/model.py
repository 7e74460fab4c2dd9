"""What an alert is, for everything that shows one (TUI panel, toast, `llmtop check`, JSON).

Frozen dataclasses with plain fields so a worker thread can hand them to the UI thread and the CLI
can serialize them without knowing about the engine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["causes"] = [{"text": t, "dollars": round(v, 4)} for t, v in self.causes]
        d["drill"] = {"filter": self.drill[0], "group_by": self.drill[1]}
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

    @property
    def first_seen(self) -> float:
        return self.since
