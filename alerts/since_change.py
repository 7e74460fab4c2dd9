"""Changes: a route_version, prompt_version or model new to a feature, and what its calls did
since. Two rules judge a deploy by the calls carrying it, undiluted by the normal minutes before
it: the cache-hit drop (alerts/rate_rules.py) and cost per call (`cost_per_call`, here).

Why: a deploy starts at a known moment, so "since the change" needs no window to fill. A prompt
three times longer on a feature making a call every few minutes showed in the 15-minute spend
band only once the window held enough of it (25 minutes at $1/h); its first three calls at 2.6×
the feature's usual cost per call already say it, against the feature's own per-call spread
(alerts/scale.cost_profiles), at the spend rules' NOISE_P.

A change is a (tag, value) the feature has rows of in the last CHANGE_WINDOW and none in the
week before; read through sliding trackers, the week from the hourly rollups' tag cube: a few
rows a pass. After CHANGE_WINDOW a version is history and the windowed rules take over.

Registered in detectors.DETECTORS (under the anomaly rule's settings); detectors' types are
imported in the function (detectors imports this module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmtop.alerts.scale import NOISE_P, cost_profiles, floor_usd, gamma_tail, org_rate
from llmtop.store.alert_queries import first_seen, sliding_sums
from llmtop.store.filters import Clause
from llmtop.store.reader import Reader
from llmtop.store.rollup import CUBE_DIMS, CUBE_DIMS_OF, F_CACHED, F_ELIGIBLE, F_SPEND

if TYPE_CHECKING:
    from llmtop.alerts.cache import AlertCache
    from llmtop.alerts.detectors import Candidate
    from llmtop.alerts.rules import Rules

#: Tags whose new value marks a change.
CHANGE_DIMS = ("route_version", "prompt_version", "model")
#: How long a version counts as new (then it is in the history the windows compare with).
CHANGE_WINDOW = 7200.0
#: Calls of a changed version a test needs.
MIN_CHANGE_CALLS = 3
#: A change younger than this is warming the prompt cache (its first calls write the new
#: prefix: they miss, and cost what an uncached call costs), so neither test judges it yet.
MIN_CHANGE_AGE = 120.0
DAY = 86400.0
WEEK = 7 * DAY
HOUR = 3600.0


@dataclass
class Counts:
    """Sums over a scope's calls: cache-eligible calls, their hits, spend, calls."""

    eligible: int = 0
    cached: int = 0
    spend: float = 0.0
    calls: int = 0

    def add(self, eligible: float, cached: float, spend: float, calls: int) -> None:
        self.eligible += int(eligible)
        self.cached += int(cached)
        self.spend += spend
        self.calls += calls


@dataclass
class Changes:
    """Per scope (dim, value): its week before the change window, and per (tag, value) new in
    the window (no rows in the week) the calls carrying it."""

    week: dict[tuple[str, str], Counts] = field(default_factory=dict)
    new: dict[tuple[str, str], dict[tuple[str, str], Counts]] = field(default_factory=dict)
    hours: float = 0.0  # the week's length


def changes(
    reader: Reader, cache: AlertCache, dims: list[str] | tuple[str, ...], now: float, first: float
) -> Changes:
    """Only dimensions of the rollups' tag cube are served (a customer's week is raw rows)."""
    out = Changes()
    end = now - CHANGE_WINDOW
    start = max(first, end - WEEK)
    if end - start < DAY:
        return out  # under a day of history every version is new
    out.hours = (end - start) / HOUR
    ranges = [(0, end, now), (1, start, end)]
    fields = (F_ELIGIBLE, F_CACHED, F_SPEND)
    for dim in dims:
        if dim not in CUBE_DIMS_OF[CUBE_DIMS]:
            continue
        tags = [t for t in CHANGE_DIMS if t != dim]
        recent: dict[tuple[str, str], dict[tuple[str, str], Counts]] = {}
        known: set[tuple[str, str, str, str]] = set()
        for idx, keys, n, (elig, hits, spend) in sliding_sums(
            reader, cache.trackers, "changes", ranges, (dim, *tags), fields
        ):
            val = keys[0]
            if val is None or n <= 0:
                continue
            if idx == 1:
                out.week.setdefault((dim, val), Counts()).add(elig, hits, spend, n)
            for tag, tv in zip(tags, keys[1:], strict=True):
                if tv is None:
                    continue
                if idx == 1:
                    known.add((dim, val, tag, tv))
                else:
                    g = recent.setdefault((dim, val), {}).setdefault((tag, tv), Counts())
                    g.add(elig, hits, spend, n)
        for scope, tagged in recent.items():
            for (tag, tv), g in tagged.items():
                if (*scope, tag, tv) not in known:
                    out.new.setdefault(scope, {})[(tag, tv)] = g
    return out


