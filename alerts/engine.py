"""Evaluate the rules against the database at one instant: `evaluate(reader, rules, now)`.

Stateless on purpose (paging state lives in `alerts.state`), so `llmtop check`, the TUI and the
tests all get the same answer for the same `now`. Every rule reads only bounded windows through
the started_at index and groups in SQL (store.alert_queries), and the likely-cause analysis runs
only for conditions that actually fire, which keeps a pass on a ~300k-row file well under the
TUI's refresh interval.

Noise control, from the monitoring playbooks users expect:
- each group is judged against its own history (same window, same time of day, previous days),
  so a nightly batch burst that happens every night is inside its own band;
- a spend alert needs a σ-band breach AND a percentage AND an absolute dollar change, so tiny
  workloads never page;
- when one feature explains most of a broader alert (the org, its workload) of the same rule,
  only the feature alert is raised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from llmtop.alerts.explain import (
    EXPLAIN_DIMS,
    Evidence,
    Why,
    compared_ranges,
    explain,
    owner_from_map,
)
from llmtop.alerts.model import Alert
from llmtop.alerts.rules import Budget, Rules
from llmtop.store.alert_queries import (
    Agg,
    ExplainData,
    aggregate,
    first_row_at,
    rows_added_before,
    sliding_spend,
    spend_between,
)
from llmtop.store.filters import Clause, format_filter, format_window
from llmtop.store.reader import Reader

DAY = 86400.0
_RATE_RULES = ("error_rate", "retry_rate", "fallback_rate", "cache_hit_drop")
#: Half-width of the same-time-of-day sample a spike is compared with (jitter tolerance).
SPIKE_SAME_TIME_HALF = 900.0
#: A firing alert's likely-cause analysis is reused this long (it is the costly part of a pass:
#: during an incident at 10M rows, seconds per alert with a 7-day baseline). The alert's own
#: numbers are recomputed every pass; the evidence behind them moves slowly.
EXPLAIN_TTL = 120.0
_WHY: dict[tuple[object, ...], tuple[float, Why]] = {}


@dataclass
class _Candidate:
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


def _usd(x: float) -> str:
    return f"${x:,.2f}"


def _stats(samples: Sequence[float]) -> tuple[float, float]:
    n = len(samples)
    mu = sum(samples) / n
    return mu, math.sqrt(sum((s - mu) ** 2 for s in samples) / n)


# --- anomaly bands -------------------------------------------------------------------------------


def _anomaly(reader: Reader, rules: Rules, now: float, first: float) -> list[_Candidate]:
    ar = rules.anomaly
    out: list[_Candidate] = []
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
                reader, f"anomaly{w}", ranges, ("feature", "workload")
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
            for idx, (val,), spend, _n in sliding_spend(reader, f"anomaly{w}", ranges, (dim,)):
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
            times = f"{ratio:.1f}× its normal {_usd(mu)}" if mu > 0 else "no spend here normally"
            out.append(
                _Candidate(
                    rule="anomaly",
                    severity="critical" if critical else "warning",
                    scope=_scope(dim, val),
                    title=(
                        f"{_label(dim, val)} spend {_usd(cur)}/{format_window(w)}, {times} "
                        f"({ar.sigma:g}σ band ≤ {_usd(band)})"
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


def _spike(reader: Reader, rules: Rules, now: float, first: float) -> list[_Candidate]:
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
    out: list[_Candidate] = []
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
            f"{ratio:.1f}× its normal {_usd(normal * 3600 / s)}/h" if normal > 0 else "from nothing"
        )
        out.append(
            _Candidate(
                rule="spike",
                severity="critical" if ratio >= sr.critical_ratio else "warning",
                scope=_scope(dim, val),
                title=(
                    f"{_label(dim, val)} burning {_usd(cur * 3600 / s)}/h over the last "
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


def _file_key(reader: Reader) -> tuple[str, int]:
    try:
        return str(reader.path), reader.path.stat().st_ino
    except OSError:
        return str(reader.path), 0


def _history(
    reader: Reader, dims: list[str], start: float, hour: float
) -> dict[tuple[str, str], float]:
    """Per-value spend in [start, hour): the runaway rule's 7-day baseline.

    The one query that grows with the file, so it is read the way the dashboard reads long
    windows: from the hourly rollups (cube `customer, user` for the default group_by) through a
    tracker kept on the reader (it was a raw scan of 7 days of rows: seconds at 10M). Its
    completed hours do not change, so the sums are reused until the hour rolls over or rows
    arrive late into it (checked by id, cheap): walking every (customer, user) pair each pass
    would cost most of a pass on a big file.
    """
    key = (*_file_key(reader), tuple(dims), hour, start)
    hit = _HISTORY.get(key)
    if hit is not None and not rows_added_before(reader, hit[0], hour):
        return hit[1]
    top = reader.max_id()
    sums: dict[tuple[str, str], float] = {}
    for _, keys, spend, _n in sliding_spend(reader, "runaway", [(1, start, hour)], dims):
        for dim, val in zip(dims, keys, strict=True):
            if val is not None:
                sums[(dim, val)] = sums.get((dim, val), 0.0) + spend
    if len(_HISTORY) > 16:
        _HISTORY.clear()
    _HISTORY[key] = (top, sums)
    return sums


#: The runaway rule's baseline sums: (file, dims, hour, start) -> (max row id read, sums).
_HISTORY: dict[tuple[object, ...], tuple[int, dict[tuple[str, str], float]]] = {}


def _runaway(reader: Reader, rules: Rules, now: float, first: float) -> list[_Candidate]:
    rr = rules.runaway
    w = rr.window
    hour = math.floor((now - w) / 3600.0) * 3600.0
    b0 = max(first, hour - rr.days * DAY)
    span = now - w - b0
    if span < min(DAY, rr.days * DAY) or not rr.group_by:
        return []
    dims = list(rr.group_by)
    per: dict[tuple[str, str], list[float]] = {
        k: [0.0, v] for k, v in _history(reader, dims, b0, hour).items()
    }
    for idx, keys, agg in aggregate(reader, [(0, now - w, now), (1, hour, now - w)], dims):
        for dim, val in zip(dims, keys, strict=True):
            if val is None:
                continue
            per.setdefault((dim, val), [0.0, 0.0])[idx] += agg.spend
    out: list[_Candidate] = []
    days = f"{min(rr.days, round(span / DAY)):g}-day"
    for (dim, val), (cur, hist) in per.items():
        avg = hist * w / span
        if cur < rr.min_usd or cur < rr.ratio * avg:
            continue
        ratio = cur / avg if avg > 0 else math.inf
        times = (
            f"{ratio:.0f}× its {days} average {_usd(avg)}/{format_window(w)}"
            if avg > 0
            else f"no spend in the previous {days.split('-')[0]} days"
        )
        out.append(
            _Candidate(
                rule="runaway",
                severity="critical" if ratio >= rr.critical_ratio else "warning",
                scope=_scope(dim, val),
                title=f"{dim} {val} spend {_usd(cur)}/{format_window(w)}, {times}",
                cur=(now - w, now),
                base=[(b0, now - w)],
                scale=w / span,
                delta=cur - avg,
            )
        )
    return out


# --- retry / fallback / error / cache-hit rates ---------------------------------------------------


def _rates(reader: Reader, rules: Rules, now: float, first: float) -> list[_Candidate]:
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
    out: list[_Candidate] = []
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
                _Candidate(
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
                    _Candidate(
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


# --- budgets -------------------------------------------------------------------------------------


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


def _budget(reader: Reader, b: Budget, now: float, first: float) -> _Candidate | None:
    start, end = period_bounds(now, b.period)
    spent = spend_between(reader, start, now, b.scope)
    look_start = max(first, now - BURN_LOOKBACK[b.period])
    look = now - look_start
    rate = spend_between(reader, look_start, now, b.scope) / look if look > 0 else 0.0
    pct = spent / b.amount * 100.0
    where = b.scope_text or "all spend"
    head = f"{b.name} {_usd(b.amount)} ({where}): {_usd(spent)} spent ({pct:.0f}%)"
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
                f"; at the current rate ({_usd(rate * 3600)}/h) the {b.period}ly budget runs "
                f"out {_when(t_out, b.period)}"
            )
    if severity is None:
        return None
    samples = [
        (now - d * DAY - look, now - d * DAY) for d in range(1, 7) if now - d * DAY - look >= first
    ]
    return _Candidate(
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


# --- putting it together -------------------------------------------------------------------------


def _suppress(cands: list[_Candidate]) -> list[_Candidate]:
    """Drop a broad alert when a feature alert of the same rule explains most of it."""
    keep: list[_Candidate] = []
    for c in cands:
        keys = {cl.key for cl in c.scope}
        broad = not c.scope or keys == {"workload"}
        if broad and not c.rule.startswith("budget"):
            wl = c.scope[0].value if c.scope else None
            narrow = [
                o.delta
                for o in cands
                if o.rule == c.rule
                and {cl.key for cl in o.scope} == {"feature"}
                and (wl is None or o.workload in (None, wl))
            ]
            if narrow and max(narrow) >= 0.5 * c.delta:
                continue
        keep.append(c)
    return keep


#: Scope dimensions of one tenant: their alerts are filed under a broader alert of the same
#: incident, never the other way round.
_NARROW_DIMS = frozenset({"customer", "user", "correlation_id"})


def _breadth(c: _Candidate) -> int:
    """2 the whole org, 1 a feature, workload, team, model..., 0 one customer or user."""
    keys = {cl.key for cl in c.scope}
    return 2 if not keys else (0 if keys & _NARROW_DIMS else 1)


def _rank(c: _Candidate, why: Why) -> tuple[int, bool, float, str]:
    """Which alert of an incident is its root: the broadest scope (a deploy's feature, not the
    customers it reached), then critical, then the most dollars explained (a total order: the
    fingerprint breaks ties). The root pages with the incident's severity (critical_roots)."""
    top = max((e.dollars for e in why.causes), default=0.0)
    return (_breadth(c), c.severity == "critical", top, fingerprint(c.rule, c.scope_text))


