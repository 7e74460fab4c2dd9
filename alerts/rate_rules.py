"""The rate rules: error, retry and fallback rates above a threshold, and cache-hit-rate drops,
with windows that adapt to volume.

Why adaptive: a feature making a few expensive calls a minute never holds `min_requests` in a
15-minute window, so a fixed window left it unwatched however badly its prompt cache broke. Each
scope is judged on the shortest window, doubling up to `max_window`, that holds `min_requests`;
on every window a rate fires only when an exact binomial test against the baseline rate is
significant (`significance`), which stays valid at a handful of requests: 0 cache hits in 5
requests where 80% hit is a 1-in-3,000 event, 1 error in 3 requests is not news. The baseline
rate tested against is its lower 2σ bound (a small baseline's rate is itself uncertain), and an
error-type rate never below half its threshold. Shorter
windows are tried first: an incident eight minutes old is diluted by every older minute.

Cache-hit drops are also judged **since a change**. A route or prompt deploy that kills a
feature's prompt-cache hits starts at a known moment: the first call carrying a route_version,
prompt_version or model the scope had not used in the previous week. The calls since then are
tested alone, undiluted by the hits before it: 0 hits in 3 calls where 78% hit pages a feature
making 4 calls an hour within the hour, and one making 40 within 5 minutes (the 15-minute window
needed 10-12: its first minutes were still the old version's hits). It is one hypothesis per
deploy, tested after each of its calls, so it runs at `change_significance` (2%) rather than the
window scan's 0.1%, which is spent over every window of every pass. Its statistic is a Bayes
factor (`change_p`), so however often it looks, a deploy that changed nothing pages less than 2%
of the time (about 1% on the simulated deploys of tests/test_alert_quality.py). The baseline
rate is the scope's own counts, as a Beta posterior: from the last 24 hours or, when those hold
fewer than CACHE_BASELINE cache-eligible calls, the week's hourly rollups (a feature making 20
calls a day was tested against a rate its 20 calls could only bound to 41-71%; the window scan
uses the same baseline). A change must be MIN_CHANGE_AGE old: the calls in the seconds after a
deploy miss while the new prefix is written to the cache.

Registered in detectors.DETECTORS; detectors' types are imported in the function (detectors
imports this module).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from llmtop.alerts.scale import binom_lower, binom_upper, rate_floor
from llmtop.alerts.since_change import (
    MIN_CHANGE_AGE,
    MIN_CHANGE_CALLS,
    Changes,
    changes,
    since,
)
from llmtop.store.alert_queries import Agg, sliding_sums
from llmtop.store.filters import format_window
from llmtop.store.reader import Reader
from llmtop.store.rollup import F_CACHED, F_ELIGIBLE, F_FAIL, F_FALLBACK, F_RETRY

if TYPE_CHECKING:
    from llmtop.alerts.cache import AlertCache
    from llmtop.alerts.detectors import Candidate
    from llmtop.alerts.rules import RatesRule, Rules

#: Baseline cache-hit rate below which a drop is not judged (nothing to lose).
MIN_HIT_RATE = 0.1
#: Cache-eligible baseline calls a drop needs. Fewer than min_requests is enough: the test runs
#: against the baseline rate's lower 2σ bound, which a small baseline already lowers (15 hits in
#: 16 calls is tested as 82%), and a feature making 20 calls a day was otherwise never judged.
MIN_BASELINE = 10
#: Cache-eligible calls the 24-hour baseline must hold, else the week's rollups are used.
CACHE_BASELINE = 100
#: The rollup sums a rate reads (with the count of calls).
FIELDS = (F_FAIL, F_RETRY, F_FALLBACK, F_ELIGIBLE, F_CACHED)


def windows(w: float, max_window: float) -> list[float]:
    out = [w]
    while out[-1] * 2 <= max_window:
        out.append(out[-1] * 2)
    if out[-1] < max_window:
        out.append(max_window)
    return out


def rates(
    reader: Reader, cache: AlertCache, rules: Rules, now: float, first: float
) -> list[Candidate]:
    from llmtop.alerts.detectors import Candidate, label, scope_of

    qr = rules.rates
    ws = windows(qr.window, qr.max_window)
    b0 = max(first, now - ws[-1] - qr.baseline)
    span = now - ws[-1] - b0
    # Index k < len(ws): the window ws[k] back from now; BASE: the baseline before the longest.
    base_idx = len(ws)
    ranges = [(k, now - w, now) for k, w in enumerate(ws)]
    if span > 0:
        ranges.append((base_idx, b0, now - ws[-1]))
    dims = [d for d in qr.group_by if d != "all"]
    groups: dict[tuple[str, str | None], dict[int, Agg]] = {}
    # From sliding trackers kept across passes (the rollups, then only the rows that moved): the
    # 24-hour baseline was a scan of its raw rows every pass, 0.7 s of each at 10M rows.
    for idx, keys, n, sums in sliding_sums(reader, cache.trackers, "rates", ranges, dims, FIELDS):
        fail, retry, fallback, elig, hits = (int(round(x)) for x in sums)
        agg = Agg(
            requests=n,
            failures=fail,
            retries=retry,
            fallbacks=fallback,
            eligible=elig,
            cached=hits,
        )
        targets = [("all", None)] if "all" in qr.group_by else []
        targets += [(d, v) for d, v in zip(dims, keys, strict=True) if v is not None]
        for t in targets:
            groups.setdefault(t, {}).setdefault(idx, Agg()).add(agg)
    out: list[Candidate] = []
    base = [(b0, now - ws[-1])] if span > 0 else []
    ch = changes(reader, cache, dims, now, first)
    for (dim, val), by_idx in groups.items():
        b = by_idx.get(base_idx, Agg())
        lab = label(dim, val)
        fired: set[str] = set()
        # The cache-hit baseline: the last 24 hours, or the week when they hold too few calls.
        hits_b, elig_b = int(b.cached), int(b.eligible)
        week = ch.week.get((dim, val or ""))
        if elig_b < CACHE_BASELINE and week is not None and week.eligible > elig_b:
            elig_b, hits_b = week.eligible, week.cached
        hb = hits_b / elig_b if elig_b else 0.0
        if dim != "all" and hb >= MIN_HIT_RATE and elig_b >= MIN_BASELINE:
            hit = since_change(reader, qr, (dim, val or ""), ch, hits_b, elig_b, now)
            if hit is not None:
                t0, tag, tv, e, h = hit
                fired.add("cache_hit_drop")
                hc = h / e
                age = ws[-1] if t0 is None else now - t0
                out.append(
                    Candidate(
                        rule="cache_hit_drop",
                        severity="critical" if hc <= hb * 0.1 else "warning",
                        scope=scope_of(dim, val),
                        title=(
                            f"{lab} cache hit rate {hb * 100:.0f}% → {hc * 100:.0f}% since "
                            f"{tag} {tv} ({h} of {e} requests)"
                        ),
                        cur=(now - age, now),
                        base=base,
                        scale=age / span if span > 0 else 0.0,
                        delta=(hb - hc) * e,
                        since=t0,
                    )
                )
        for k, w in enumerate(ws):
            c = by_idx.get(k)
            if c is None or not c.requests:
                continue
            enough = c.requests >= qr.min_requests
            scale = w / span if span > 0 else 0.0
            for rule, num_c, num_b, limit in (
                ("error_rate", c.failures, b.failures, qr.error_rate_pct),
                ("retry_rate", c.retries, b.retries, qr.retry_rate_pct),
                ("fallback_rate", c.fallbacks, b.fallbacks, qr.fallback_rate_pct),
            ):
                if rule in fired:
                    continue
                rc = num_c / c.requests
                rb = num_b / b.requests if b.requests else 0.0
                if rc * 100.0 < limit or rc < 2.0 * rb:
                    continue
                # Null: the normal rate, and never below half the threshold (a scope that never
                # fails would otherwise page on its first error).
                p0 = max(rb, limit / 200.0)
                if binom_upper(int(num_c), int(c.requests), p0) > qr.significance:
                    continue
                fired.add(rule)
                what = rule.split("_")[0]
                normal = f"normal {rb * 100:.1f}%" if b.requests else "no baseline yet"
                out.append(
                    Candidate(
                        rule=rule,
                        severity="critical"
                        if rc * 100.0 >= limit * qr.critical_multiple
                        else "warning",
                        scope=scope_of(dim, val),
                        title=(
                            f"{lab} {what} rate {rc * 100:.0f}% over {format_window(w)} "
                            f"({normal}), {int(round(num_c))} of {int(round(c.requests))} requests"
                        ),
                        cur=(now - w, now),
                        base=base,
                        scale=scale,
                        delta=num_c - rb * c.requests,
                    )
                )
            # Per group only: an org-wide hit rate moves whenever the traffic mix does (a nightly
            # batch job without prompt caching "drops" it every night).
            if (
                dim != "all"
                and "cache_hit_drop" not in fired
                and c.eligible
                and elig_b >= min(qr.min_requests, MIN_BASELINE)
            ):
                hc = c.cached / c.eligible
                drop = hb >= MIN_HIT_RATE and (hb - hc) / hb * 100.0 >= qr.cache_hit_drop_pct
                p0 = rate_floor(hits_b, elig_b)
                if drop and binom_lower(int(c.cached), int(c.eligible), p0) <= qr.significance:
                    fired.add("cache_hit_drop")
                    out.append(
                        Candidate(
                            rule="cache_hit_drop",
                            severity="critical" if hc <= hb * 0.1 else "warning",
                            scope=scope_of(dim, val),
                            title=(
                                f"{lab} cache hit rate {hb * 100:.0f}% → {hc * 100:.0f}% over "
                                f"{format_window(w)} ({int(round(c.eligible))} requests)"
                            ),
                            cur=(now - w, now),
                            base=base,
                            scale=scale,
                            delta=(hb - hc) * c.eligible,
                        )
                    )
            if enough and c.eligible >= qr.min_requests:
                break  # longer windows only dilute what this one holds
    return out


def change_p(hits: int, calls: int, hits_b: int, elig_b: int, drop_pct: float) -> float:
    """The since-change test: 1 / the Bayes factor of "the cache stopped working" against "the
    rate is the baseline's" (its posterior given the baseline's own counts). Stopped working:
    equally likely no hits at all (a route to a deployment without the cache, a prefix that
    changes every call: the way caches break) or any rate below the drop (uniform). 1.0 when the
    calls are too few or the observed drop is smaller than drop_pct.

    Why a Bayes factor and not a p-value: the test is repeated after every call of the deploy,
    and repeated p-values at 2% paged 5% of simulated deploys of a 50%-hit feature that changed
    nothing. The likelihood ratio is a martingale under no change, so (Ville's inequality) the
    chance it ever reaches 1/α over all the looks is at most α."""
    if calls < MIN_CHANGE_CALLS or elig_b <= 0 or hits_b <= 0:
        return 1.0
    hb = hits_b / elig_b
    if (hb - hits / calls) / hb * 100.0 < drop_pct:
        return 1.0
    miss, miss_b = calls - hits, elig_b - hits_b
    cap = hb * (1.0 - drop_pct / 100.0)  # the partial drop: a rate uniform in [0, cap]
    partial = (
        math.exp(_log_beta(hits + 1, miss + 1)) * binom_upper(hits + 1, calls + 1, cap) / cap
        if cap > 0.0
        else 0.0  # cache_hit_drop_pct = 100: only a total loss counts
    )
    log_alt = math.log(0.5 * (hits == 0) + 0.5 * partial)
    log_null = _log_beta(hits_b + 1 + hits, miss_b + 1 + miss) - _log_beta(hits_b + 1, miss_b + 1)
    return min(1.0, math.exp(log_null - log_alt))


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def since_change(
    reader: Reader,
    qr: RatesRule,
    scope: tuple[str, str],
    ch: Changes,
    hits_b: int,
    elig_b: int,
    now: float,
) -> tuple[float | None, str, str, int, int] | None:
    """The most significant cache-hit drop among the scope's changes: (when the change began,
    tag, value, calls, hits), or None. See the module docstring."""
    best: tuple[float, str, str, int, int] | None = None
    for (tag, tv), g in ch.new.get(scope, {}).items():
        e, h = g.eligible, g.cached
        p = change_p(h, e, hits_b, elig_b, qr.cache_hit_drop_pct)
        if p <= qr.change_significance and (best is None or p < best[0]):
            best = (p, tag, tv, e, h)
    if best is None:
        return None
    p, tag, tv, e, h = best
    t0 = since(reader, scope, tag, tv, now)
    if t0 is not None and now - t0 < MIN_CHANGE_AGE:
        return None
    return t0, tag, tv, e, h
