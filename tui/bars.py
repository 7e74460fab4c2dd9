"""The dashboard's three one-line bars (top, breadcrumbs, status) as text.

Pure functions of what the screen knows, so the screen only decides when to paint them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from llmtop.store.filters import Clause, format_filter, format_window
from llmtop.store.views import Snapshot
from llmtop.tui.format import clock, count, money, safe
from rich.text import Text
from textual.widgets import Static

#: Seconds after which live numbers that could not be read again are called stale (the screen
#: reads every 5 s, and a cold read of a long window at 10M rows takes a few).
STALE_AFTER = 30.0


def topbar(
    db_paths: Sequence[Path],
    window: float,
    range_end: float | None,
    paused_at: float | None,
    now: float,
    snap: Snapshot | None,
) -> Text:
    t = safe("llmtop", "bold")
    # Which instant and window the numbers are for (the snapshot's own instant once it is
    # read), first: a long database path is what gets cut at 80 columns, never this.
    at = snap.end if snap is not None else now
    span = format_window(window)
    if paused_at is not None:
        t.append(f"  ⏸ PAUSED at {clock(paused_at)}", style="bold yellow")
        t.append(f" · last {span}", style="bold")
    elif range_end is not None:
        t.append("  ◼ fixed range", style="bold")
        # Another day's end says its date: "2h to 12:00:00" read as a time still to come.
        day = time.strftime("%Y-%m-%d ", time.localtime(range_end))
        same_day = day == time.strftime("%Y-%m-%d ", time.localtime(now))
        t.append(f" · {span} to {'' if same_day else day}{clock(range_end)}", style="bold")
    elif snap is not None and now - snap.end > STALE_AFTER:
        # Reads are failing (a database gone, a server restarting): "● live" over numbers
        # minutes old is what on-call must never believe. The status line says why.
        t.append("  ✗ stale", style="bold red")
        t.append(f" · last {span} to {clock(at)}", style="bold")
    else:
        t.append("  ● live", style="bold green")
        t.append(f" · last {span}", style="bold")
        t.append(f" · {clock(at)}")
    if snap is None or abs((snap.end - snap.start) - window) > 1:
        # A cold read of a long window on a big file takes a second or two: say so rather
        # than show the previous window's numbers under the new window's name.
        t.append(f"  ⟳ reading {span}…", style="italic")
    t.append("  ")
    if len(db_paths) > 1:
        t.append_text(safe(f"{len(db_paths)} databases, merged, read-only", "dim"))
    else:
        t.append_text(safe(short_path(db_paths[0]), "dim"))
    return t


#: The longest database path the top bar shows whole; longer ones keep their tail.
PATH_CHARS = 40


def short_path(path: Path) -> str:
    """The path's tail, led by "…", so the file's own name survives a deep temp directory at
    80 columns (a cut at the right edge would keep the least telling part)."""
    s = str(path)
    return s if len(s) <= PATH_CHARS else "…" + s[-(PATH_CHARS - 1) :]


def crumbs(
    path: Sequence[Clause],
    group_by: str,
    requests: bool,
    filters: Sequence[Clause],
    snap: Snapshot | None,
) -> Text:
    t = safe("all", "bold")
    for c in path:
        t.append(" › ")
        t.append_text(safe(f"{c.key}={c.value if c.value is not None else '(none)'}", "bold"))
    t.append("  ·  ")
    t.append("requests, newest first" if requests else f"grouped by {group_by}")
    if not requests and snap is not None and snap.groups_total > len(snap.groups):
        t.append_text(
            safe(
                f"  ·  top {len(snap.groups):,} of {snap.groups_total:,} by spend"
                f" ({money(snap.rest_spend)} in the rest: filter to narrow)",
                "yellow",
            )
        )
    if filters:
        t.append("  ·  filter ")
        t.append_text(safe(format_filter(filters), "italic"))
    return t


def status(error: str | None, snap: Snapshot | None) -> Text:
    t = safe("")
    if error:
        t.append_text(safe(f"✗ {error}", "bold red"))
        return t
    if snap is None:
        t.append("loading…")
        return t
    tot = snap.totals
    t.append(f"{count(tot.requests)} request{'' if tot.requests == 1 else 's'} · ")
    t.append(f"{money(tot.spend)} spent", style="bold")
    t.append(" · ")
    na = snap.unavailable  # a source without these checks says so, never "0"
    if "unpriced" in na:
        t.append("unpriced n/a", style="dim italic")
    else:
        t.append(f"{count(tot.unpriced)} unpriced", style="bold yellow" if tot.unpriced else "dim")
    t.append(" · ")
    if "unmetered" in na:
        t.append("unmetered n/a", style="dim italic")
    else:
        t.append(
            f"{count(tot.unmetered)} unmetered", style="bold yellow" if tot.unmetered else "dim"
        )
    if snap.invalid:  # rows with an out-of-range value set aside: shown only when there are any
        t.append(" · ")
        t.append(f"{count(snap.invalid)} invalid", style="bold yellow")
    t.append(" · ")
    if "drops" in na:
        t.append("dropped n/a", style="dim italic")
    else:
        t.append(f"{count(snap.dropped)} dropped", style="bold red" if snap.dropped else "dim")
    return t


def put(bar: Static, text: Text) -> None:
    """Show `text` in a one-line bar, only if it changed: an update with layout lays the whole
    screen out anew, and a bar's size never depends on its text."""
    if getattr(bar, "_bar_text", None) != text:
        bar._bar_text = text  # type: ignore[attr-defined]
        bar.update(text, layout=False)
