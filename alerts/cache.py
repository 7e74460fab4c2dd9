"""What successive alert passes over one database reuse, owned by whoever runs them.

Why an object and not module globals: the dashboard runs a pass every few seconds and wants the
expensive parts kept warm (likely-cause analyses, the runaway rule's 7-day baseline, the sliding
window trackers), while `llmtop check` and the tests want a pass that depends on nothing but its
arguments. The caller decides by keeping one AlertCache (the dashboard, per database) or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmtop.alerts.explain import Why
from llmtop.store.engine import Tracker
from llmtop.store.reader import Reader

#: Entries kept before a cache is emptied (a crude bound: incidents come and go).
MAX_WHY = 256
MAX_HISTORY = 16
#: Seconds a sliding tracker may go unread before it is dropped: a dashboard left running for
#: weeks while its rules file is edited (each edit: new windows and groupings) must not keep every
#: old tracker, and the runaway rule's baseline, read once an hour, must stay warm.
TRACKER_IDLE = 3 * 3600.0


class TrackerMap(dict):  # type: ignore[type-arg]
    """The sliding trackers by key, each stamped with the time of the last pass that read it."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0  # the current pass's time (`begin_pass`)
        self.read_at: dict[Any, float] = {}

    def begin_pass(self, now: float) -> None:
        self.now = now

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self:
            self.read_at[key] = self.now
        return super().get(key, default)

    def __setitem__(self, key: Any, value: Tracker) -> None:
        self.read_at[key] = self.now
        super().__setitem__(key, value)

    def end_pass(self) -> None:
        """Drop the trackers no pass has read for TRACKER_IDLE seconds."""
        for key in [k for k, t in self.read_at.items() if self.now - t > TRACKER_IDLE]:
            del self.read_at[key]
            self.pop(key, None)


@dataclass
class AlertCache:
    #: Likely-cause analyses: (file, fingerprint, rules id) -> (when analysed, analysis).
    why: dict[tuple[object, ...], tuple[float, Why]] = field(default_factory=dict)
    #: The runaway rule's baseline sums: (file, dims, hour, start) -> (max row id read, sums).
    history: dict[tuple[object, ...], tuple[int, dict[tuple[str, str], float]]] = field(
        default_factory=dict
    )
    #: Sliding trackers of the ranges the rules read (store.alert_queries.sliding_spend).
    trackers: TrackerMap = field(default_factory=TrackerMap)

    def remember_why(self, key: tuple[object, ...], now: float, why: Why) -> None:
        if len(self.why) > MAX_WHY:
            self.why.clear()
        self.why[key] = (now, why)

    def remember_history(
        self, key: tuple[object, ...], top: int, sums: dict[tuple[str, str], float]
    ) -> None:
        if len(self.history) > MAX_HISTORY:
            self.history.clear()
        self.history[key] = (top, sums)


def file_key(reader: Reader) -> tuple[str, int]:
    """The database file a cache entry belongs to (path and inode: a replaced file is new)."""
    try:
        return str(reader.path), reader.path.stat().st_ino
    except OSError:
        return str(reader.path), 0
