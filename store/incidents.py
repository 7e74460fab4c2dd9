"""The incidents of a period, as the weekly review lists them: what fired, who owned it, and
whether anyone acked it. Read from the `alerts` table the alert engine keeps (m003)."""

from __future__ import annotations

from dataclasses import dataclass

from llmtop.store.reader import Reader


@dataclass(frozen=True)
class IncidentRow:
    rule: str
    severity: str
    scope: str
    title: str
    cause: str | None
    owner: str | None
    first_seen: float
    last_seen: float
    state: str  # open, acked, snoozed, resolved

    @property
    def acked(self) -> bool:
        return self.state == "acked"


def incidents_between(reader: Reader, start: float, end: float) -> list[IncidentRow]:
    """Alerts active at any time in [start, end), oldest first."""
    rows = reader.query(
        "SELECT rule, severity, scope, title, cause, owner, first_seen, last_seen, state"
        " FROM alerts WHERE first_seen < ? AND last_seen >= ? ORDER BY first_seen, id",
        (end, start),
    )
    return [IncidentRow(*r) for r in rows]
