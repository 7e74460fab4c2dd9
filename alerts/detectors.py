"""The alert rules' detectors: one function per rule, each reading the database at `now` and
returning the Candidates that fire (alerts before cause analysis and incident grouping).

Every detector reads only bounded windows through the started_at index (or the rollups) and
groups in SQL (store.alert_queries); what one pass can reuse from the last lives in the
AlertCache the caller passes. A new rule: a detector here, its settings in rules.py, and a line
in DETECTORS.

Noise control, from the monitoring playbooks users expect:
- each group is judged against its own history (same window, same time of day, previous days),
  so a nightly batch burst that happens every night is inside its own band;
- a spend alert needs a σ-band breach AND a percentage AND a dollar change that is both a share
  of the org's normal spend and more than counting noise, so tiny workloads never page at any
  scale (alerts.scale);
- weekdays are compared with weekdays and weekends with weekends (when there are enough of each),
  and long windows tolerate a batch job starting a little earlier or later than usual.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llmtop.alerts.cache import AlertCache, file_key
from llmtop.alerts.explain import Evidence
from llmtop.alerts.margin import margin
from llmtop.alerts.newcomers import newcomers
from llmtop.alerts.rate_rules import rates
from llmtop.alerts.rules import Rules
from llmtop.alerts.scale import (
    NOISE_P,
    cost_profiles,
    floor_usd,
    like_days,
    org_rate,
    spend_p,
)
from llmtop.alerts.since_change import cost_per_call
from llmtop.store.alert_queries import (
    Agg,
    rows_added_before,
    sliding_spend,
)
from llmtop.store.filters import Clause, format_filter, format_window
from llmtop.store.reader import Reader

DAY = 86400.0
RATE_RULES = ("error_rate", "retry_rate", "fallback_rate", "cache_hit_drop")
#: Half-width of the same-time-of-day sample a spike is compared with (jitter tolerance).
SPIKE_SAME_TIME_HALF = 900.0
#: Half-width of the same-weekday-last-week sample a spike is also compared with: a weekly job
#: is in one day of seven, too little to move the 7-day same-time average.
SPIKE_WEEK_HALF = 1800.0
#: Anomaly windows this long or longer also compare each previous day's window shifted by
#: ±min(ANOMALY_JITTER, window/4) and keep the largest: cron is punctual, batch jobs are not.
ANOMALY_JITTER = 1800.0
ANOMALY_JITTER_MIN_WINDOW = 3600.0
#: A spend alert needs this many calls in its window: one or two calls are never a trend, however
#: much they cost (one uncached call of a mostly-cached feature is 6× its average).
MIN_CURRENT_REQUESTS = 3


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
    #: When the condition is known to have started (a deploy's first call, for the rules judged
    #: since a change): the alert's `since` as is, not guessed from the rows (alerts/onset.py).
    since: float | None = None

    @property
    def scope_text(self) -> str:
        return format_filter(self.scope)


def fingerprint(rule: str, scope: str) -> str:
    """Rule + scope: the same incident keeps its identity across evaluations and restarts."""
    return f"{rule}|{scope}"


def label(dim: str, value: str | None) -> str:
    if dim == "all":
        return "total"
    return value if dim == "feature" and value else f"{dim}={value}"


def scope_of(dim: str, value: str | None) -> tuple[Clause, ...]:
    return () if dim == "all" else (Clause(dim, "=", value),)


def usd(x: float) -> str:
    return f"${x:,.2f}"


def _stats(samples: Sequence[float]) -> tuple[float, float]:
    n = len(samples)
    mu = sum(samples) / n
    return mu, math.sqrt(sum((s - mu) ** 2 for s in samples) / n)


# --- anomaly bands -------------------------------------------------------------------------------


def _beyond_noise(
    cur: float,
    feats: dict[int, dict[str | None, int]],
    days: list[int],
    n_shifts: int,
    by_idx: dict[int, list[float]],
    profiles: dict[str, tuple[float, float]],
) -> bool:
    """Whether the window's spend is more than its scope's counting noise explains (see
    scale.spend_p): the expected calls per feature are the baseline days' (each day at the shift
    the band used), plus one pseudo-call for a feature seen now."""
    expected: dict[str | None, float] = {}
    spend = calls = 0.0
    for d in days:
        k = max(range(n_shifts), key=lambda k: by_idx.get(10 * d + k, [0.0, 0.0])[0])
        g = by_idx.get(10 * d + k, [0.0, 0.0])
        spend, calls = spend + g[0], calls + g[1]
        for feat, n in feats.get(10 * d + k, {}).items():
            expected[feat] = expected.get(feat, 0.0) + n
    now_calls = feats.get(0, {})
    for feat in now_calls:
        expected[feat] = expected.get(feat, 0.0) + 1.0
    expected = {f: n / len(days) for f, n in expected.items()}
    fallback = spend / calls if calls else cur / max(1, sum(now_calls.values()))
    return spend_p(cur, now_calls, expected, profiles, fallback) <= NOISE_P


def anomaly(
    reader: Reader, cache: AlertCache, rules: Rules, now: float, first: float
) -> list[Candidate]:
    ar = rules.anomaly
    out: list[Candidate] = []
    dims = set(ar.group_by)
    rate = org_rate(reader, cache, now, first, ar.days)
    profiles = cost_profiles(reader, cache, now, first, ar.days)
    windows = sorted({ar.window, *rules.workloads.values()})
    for w in windows:
        jit = min(ANOMALY_JITTER, w / 4) if w >= ANOMALY_JITTER_MIN_WINDOW else 0.0
        shifts = (0.0, -jit, jit) if jit else (0.0,)
        all_days = [d for d in range(1, ar.days + 1) if now - d * DAY - w >= first]
        if len(all_days) < ar.min_samples:
            continue
        days = like_days(now, all_days, ar.min_samples)
        # Range index 10*d + k: day d's window shifted by shifts[k]; 0 is the current window.
        ranges = [(0, now - w, now)] + [
            (10 * d + k, now - d * DAY - w + sh, now - d * DAY + sh)
            for d in days
            for k, sh in enumerate(shifts)
            if now - d * DAY - w + sh >= first
        ]
        base = [(now - d * DAY - w, now - d * DAY) for d in days]
        groups: dict[tuple[str, str | None], dict[int, list[float]]] = {}
        # Calls per feature in each (scope, range): what the scope's counting noise is made of.
        feats: dict[tuple[str, str | None], dict[int, dict[str | None, int]]] = {}

        def add(  # noqa: PLR0913
            dim: str,
            val: str | None,
            idx: int,
            spend: float,
            n: int,
            feat: str | None,
            groups=groups,  # noqa: ANN001
            feats=feats,  # noqa: ANN001
        ) -> None:
            g = groups.setdefault((dim, val), {}).setdefault(idx, [0.0, 0.0])
            g[0] += spend
            g[1] += n
            f = feats.setdefault((dim, val), {}).setdefault(idx, {})
            f[feat] = f.get(feat, 0) + n

        workload_of: dict[str, str | None] = {}
        if dims & {"feature", "workload", "all"}:
            votes: dict[str, dict[str | None, float]] = {}
            for idx, (feat, wl), spend, n in sliding_spend(
                reader, cache.trackers, f"anomaly{w}", ranges, ("feature", "workload")
            ):
                for dim, val in (("feature", feat), ("workload", wl), ("all", None)):
                    if dim in dims and (val is not None or dim == "all"):
                        add(dim, val, idx, spend, n, feat)
                if feat is not None:
                    v = votes.setdefault(feat, {})
                    v[wl] = v.get(wl, 0.0) + spend + n * 1e-9
            for feat, v in votes.items():
                workload_of[feat] = max(v.items(), key=lambda kv: kv[1])[0]
        for dim in dims - {"feature", "workload", "all"}:
            for idx, (val,), spend, n in sliding_spend(
                reader, cache.trackers, f"anomaly{w}", ranges, (dim,)
            ):
                if val is not None:
                    add(dim, val, idx, spend, n, None)
        floor = floor_usd(ar.min_change_usd, ar.min_change_share_pct, rate, w)
        for (dim, val), by_idx in groups.items():
            if dim == "feature":
                own = rules.window_for(workload_of.get(val or ""))
            elif dim == "workload":
                own = rules.window_for(val)
            else:
                own = ar.window
            if own != w:
                continue
            cur = by_idx.get(0, [0.0, 0.0])[0]
            samples = [
                max(
                    (by_idx.get(10 * d + k, [0.0, 0.0]) for k in range(len(shifts))),
                    key=lambda g: g[0],
                )
                for d in days
            ]
            mu, sd = _stats([g[0] for g in samples])
            band = mu + ar.sigma * sd
            delta = cur - mu
            cur_n = int(by_idx.get(0, [0.0, 0.0])[1])
            if cur <= band or delta < floor or cur_n < MIN_CURRENT_REQUESTS:
                continue
            if mu > 0 and delta / mu * 100.0 < ar.min_change_pct:
                continue
            if not _beyond_noise(
                cur, feats.get((dim, val), {}), days, len(shifts), by_idx, profiles
            ):
                continue
            ratio = cur / mu if mu > 0 else math.inf
            critical = ratio >= ar.critical_ratio
            times = f"{ratio:.1f}× its normal {usd(mu)}" if mu > 0 else "no spend here normally"
            out.append(
                Candidate(
                    rule="anomaly",
                    severity="critical" if critical else "warning",
                    scope=scope_of(dim, val),
                    title=(
                        f"{label(dim, val)} spend {usd(cur)}/{format_window(w)}, {times} "
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
    # Last week: each window of this length within ±SPIKE_WEEK_HALF (range 10 + j), of which the
    # busiest is the normal: a Monday-only job that ends a few minutes earlier this week than last
    # is not a spike, however little of the hour around now it filled last week.
    steps = int(SPIKE_WEEK_HALF // s)
    week: dict[int, tuple[float, float]] = {}
    for j in range(-steps, steps + 1):
        a = now - 7 * DAY - s + j * s
        if a >= first:
            week[10 + j + steps] = (a, a + s)
            ranges.append((10 + j + steps, a, a + s))
    dims = [d for d in sr.group_by if d != "all"]
    qdims = dims if "feature" in dims else [*dims, "feature"]
    fpos = qdims.index("feature")
    groups: dict[tuple[str, str | None], dict[int, Agg]] = {}
    # Calls per feature in each (scope, range): what the scope's counting noise is made of.
    feats: dict[tuple[str, str | None], dict[int, dict[str | None, int]]] = {}
    # Sliding trackers kept across passes: the trailing window and last week's were raw scans
    # every pass (0.3 s of each at 10M rows).
    for idx, keys, spend, n in sliding_spend(reader, cache.trackers, "spike", ranges, qdims):
        agg = Agg(spend=spend, requests=n)
        targets = [("all", None)] if "all" in sr.group_by else []
        targets += [(d, v) for d, v in zip(dims, keys, strict=False) if v is not None]
        for t in targets:
            groups.setdefault(t, {}).setdefault(idx, Agg()).add(agg)
            f = feats.setdefault(t, {}).setdefault(idx, {})
            f[keys[fpos]] = f.get(keys[fpos], 0) + n
    out: list[Candidate] = []
    floor = floor_usd(
        sr.min_change_usd, sr.min_change_share_pct, org_rate(reader, cache, now, first, 7), s
    )
    profiles = cost_profiles(reader, cache, now, first, 7)
    for (dim, val), by_idx in groups.items():
        cur = by_idx.get(0, Agg()).spend
        # Each normal: (spend per second, its ranges' indexes, their seconds): trailing, same
        # time of day, the busiest window around the same time last week.
        normals = [
            (by_idx.get(1, Agg()).spend / trailing, [1], trailing, [(t_start, now - s)]),
        ]
        if same:
            sp = sum(by_idx.get(1 + d, Agg()).spend for d in range(1, 8))
            secs = len(same) * 2 * half
            normals.append((sp / secs, list(range(2, 9)), secs, same))
        if week:
            j = max(week, key=lambda i: by_idx.get(i, Agg()).spend)
            normals.append((by_idx.get(j, Agg()).spend / s, [j], s, [week[j]]))
        spend_rate, idxs, secs, base = max(normals, key=lambda r: r[0])
        normal = spend_rate * s
        now_agg = by_idx.get(0, Agg())
        if cur - normal < floor or cur < sr.ratio * normal:
            continue
        if now_agg.requests < MIN_CURRENT_REQUESTS:
            continue
        fs = feats.get((dim, val), {})
        now_calls = fs.get(0, {})
        expected: dict[str | None, float] = {f: 1.0 for f in now_calls}  # one pseudo-call
        for i in idxs:
            for f, n in fs.get(i, {}).items():
                expected[f] = expected.get(f, 0.0) + n
        expected = {f: n * s / secs for f, n in expected.items()}
        calls = sum(by_idx.get(i, Agg()).requests for i in idxs)
        fallback = normal / (calls * s / secs) if calls else cur / now_agg.requests
        if spend_p(cur, now_calls, expected, profiles, fallback) > NOISE_P:
            continue
        ratio = cur / normal if normal > 0 else math.inf
        scale = s / sum(b - a for a, b in base)
        times = (
            f"{ratio:.1f}× its normal {usd(normal * 3600 / s)}/h" if normal > 0 else "from nothing"
        )
        out.append(
            Candidate(
                rule="spike",
                severity="critical" if ratio >= sr.critical_ratio else "warning",
                scope=scope_of(dim, val),
                title=(
                    f"{label(dim, val)} burning {usd(cur * 3600 / s)}/h over the last "
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
        k: [0.0, v, 0.0] for k, v in runaway_history(reader, cache, dims, b0, hour).items()
    }
    recent = [(0, now - w, now), (1, hour, now - w)]
    for idx, keys, spend, n in sliding_spend(reader, cache.trackers, "runaway-now", recent, dims):
        for dim, val in zip(dims, keys, strict=True):
            if val is None:
                continue
            g = per.setdefault((dim, val), [0.0, 0.0, 0.0])
            g[idx] += spend
            if idx == 0:
                g[2] += n
    out: list[Candidate] = []
    days = f"{min(rr.days, round(span / DAY)):g}-day"
    need = floor_usd(rr.min_usd, rr.min_share_pct, org_rate(reader, cache, now, first, rr.days), w)
    for (dim, val), (cur, hist, n) in per.items():
        avg = hist * w / span
        if cur < need or cur < rr.ratio * avg or n < rr.min_requests:
            continue
        if avg <= 0 and rules.new.enabled and dim in rules.new.group_by:
            continue  # no history at all: the new-entity rule's ("new customer X: ...")
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
                scope=scope_of(dim, val),
                title=f"{dim} {val} spend {usd(cur)}/{format_window(w)}, {times}",
                cur=(now - w, now),
                base=[(b0, now - w)],
                scale=w / span,
                delta=cur - avg,
            )
        )
    return out


Detector = Callable[[Reader, AlertCache, Rules, float, float], list[Candidate]]

#: The detectors of every pass, by their settings' name in Rules (`rules.anomaly.enabled`...);
#: budgets run one per configured budget (see evaluate).
DETECTORS: tuple[tuple[str, Detector], ...] = (
    ("anomaly", anomaly),
    ("anomaly", cost_per_call),  # alerts/since_change.py: cost per call since a deploy
    ("spike", spike),
    ("runaway", runaway),
    ("rates", rates),  # alerts/rate_rules.py: windows that adapt to volume
    ("new", newcomers),  # alerts/newcomers.py: new customers, users, features, models
    ("margin", margin),  # alerts/margin.py: month-to-date cost vs plan price ([plans])
)