def since(reader: Reader, scope: tuple[str, str], tag: str, value: str, now: float) -> float | None:
    """When the change began: its first call in the change window."""
    return first_seen(
        reader, tag, value, now - CHANGE_WINDOW, now, (Clause(scope[0], "=", scope[1]),)
    )


def cost_per_call(
    reader: Reader, cache: AlertCache, rules: Rules, now: float, first: float
) -> list[Candidate]:
    """A feature whose calls since a change cost at least min_change_pct more than its usual
    cost per call, beyond its own per-call spread (NOISE_P), by an amount over the anomaly
    rule's floor per hour at the feature's usual call rate."""
    from llmtop.alerts.detectors import Candidate, label, scope_of, usd

    ar = rules.anomaly
    if "feature" not in ar.group_by:
        return []
    ch = changes(reader, cache, ("feature",), now, first)
    if not ch.new:
        return []
    profiles = cost_profiles(reader, cache, now, first, ar.days)
    floor = floor_usd(
        ar.min_change_usd,
        ar.min_change_share_pct,
        org_rate(reader, cache, now, first, ar.days),
        HOUR,
    )
    out: list[Candidate] = []
    for scope, tagged in ch.new.items():
        prof, week = profiles.get(scope[1]), ch.week.get(scope)
        if prof is None or week is None or prof[0] <= 0:
            continue
        m, cv2 = prof
        best: tuple[float, str, str, Counts] | None = None
        for (tag, tv), g in tagged.items():
            if g.calls < MIN_CHANGE_CALLS:
                continue
            per = g.spend / g.calls
            extra_h = (per - m) * week.calls / ch.hours
            if per < m * (1 + ar.min_change_pct / 100.0) or extra_h < floor:
                continue
            p = gamma_tail(g.calls * m, g.calls * m * m * cv2, g.spend)
            if p <= NOISE_P and (best is None or p < best[0]):
                best = (p, tag, tv, g)
        if best is None:
            continue
        _p, tag, tv, g = best
        t0 = since(reader, scope, tag, tv, now) or now - CHANGE_WINDOW
        if now - t0 < MIN_CHANGE_AGE:
            continue
        per = g.spend / g.calls
        extra_h = (per - m) * week.calls / ch.hours
        out.append(
            Candidate(
                rule="cost_per_call",
                severity="critical" if per >= ar.critical_ratio * m else "warning",
                scope=scope_of(*scope),
                title=(
                    f"{label(*scope)} cost per call {_per(m)} → {_per(per)} since {tag} {tv} "
                    f"({g.calls} calls; +{usd(extra_h)}/h at its usual rate)"
                ),
                cur=(t0, now),
                base=[(now - CHANGE_WINDOW - DAY, now - CHANGE_WINDOW)],
                scale=(now - t0) / DAY,
                delta=g.spend - g.calls * m,
                since=t0,
            )
        )
    return out


def _per(x: float) -> str:
    """A cost per call: cents are too coarse for a $0.0001 call."""
    return f"${x:.2g}" if x < 0.01 else f"${x:,.3f}"