def critical_roots(
    analysed: Sequence[tuple[_Candidate, Why, bool]], parents: dict[str, str]
) -> set[str]:
    """Roots of the incidents holding a critical alert: they page as critical, so the page
    carries the incident's severity and an alert of it turning critical pages again."""
    roots: set[str] = set()
    for c, _why, _done in analysed:
        if c.severity == "critical":
            fp = fingerprint(c.rule, c.scope_text)
            roots.add(parents.get(fp, fp))
    return roots


def incidents(analysed: Sequence[tuple[_Candidate, Why, bool]]) -> dict[str, str]:
    """Fingerprint -> fingerprint of the root it is filed under, for alerts that are not roots.

    Two firing alerts are one incident when they watch the same scope (a feature's band and its
    burn rate), when one's likely causes name the other's scope ("feature=search +$40" on a
    customer's alert), or when their top causes are the same tag value (both "new prompt_version
    v7"). Only evidence of a change names a value: "largest share" (what spends, when nothing
    changed) ties nobody together. Each alert is filed under its highest-ranked relative, and that one under its own, so
    an incident is a tree with one root that pages. Budget alerts stay on their own: a budget is
    a policy with its own owner, not a symptom.
    """
    info = []
    for c, why, done in analysed:
        if c.rule.startswith("budget"):
            continue
        named = {(e.dim, e.value) for e in why.causes[:3] if e.dim and e.value is not None}
        first = why.causes[0] if done and why.causes else None
        top = (first.dim, first.value) if first and first.dim and first.value else None
        own = (c.scope[0].key, c.scope[0].value) if len(c.scope) == 1 else None
        info.append((fingerprint(c.rule, c.scope_text), c.scope, own, named, top, _rank(c, why)))
    parent: dict[str, tuple[tuple[int, bool, float, str], str]] = {}
    for fp, scope, own, named, top, rank in info:
        for pfp, pscope, pown, pnamed, ptop, prank in info:
            if prank <= rank:
                continue
            related = (
                pscope == scope
                or (pown is not None and pown in named)
                or (own is not None and own in pnamed)
                or (top is not None and top == ptop)
            )
            if related and (fp not in parent or prank > parent[fp][0]):
                parent[fp] = (prank, pfp)
    roots: dict[str, str] = {}
    for fp in parent:
        root = fp
        while root in parent:  # ranks strictly rise along the chain: it ends
            root = parent[root][1]
        roots[fp] = root
    return roots


