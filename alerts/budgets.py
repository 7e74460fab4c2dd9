"""The budget rule: spend against a configured amount per day, week or month, and when the
current rate runs it out (one Candidate per budget over its warning level or heading there).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from llmtop.alerts.cache import AlertCache
from llmtop.alerts.detectors import DAY, Candidate, usd
from llmtop.alerts.rules import Budget
from llmtop.store.alert_queries import spend_between
from llmtop.store.reader import Reader


def period_bounds(now: float, period: str) -> tuple[float, float]:
    """Local calendar day, ISO week (Monday) or month containing `now`."""
    local = datetime.fromtimestamp(now)
    day0 = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day0, day0 + timedelta(days=1)
    elif period == "week":
        start = day0 - timedelta(days=day0.weekday())
        end = start + timedelta(days=7)
    else:
        start = day0.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return start.timestamp(), end.timestamp()


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _when(t: float, period: str) -> str:
    d = datetime.fromtimestamp(t)
    if period == "day":
        return f"at {d:%H:%M}"
    return f"on the {_ordinal(d.day)} ({d:%b} {d.day}, {d:%H:%M})"


#: How far back "the current rate" looks, per budget period.
BURN_LOOKBACK = {"day": 3 * 3600.0, "week": 24 * 3600.0, "month": 24 * 3600.0}


def budget(
    reader: Reader, cache: AlertCache, b: Budget, now: float, first: float
) -> Candidate | None:
    start, end = period_bounds(now, b.period)
    spent = spend_between(reader, start, now, b.scope)
    look_start = max(first, now - BURN_LOOKBACK[b.period])
    look = now - look_start
    rate = spend_between(reader, look_start, now, b.scope) / look if look > 0 else 0.0
    pct = spent / b.amount * 100.0
    where = b.scope_text or "all spend"
    head = f"{b.name} {usd(b.amount)} ({where}): {usd(spent)} spent ({pct:.0f}%)"
    severity: str | None = None
    title = head
    if pct >= b.critical_pct:
        severity = "critical"
        title = f"{head}, over the {b.critical_pct:g}% level"
    elif pct >= b.warning_pct:
        severity = "warning"
        title = f"{head}, past the {b.warning_pct:g}% warning level"
    if b.projection and spent < b.amount and rate > 0:
        t_out = now + (b.amount - spent) / rate
        if t_out < end:
            severity = severity or "warning"
            title += (
                f"; at the current rate ({usd(rate * 3600)}/h) the {b.period}ly budget runs "
                f"out {_when(t_out, b.period)}"
            )
    if severity is None:
        return None
    samples = [
        (now - d * DAY - look, now - d * DAY) for d in range(1, 7) if now - d * DAY - look >= first
    ]
    return Candidate(
        rule=f"budget:{b.period}:{b.name}",
        severity=severity,
        scope=b.scope,
        title=title,
        cur=(look_start, now),
        base=samples,
        scale=1.0 / len(samples) if samples else 0.0,
        delta=spent,
        owner=b.owner,
    )
