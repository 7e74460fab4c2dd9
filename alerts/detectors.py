"""The alert rules' detectors: one function per rule, each reading the database at `now` and
returning the Candidates that fire (alerts before cause analysis and incident grouping).

Every detector reads only bounded windows through the started_at index (or the rollups) and
groups in SQL (store.alert_queries); what one pass can reuse from the last lives in the
AlertCache the caller passes. A new rule: a detector here, its settings in rules.py, and a line
in DETECTORS.

Noise control, from the monitoring playbooks users expect:
- each group is judged against its own history (same window, same time of day, previous days),
  so a nightly batch burst that happens every night is inside its own band;
- a spend alert needs a σ-band breach AND a percentage AND an absolute dollar change, so tiny
  workloads never page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llmtop.alerts.cache import AlertCache, file_key
from llmtop.alerts.explain import Evidence
from llmtop.alerts.margin import margin
from llmtop.alerts.rules import Rules
from llmtop.store.alert_queries import (
    Agg,
    aggregate,
    rows_added_before,
    sliding_spend,
)
from llmtop.store.filters import Clause, format_filter, format_window
from llmtop.store.reader import Reader

DAY = 86400.0
RATE_RULES = ("error_rate", "retry_rate", "fallback_rate", "cache_hit_drop")
#: Half-width of the same-time-of-day sample a spike is compared with (jitter tolerance).
SPIKE_SAME_TIME_HALF = 900.0


@dataclass
class Candidate:
    """A firing condition, before its likely cause is analysed."""

    rule: str
    severity: str
    scope: tuple[Clause, ...]
    title: str
    cur: tuple[float, float]
    base: list[tuple[float, float]]
    scale: float
    delta: float
    workload: str | None = None
    extra: list[Evidence] = field(default_factory=list)
    owner: str | None = None

    @property
    def scope_text(self) -> str:
        return format_filter(self.scope)


def fingerprint(rule: str, scope: str) -> str:
    """Rule + scope: the same incident keeps its identity across evaluations and restarts."""
    return f"{rule}|{scope}"


def _label(dim: str, value: str | None) -> str:
    if dim == "all":
        return "total"
    return value if dim == "feature" and value else f"{dim}={value}"


def _scope(dim: str, value: str | None) -> tuple[Clause, ...]:
    return () if dim == "all" else (Clause(dim, "=", value),)


def usd(x: float) -> str:
    return f"${x:,.2f}"


def _stats(samples: Sequence[float]) -> tuple[float, float]:
    n = len(samples)
    mu = sum(samples) / n
    return mu, math.sqrt(sum((s - mu) ** 2 for s in samples) / n)


# --- anomaly bands -------------------------------------------------------------------------------


def anomaly(
    reader: Reader, cache: AlertCache, rules: Rules, now: float, first: float
) -> list[Candidate]:
    ar = rules.anomaly
    out: list[Candidate] = []
    dims = set(ar.group_by)
    windows = sorted({ar.window, *rules.workloads.values()})
    for w in windows:
        ranges = [(0, now - w, now)] + [
            (d, now - d * DAY - w, now - d * DAY)
            for d in range(1, ar.days + 1)
            if now - d * DAY - w >= first
        ]
        days = [r[0] for r in ranges[1:]]
        if len(days) < ar.min_samples:
            continue
        base = [(a, b) for _, a, b in ranges[1:]]
        groups: dict[tuple[str, str | None], dict[int, float]] = {}
        workload_of: dict[str, str | None] = {}
        if dims & {"feature", "workload", "all"}:
            votes: dict[str, dict[str | None, float]] = {}
            for idx, (feat, wl), spend, n in sliding_spend(
                reader, cache.trackers, f"anomaly{w}", ranges, ("feature", "workload")
            ):
                for dim, val in (("feature", feat), ("workload", wl), ("all", None)):
                    if dim in dims and (val is not None or dim == "all"):
                        g = groups.setdefault((dim, val), {})
                        g[idx] = g.get(idx, 0.0) + spend
                if feat is not None:
                    v = votes.setdefault(feat, {})
                    v[wl] = v.get(wl, 0.0) + spend + n * 1e-9
            for feat, v in votes.items():
                workload_of[feat] = max(v.items(), key=lambda kv: kv[1])[0]
        for dim in dims - {"feature", "workload", "all"}:
            for idx, (val,), spend, _n in sliding_spend(
                reader, cache.trackers, f"anomaly{w}", ranges, (dim,)
            ):
                if val is not None:
                    g = groups.setdefault((dim, val), {})
                    g[idx] = g.get(idx, 0.0) + spend
        for (dim, val), by_idx in groups.items():
            if dim == "feature":
                own = rules.window_for(workload_of.get(val or ""))
            elif dim == "workload":
                own = rules.window_for(val)
            else:
                own = ar.window
            if own != w:
                continue
            cur = by_idx.get(0, 0.0)
            mu, sd = _stats([by_idx.get(d, 0.0) for d in days])
            band = mu + ar.sigma * sd
            delta = cur - mu
            if cur <= band or delta < ar.min_change_usd:
                continue
            if mu > 0 and delta / mu * 100.0 < ar.min_change_pct:
                continue
            ratio = cur / mu if mu > 0 else math.inf
            critical = ratio >= ar.critical_ratio
            times = f"{ratio:.1f}× its normal {usd(mu)}" if mu > 0 else "no spend here normally"
            out.append(
                Candidate(
                    rule="anomaly",
                    severity="critical" if critical else "warning",
                    scope=_scope(dim, val),
                    title=(
                        f"{_label(dim, val)} spend {usd(cur)}/{format_window(w)}, {times} "
                        f"({ar.sigma:g}σ band ≤ {usd(band)})"
                    ),
                    cur=(now - w, now),
                    base=base,
                    scale=1.0 / len(base),
                    delta=delta,
                    workload=workload_of.get(val or "") if dim == "feature" else None,
                )
            )
    return out


# --- burn spikes ---------------------------------------------------------------------------------


def spike(
    reader: Reader, cache: AlertCache, rules: Rules, now: float, first: float
) -> list[Candidate]:
    sr = rules.spike
    s = sr.window
    t_start = max(first, now - s - sr.trailing)
    trailing = now - s - t_start
    if trailing < s:
        return []
    half = max(SPIKE_SAME_TIME_HALF, s)
    ranges = [(0, now - s, now), (1, t_start, now - s)]
    same: list[tuple[float, float]] = []
    for d in range(1, 8):
        a, b = now - d * DAY - half, now - d * DAY + half
        if a >= first:
            ranges.append((1 + d, a, b))
            same.append((a, b))
    dims = [d for d in sr.group_by if d != "all"]
    groups: dict[tuple[str, str | None], dict[int, float]] = {}
    for idx, keys, agg in aggregate(reader, ranges, dims):
        if "all" in sr.group_by:
            g = groups.setdefault(("all", None), {})
            g[idx] = g.get(idx, 0.0) + agg.spend
        for dim, val in zip(dims, keys, strict=True):
            if val is not None:
                g = groups.setdefault((dim, val), {})
                g[idx] = g.get(idx, 0.0) + agg.spend
    out: list[Candidate] = []
    for (dim, val), by_idx in groups.items():
        cur = by_idx.get(0, 0.0)
        trail_rate = by_idx.get(1, 0.0) / trailing
        same_rate = (
            sum(by_idx.get(1 + d, 0.0) for d in range(1, 8)) / (len(same) * 2 * half)
            if same
            else 0.0
        )
        normal = max(trail_rate, same_rate) * s
        if cur - normal < sr.min_change_usd or cur < sr.ratio * normal:
            continue
        ratio = cur / normal if normal > 0 else math.inf
        use_same = same_rate > trail_rate
        base = same if use_same else [(t_start, now - s)]
        scale = s / (len(same) * 2 * half) if use_same else s / trailing
        times = (
            f"{ratio:.1f}× its normal {usd(normal * 3600 / s)}/h" if normal > 0 else "from nothing"
        )
        out.append(
            Candidate(
                rule="spike",
                severity="critical" if ratio >= sr.critical_ratio else "warning",
                scope=_scope(dim, val),
                title=(
                    f"{_label(dim, val)} burning {usd(cur * 3600 / s)}/h over the last "
                    f"{format_window(s)}, {times}"
                ),
                cur=(now - s, now),
                base=base,
                scale=scale,
                delta=cur - normal,
            )
        )
    return out


# --- runaway users and customers ------------------------------------------------------------------


def runaway_history(
    reader: Reader, cache: AlertCache, dims: list[str], start: float, hour: float
) -> dict[tuple[str, str], float]:
    """Per-value spend in [start, hour): the runaway rule's 7-day baseline.

    The one query that grows with the file, so it is read the way the dashboard reads long
    windows: from the hourly rollups (cube `customer, user` for the default group_by) through a
    sliding tracker in the cache (it was a raw scan of 7 days of rows: seconds at 10M). Its
    completed hours do not change, so the sums are reused until the hour rolls over or rows
    arrive late into it (checked by id, cheap): walking every (customer, user) pair each pass
    would cost most of a pass on a big file.
    """
    key = (*file_key(reader), tuple(dims), hour, start)
    hit = cache.history.get(key)
    if hit is not None and not rows_added_before(reader, hit[0], hour):
        return hit[1]
    top = reader.max_id()
    sums: dict[tuple[str, str], float] = {}
    for _, keys, spend, _n in sliding_spend(
        reader, cache.trackers, "runaway", [(1, start, hour)], dims
    ):
        for dim, val in zip(dims, keys, strict=True):
            if val is not None:
                sums[(dim, val)] = sums.get((dim, val), 0.0) + spend
    cache.remember_history(key, top, sums)
    return sums


def runaway(
    reader: Reader, cache: AlertCache, rules: Rules, now: float, first: float
) -> list[Candidate]:
    rr = rules.runaway
    w = rr.window
    hour = math.floor((now - w) / 3600.0) * 3600.0
    b0 = max(first, hour - rr.days * DAY)
    span = now - w - b0
    if span < min(DAY, rr.days * DAY) or not rr.group_by:
        return []
    dims = list(rr.group_by)
    per: dict[tuple[str, str], list[float]] = {
        k: [0.0, v] for k, v in runaway_history(reader, cache, dims, b0, hour).items()
    }
    for idx, keys, agg in aggregate(reader, [(0, now - w, now), (1, hour, now - w)], dims):
        for dim, val in zip(dims, keys, strict=True):
            if val is None:
                continue
            per.setdefault((dim, val), [0.0, 0.0])[idx] += agg.spend
    out: list[Candidate] = []
    days = f"{min(rr.days, round(span / DAY)):g}-day"
    for (dim, val), (cur, hist) in per.items():
        avg = hist * w / span
        if cur < rr.min_usd or cur < rr.ratio * avg:
            continue
        ratio = cur / avg if avg > 0 else math.inf
        times = (
            f"{ratio:.0f}× its {days} average {usd(avg)}/{format_window(w)}"
            if avg > 0
            else f"no spend in the previous {days.split('-')[0]} days"
        )
        out.append(
            Candidate(
                rule="runaway",
                severity="critical" if ratio >= rr.critical_ratio else "warning",
                scope=_scope(dim, val),
                title=f"{dim} {val} spend {usd(cur)}/{format_window(w)}, {times}",
                cur=(now - w, now),
                base=[(b0, now - w)],
                scale=w / span,
                delta=cur - avg,
            )
        )
    return out


# --- retry / fallback / error / cache-hit rates ---------------------------------------------------


def rates(
    reader: Reader, cache: AlertCache, rules: Rules, now: float, first: float
) -> list[Candidate]:
    qr = rules.rates
    w = qr.window
    b0 = max(first, now - w - qr.baseline)
    span = now - w - b0
    ranges = [(0, now - w, now)] + ([(1, b0, now - w)] if span > 0 else [])
    dims = [d for d in qr.group_by if d != "all"]
    groups: dict[tuple[str, str | None], list[Agg]] = {}
    for idx, keys, agg in aggregate(reader, ranges, dims):
        targets = [("all", None)] if "all" in qr.group_by else []
        targets += [(d, v) for d, v in zip(dims, keys, strict=True) if v is not None]
        for t in targets:
            groups.setdefault(t, [Agg(), Agg()])[idx].add(agg)
    out: list[Candidate] = []
    base = [(b0, now - w)] if span > 0 else []
    scale = w / span if span > 0 else 0.0
    for (dim, val), (c, b) in groups.items():
        if c.requests < qr.min_requests:
            continue
        label = _label(dim, val)
        for rule, num_c, num_b, limit in (
            ("error_rate", c.failures, b.failures, qr.error_rate_pct),
            ("retry_rate", c.retries, b.retries, qr.retry_rate_pct),
            ("fallback_rate", c.fallbacks, b.fallbacks, qr.fallback_rate_pct),
        ):
            rc = num_c / c.requests
            rb = num_b / b.requests if b.requests else 0.0
            if rc * 100.0 < limit or rc < 2.0 * rb:
                continue
            what = rule.split("_")[0]
            normal = f"normal {rb * 100:.1f}%" if b.requests else "no baseline yet"
            out.append(
                Candidate(
                    rule=rule,
                    severity="critical"
                    if rc * 100.0 >= limit * qr.critical_multiple
                    else "warning",
                    scope=_scope(dim, val),
                    title=(
                        f"{label} {what} rate {rc * 100:.0f}% over {format_window(w)} ({normal}), "
                        f"{num_c} of {c.requests} requests"
                    ),
                    cur=(now - w, now),
                    base=base,
                    scale=scale,
                    delta=num_c - rb * c.requests,
                )
            )
        # Per group only: an org-wide hit rate moves whenever the traffic mix does (a nightly
        # batch job without prompt caching "drops" it every night).
        if dim != "all" and c.eligible >= qr.min_requests and b.eligible >= qr.min_requests:
            hc, hb = c.cached / c.eligible, b.cached / b.eligible
            if hb >= 0.1 and (hb - hc) / hb * 100.0 >= qr.cache_hit_drop_pct:
                out.append(
                    Candidate(
                        rule="cache_hit_drop",
                        severity="critical" if hc <= hb * 0.1 else "warning",
                        scope=_scope(dim, val),
                        title=(
                            f"{label} cache hit rate {hb * 100:.0f}% → {hc * 100:.0f}% over "
                            f"{format_window(w)} ({c.eligible} requests)"
                        ),
                        cur=(now - w, now),
                        base=base,
                        scale=scale,
                        delta=(hb - hc) * c.eligible,
                    )
                )
    return out


Detector = Callable[[Reader, AlertCache, Rules, float, float], list[Candidate]]

#: The detectors of every pass, by their settings' name in Rules (`rules.anomaly.enabled`...);
#: budgets run one per configured budget (see evaluate).
DETECTORS: tuple[tuple[str, Detector], ...] = (
    ("anomaly", anomaly),
    ("spike", spike),
    ("runaway", runaway),
    ("rates", rates),
    ("margin", margin),  # alerts/margin.py: month-to-date cost vs plan price ([plans])
)
