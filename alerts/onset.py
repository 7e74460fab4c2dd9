"""When an alert's condition started: its `since`.

Why not the start of the window the rule compared: a burn spike judged on the last 5 minutes
that has run for 40 says "since 5 minutes ago" on every pass, and a runaway loop judged over an
hour that began ten minutes ago says "an hour ago". The on-call reads `since` as "how long has
this been going on", so it is read from the scope's own rows around the window.

How: the rows of the alert's scope over a lookback (a few windows, at most a day) in time
buckets aligned to the clock (so two passes a minute apart find the same bucket), and each
bucket's excess over the rule's normal: dollars over the baseline rate for the spend rules,
failures, retries, fallbacks or missed cache hits over the baseline share for the rate rules.
The condition started where the excess that follows adds up to the most (the change point of a
CUSUM): noise before it sums to about nothing, the incident after it to the most. Budgets and
margins started when their spend crossed the level that fires them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from llmtop.alerts.budgets import period_bounds
from llmtop.alerts.detectors import RATE_RULES, Candidate
from llmtop.alerts.explain import Why
from llmtop.alerts.rules import Budget, Rules
from llmtop.store.alert_queries import Agg, aggregate, aggregate_values
from llmtop.store.filters import Clause
from llmtop.store.reader import Reader

#: Bucket sizes (seconds) to choose from: the smallest that covers the lookback in MAX_BUCKETS.
BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
MAX_BUCKETS = 120
#: The lookback is this many rule windows (at least an hour, at most a day).
LOOKBACK_WINDOWS = 4
DAY = 86400.0


def bucket_ranges(start: float, now: float) -> list[tuple[int, float, float]]:
    """Clock-aligned buckets covering [start, now): (index, from, to), the last one partial."""
    span = max(now - start, 1.0)
    size = next((b for b in BUCKETS if span / b <= MAX_BUCKETS), BUCKETS[-1])
    a = math.floor(start / size) * size
    out: list[tuple[int, float, float]] = []
    while a < now:
        out.append((len(out), a, min(a + size, now)))
        a += size
    return out


#: The condition started where the excess that follows reaches this share of its most: noise
#: before an incident adds a few cents either way, and must not move its start by an hour.
EXPLAINED = 0.95


def change_point(excess: Sequence[float]) -> int | None:
    """Index of the latest bucket from which the excess that follows sums to EXPLAINED of the
    most any suffix sums to (so empty buckets before a new entity's first call, or noise before
    a deploy, are not part of the condition); None when no suffix has any excess."""
    sums: list[float] = []
    run = 0.0
    for x in reversed(excess):
        run += x
        sums.append(run)
    best = max(sums, default=0.0)
    if best <= 1e-12:
        return None
    k = next(i for i, v in enumerate(sums) if v >= EXPLAINED * best)
    return len(excess) - 1 - k


def _series(
    reader: Reader, c: Candidate, start: float, now: float
) -> list[tuple[float, float, Agg]]:
    ranges = bucket_ranges(start, now)
    got = {idx: agg for idx, _keys, agg in aggregate(reader, ranges, (), c.scope)}
    return [(a, b, got.get(i, Agg())) for i, a, b in ranges]


class SharedSeries:
    """The bucketed rows of many one-tag scopes (`customer = X`, `user = Y`...) over one
    lookback, read once per tag for all the scopes on it.

    Why: an incident fires one runaway alert per customer and user it touched (80 at 10M rows in
    `benchmarks/alerts.py`), all with the same window, so the same lookback. Each scope's own
    read walks the whole lookback to keep its few rows (25 ms each, 2 s a pass); one read per
    tag, restricted to the crowd's values, costs about as much as a few of them."""

    def __init__(self, reader: Reader, start: float, now: float, scopes: Sequence[Clause]) -> None:
        self.reader = reader
        self.ranges = bucket_ranges(start, now)
        self._values: dict[str, set[str]] = {}
        for c in scopes:
            if c.op == "=" and c.value is not None:
                self._values.setdefault(c.key, set()).add(c.value)
        self._by: dict[str, dict[str, dict[int, Agg]]] = {}

    def series(self, scope: Sequence[Clause]) -> list[tuple[float, float, Agg]] | None:
        """The scope's series, as `_series` reads it; None for a scope this read cannot serve."""
        if len(scope) != 1 or scope[0].op != "=" or scope[0].value is None:
            return None
        key, value = scope[0].key, scope[0].value
        if value not in self._values.get(key, ()):
            return None
        by = self._by.get(key)
        if by is None:
            by = self._by[key] = {}
            values = sorted(self._values[key])
            for idx, v, agg in aggregate_values(self.reader, self.ranges, key, values):
                by.setdefault(v, {})[idx] = agg
        got = by.get(value, {})
        return [(a, b, got.get(i, Agg())) for i, a, b in self.ranges]


