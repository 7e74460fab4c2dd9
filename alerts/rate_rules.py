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

Registered in detectors.DETECTORS; detectors' types are imported in the function (detectors
imports this module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmtop.alerts.scale import binom_lower, binom_upper, rate_floor
from llmtop.store.alert_queries import Agg, aggregate
from llmtop.store.filters import format_window
from llmtop.store.reader import Reader

if TYPE_CHECKING:
    from llmtop.alerts.cache import AlertCache
    from llmtop.alerts.detectors import Candidate
    from llmtop.alerts.rules import Rules

#: Baseline cache-hit rate below which a drop is not judged (nothing to lose).
MIN_HIT_RATE = 0.1
#: Cache-eligible baseline calls a drop needs. Fewer than min_requests is enough: the test runs
#: against the baseline rate's lower 2σ bound, which a small baseline already lowers (15 hits in
#: 16 calls is tested as 82%), and a feature making 20 calls a day was otherwise never judged.
MIN_BASELINE = 10


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
    for idx, keys, agg in aggregate(reader, ranges, dims):
        targets = [("all", None)] if "all" in qr.group_by else []
        targets += [(d, v) for d, v in zip(dims, keys, strict=True) if v is not None]
        for t in targets:
            groups.setdefault(t, {}).setdefault(idx, Agg()).add(agg)
    out: list[Candidate] = []
    base = [(b0, now - ws[-1])] if span > 0 else []
    for (dim, val), by_idx in groups.items():
        b = by_idx.get(base_idx, Agg())
        lab = label(dim, val)
        fired: set[str] = set()
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
                            f"({normal}), {num_c} of {c.requests} requests"
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
                and b.eligible >= min(qr.min_requests, MIN_BASELINE)
            ):
                hc, hb = c.cached / c.eligible, b.cached / b.eligible
                drop = hb >= MIN_HIT_RATE and (hb - hc) / hb * 100.0 >= qr.cache_hit_drop_pct
                p0 = rate_floor(int(b.cached), int(b.eligible))
                if drop and binom_lower(int(c.cached), int(c.eligible), p0) <= qr.significance:
                    fired.add("cache_hit_drop")
                    out.append(
                        Candidate(
                            rule="cache_hit_drop",
                            severity="critical" if hc <= hb * 0.1 else "warning",
                            scope=scope_of(dim, val),
                            title=(
                                f"{lab} cache hit rate {hb * 100:.0f}% → {hc * 100:.0f}% over "
                                f"{format_window(w)} ({c.eligible} requests)"
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
