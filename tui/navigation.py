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


def pinned(view: View, filters: Sequence[Clause]) -> set[str]:
    """Dimensions fixed to one value by the drill path or an `=` filter."""
    return {c.key for c in view.path} | {c.key for c in filters if c.op == "="}


def drill_view(view: View, filters: Sequence[Clause], value: str) -> View:
    """Where `enter` on the row `value` of `view`'s grouping leads: one clause deeper, grouped by
    the next dimension not pinned yet (requests listed when none is left)."""
    path = (*view.path, Clause(view.group_by, "=", value))
    used = pinned(View(path=path), filters)
    nxt = next((d for d in DRILL_ORDER if d not in used), None)
    return View(path=path, group_by=nxt or view.group_by, requests=nxt is None)


def view_key(view: View, filters: Sequence[Clause], window: float) -> ViewKey:
    """The key DashboardReads keeps `view`'s snapshot under (the clauses in the order
    DashboardScreen.refresh_data reads them: filters, then the drill path)."""
    return (round(window), view.group_by, (*filters, *view.path))


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
    values = [*([under_cursor] if under_cursor is not None else [])]
    values += [g.key for g in snap.groups[:TOP_DRILLS]]
    views = [drill_view(view, filters, value) for value in dict.fromkeys(values)]
    fixed = pinned(view, filters)
    # The drill dimensions first (the ones on-call regroups by most), then the picker's order.
    ranked = [*(d for d in DRILL_ORDER if d in dimensions), *dimensions]
    others = [d for d in dict.fromkeys(ranked) if d != view.group_by and d not in fixed]
    views += [View(path=view.path, group_by=d) for d in others[:MAX_REGROUPS]]
    return [view_key(v, filters, window) for v in views]