#: Alerts over one set of ranges from which their causes are read together (see evaluate).
SHARED_READ_MIN = 8


def evaluate(
    reader: Reader, rules: Rules, now: float, *, explain_budget: float | None = None
) -> list[Alert]:
    """Every alert firing at `now`, critical first, each with its likely cause and owner.

    `explain_budget` (seconds; the dashboard's, not `llmtop check`'s): once the cause analyses
    of this pass have taken that long, the remaining alerts fire with a provisional cause (the
    broadest and biggest got theirs first), and the next pass fills the rest in. During an incident on a big
    file the page must not wait for the 50th customer's analysis.
    """
    first = first_row_at(reader)
    if first is None:
        return []
    cands: list[_Candidate] = []
    if rules.anomaly.enabled:
        cands += _anomaly(reader, rules, now, first)
    if rules.spike.enabled:
        cands += _spike(reader, rules, now, first)
    if rules.runaway.enabled:
        cands += _runaway(reader, rules, now, first)
    if rules.rates.enabled:
        cands += _rates(reader, rules, now, first)
    for b in rules.budgets:
        c = _budget(reader, b, now, first)
        if c is not None:
            cands.append(c)
    alerts: list[Alert] = []
    analysed: list[tuple[_Candidate, Why, bool]] = []
    firing = _suppress(cands)
    file_key = _file_key(reader)
    # Alerts over the same ranges share one read of their rows (an incident fires a feature and
    # then every customer and user it touched); that read costs a few per-alert reads, so it is
    # only worth it for a crowd, and it is restricted to the crowd's scopes (their tenants' rows).
    ranges_of = {id(c): compared_ranges(c.cur, c.base) for c in firing}
    crowds: dict[tuple[tuple[int, float, float], ...], list[_Candidate]] = {}
    for c in firing:
        crowds.setdefault(ranges_of[id(c)], []).append(c)
    shared = {
        ranges: ExplainData(
            reader, ranges, EXPLAIN_DIMS, only=[c.scope[0] for c in crowd if len(c.scope) == 1]
        )
        for ranges, crowd in crowds.items()
        if len(crowd) >= SHARED_READ_MIN
    }
    spent = 0.0

    def why_key(c: _Candidate) -> tuple[object, ...]:
        return (*file_key, fingerprint(c.rule, c.scope_text), id(rules))

    # Never-analysed alerts first (one left pending does not page; a stale cause can wait), and
    # among them broad ones: they are the roots that page.
    firing.sort(
        key=lambda c: (why_key(c) in _WHY, -_breadth(c), c.severity != "critical", -c.delta)
    )
    for c in firing:
        focus = c.rule.split("_")[0] if c.rule in _RATE_RULES else None
        ckey = why_key(c)
        cached = _WHY.get(ckey)
        data = shared.get(ranges_of[id(c)])
        over_budget = (
            explain_budget is not None
            and spent >= explain_budget
            and not (data is not None and data.loaded)  # its rows are read already: cheap
        )
        done = True
        if cached is not None and (0 <= now - cached[0] < EXPLAIN_TTL or over_budget):
            why = cached[1]  # out of budget, a stale analysis rather than none
        elif over_budget:
            done = False
            why = Why(
                causes=[Evidence("likely cause: being analysed (next pass)", 0.0, "rate")],
                owner=owner_from_map(rules, c.scope),
            )  # not cached: the next pass analyses it
        else:
            t0 = time.monotonic()
            why = explain(
                reader,
                rules,
                c.scope,
                c.cur,
                c.base,
                c.scale,
                extra=c.extra,
                focus=focus,
                shared=shared if data is not None else None,
            )
            spent += time.monotonic() - t0
            if len(_WHY) > 256:
                _WHY.clear()
            _WHY[ckey] = (now, why)
        analysed.append((c, why, done))
    parents = incidents(analysed)
    critical = critical_roots(analysed, parents)
    for c, why, done in analysed:
        scope = c.scope_text
        fp = fingerprint(c.rule, scope)
        alerts.append(
            Alert(
                fingerprint=fp,
                rule=c.rule,
                severity="critical" if fp in critical else c.severity,
                scope=scope,
                title=c.title,
                cause=why.cause,
                causes=tuple((e.text, round(e.dollars, 4)) for e in why.causes),
                owner=c.owner or why.owner,
                since=why.since if why.since is not None else c.cur[0],
                drill=(scope, why.drill_dim),
                parent=parents.get(fp),
                pending=not done,
            )
        )
    alerts.sort(key=lambda a: (a.severity != "critical", a.rule, a.scope))
    return alerts
