"""Number and text formatting shared by the widgets.

Everything from the database goes through `safe` before it reaches the screen: tag values are
user-controlled, so Rich markup and terminal escape sequences in them must stay inert text.
"""

from __future__ import annotations

import re
from datetime import datetime

from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe(value: object, style: str = "") -> Text:
    """Literal text: never parsed as markup, control characters removed."""
    s = "(none)" if value is None else _CONTROL.sub("", str(value))
    return Text(s, style=style, no_wrap=True)


def money(v: float | None) -> str:
    if v is None:
        return "—"
    a = abs(v)
    if a >= 1000:
        return f"${v:,.0f}"
    if a >= 10:
        return f"${v:,.2f}"
    if a >= 0.01 or a == 0:
        return f"${v:.2f}" if a >= 1 or a == 0 else f"${v:.3f}"
    return f"${v:.5f}"


def pct(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v * 100:.{digits}f}%"


def delta(v: float | None) -> str:
    if v is None:
        return "new"
    return f"{'+' if v >= 0 else ''}{v * 100:.0f}%"


def count(v: float | None) -> str:
    if v is None:
        return "—"
    a = abs(v)
    if a >= 1_000_000:
        return f"{v / 1_000_000:.1f}M"
    if a >= 10_000:
        return f"{v / 1000:.0f}k"
    if a >= 1000:
        return f"{v / 1000:.1f}k"
    return f"{v:.0f}" if a >= 100 or float(v).is_integer() else f"{v:.1f}"


def ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v / 1000:.1f}s" if v >= 1000 else f"{v:.0f}ms"


def clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def until(ts: float, now: float) -> str:
    """A time to come: "16:00" today, "Mon 09:00" on another day (a snooze typed as "until
    18:30" at 19:40 ends tomorrow, and a bare "18:30" read as already over)."""
    at, today = datetime.fromtimestamp(ts), datetime.fromtimestamp(now)
    return at.strftime("%H:%M") if at.date() == today.date() else at.strftime("%a %H:%M")


def day(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%b %d")


def stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
