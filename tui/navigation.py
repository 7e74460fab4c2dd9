"""Where the dashboard's keys lead: the view a drill opens, and the views a key is likely to open
next (read ahead while idle by tui/reading.py). Pure functions of the view on screen, so the key
a view is read ahead under is the key its drill will ask for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmtop.store.filters import Clause
from llmtop.store.views import Snapshot
from llmtop.tui.reading import ViewKey

#: The dimension each drill groups by next, the first not pinned yet.
DRILL_ORDER: tuple[str, ...] = ("feature", "model", "customer", "user")
#: Other groupings read ahead per view (DRILL_ORDER's, then the picker's first ones).
MAX_REGROUPS = 5
#: Biggest spenders whose drills are read ahead, beside the row under the cursor.
TOP_DRILLS = 2


@dataclass(frozen=True)
class View:
    """Where the user is: a drill path, a grouping, and whether requests are listed."""

    path: tuple[Clause, ...] = ()
    group_by: str = "feature"
    requests: bool = False

    def clauses(self, filters: Sequence[Clause]) -> tuple[Clause, ...]:
        """What this view reads: the `/` filters, then the drill path (the order a snapshot's
        clauses come back in, so a view and its snapshot compare equal)."""
        return (*filters, *self.path)


def pinned(path: Sequence[Clause], filters: Sequence[Clause]) -> set[str]:
    """Dimensions fixed to one value by the drill path or an `=` filter."""
    return {c.key for c in path} | {c.key for c in filters if c.op == "="}


def drill_view(view: View, filters: Sequence[Clause], value: str) -> View:
    """Where `enter` on the row `value` of `view`'s grouping leads: one clause deeper, grouped by
    the next dimension not pinned yet (requests listed when none is left)."""
    path = (*view.path, Clause(view.group_by, "=", value))
    used = pinned(path, filters)
    nxt = next((d for d in DRILL_ORDER if d not in used), None)
    return View(path=path, group_by=nxt or view.group_by, requests=nxt is None)


def read_key(view: View, filters: Sequence[Clause], window: float) -> ViewKey:
    """The key DashboardReads keeps `view`'s snapshot under (reading.view_key of the snapshot
    it will read)."""
    return (round(window), view.group_by, view.clauses(filters))


def likely_views(
    view: View,
    filters: Sequence[Clause],
    window: float,
    snap: Snapshot,
    under_cursor: str | None,
    dimensions: Sequence[str],
) -> list[ViewKey]:
    """What a key is likely to open next from `snap`, most likely first: the drill into the row
    under the cursor, into the biggest spenders, then the other groupings of the same rows."""
    if view.requests:
        return []
    values = [] if under_cursor is None else [under_cursor]
    values += [g.key for g in snap.groups[:TOP_DRILLS]]
    views = [drill_view(view, filters, value) for value in dict.fromkeys(values)]
    fixed = pinned(view.path, filters)
    # The drill dimensions first (the ones on-call regroups by most), then the picker's order.
    ranked = [*(d for d in DRILL_ORDER if d in dimensions), *dimensions]
    others = [d for d in dict.fromkeys(ranked) if d != view.group_by and d not in fixed]
    views += [View(path=view.path, group_by=d) for d in others[:MAX_REGROUPS]]
    return [read_key(v, filters, window) for v in views]