def lookback_start(c: Candidate, now: float, first: float) -> float:
    """Where the onset of a windowed rule's condition is looked for (see the module docstring)."""
    window = max(c.cur[1] - c.cur[0], 1.0)
    return max(first, now - min(DAY, max(3600.0, LOOKBACK_WINDOWS * window)))


def shared_series(
    reader: Reader, cands: Sequence[Candidate], now: float, first: float, crowd: int
) -> dict[float, SharedSeries]:
    """One SharedSeries (not read yet) per lookback that at least `crowd` one-tag scopes share."""
    by: dict[float, list[Clause]] = {}
    for c in cands:
        if c.rule.startswith("budget:") or c.rule == "margin" or len(c.scope) != 1:
            continue
        by.setdefault(lookback_start(c, now, first), []).append(c.scope[0])
    return {
        start: SharedSeries(reader, start, now, scopes)
        for start, scopes in by.items()
        if len(scopes) >= crowd
    }


#: The drift allowance of the change point (a CUSUM's reference value): a bucket counts towards
#: the condition only beyond half as much again as its normal (spend, failures...) or, for the
#: cache, below half its normal hits. Without it a scope running a few percent above a normal
#: that is itself a noisy estimate adds up over an hour of lookback to as much as a two-minute
#: burst, and a spike that began at 04:26 said "since 03:48" (the demo, seen by a newcomer).
#: Conditions worth an alert are twice their normal and more, so this moves none of them.
SLACK = 0.5


def spend_excess(rate: float) -> Callable[[Agg, float], float]:
    """Per-bucket excess of spend over `rate` (dollars a second) and the drift allowance, for a
    bucket `seconds` long."""
    return lambda g, seconds: g.spend - (1.0 + SLACK) * rate * seconds


def rate_excess(rule: str, base: Agg) -> Callable[[Agg, float], float]:
    """Per-bucket excess of a rate rule's numerator over the baseline's share and the drift
    allowance."""

    def share(num: float, den: float) -> float:
        return num / den if den else 0.0

    if rule == "cache_hit_drop":
        hb = share(base.cached, base.eligible)
        return lambda g, _s: (1.0 - SLACK) * hb * g.eligible - g.cached
    num = {"error_rate": "failures", "retry_rate": "retries", "fallback_rate": "fallbacks"}[rule]
    rb = share(getattr(base, num), base.requests)
    return lambda g, _s: getattr(g, num) - (1.0 + SLACK) * rb * g.requests


def _crossing(series: Sequence[tuple[float, float, Agg]], level: float) -> float | None:
    """When cumulative spend over the series first reached `level` (interpolated in its bucket)."""
    total = 0.0
    for a, b, g in series:
        if g.spend > 0 and total + g.spend >= level:
            return a + (b - a) * max(0.0, level - total) / g.spend
        total += g.spend
    return None


def _budget(rules: Rules, rule: str) -> Budget | None:
    return next((b for b in rules.budgets if f"budget:{b.period}:{b.name}" == rule), None)


def _policy_onset(reader: Reader, rules: Rules, c: Candidate, now: float, first: float) -> float:
    """A budget or margin: when its period's spend crossed the level that fires it; a budget on
    course to run out before that: when its burn rose above what the budget allows."""
    b = _budget(rules, c.rule)
    start, end = period_bounds(now, b.period if b is not None else "month")
    series = _series(reader, c, max(first, start), now)
    spent = sum(g.spend for _, _, g in series)
    if b is not None:
        level = b.amount * b.warning_pct / 100.0
    else:
        revenue = rules.plans.get(c.scope[0].value or "") if c.scope else None
        level = revenue * rules.margin.share_pct / 100.0 if revenue is not None else math.inf
    if spent >= level:
        t = _crossing(series, level)
        return t if t is not None else c.cur[0]
    allowed = max((b.amount if b is not None else spent) - spent, 0.0) / max(end - now, 1.0)
    at = change_point([g.spend - allowed * (y - x) for x, y, g in series])
    return series[at][0] if at is not None else c.cur[0]


def onset(
    reader: Reader,
    rules: Rules,
    c: Candidate,
    why: Why,
    now: float,
    first: float,
    shared: dict[float, SharedSeries] | None = None,
) -> float:
    """When the condition behind `c` started (see the module docstring); the window's start
    when the rows cannot tell. `shared`: `shared_series` of this pass, read where it serves."""
    if c.since is not None:
        return c.since
    if c.rule.startswith("budget:") or c.rule == "margin":
        return _policy_onset(reader, rules, c, now, first)
    window = max(c.cur[1] - c.cur[0], 1.0)
    start = lookback_start(c, now, first)
    crowd = shared.get(start) if shared else None
    series = crowd.series(c.scope) if crowd is not None else None
    if series is None:
        series = _series(reader, c, start, now)
    per = (
        rate_excess(c.rule, why.base)
        if c.rule in RATE_RULES
        else spend_excess(why.base.spend / window)
    )
    at = change_point([per(g, b - a) for a, b, g in series])
    return series[at][0] if at is not None else c.cur[0]
