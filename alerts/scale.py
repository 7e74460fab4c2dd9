"""What makes one set of defaults work from a $0.50/h hobby app to a $5,000/h platform.

Three things change with scale, and each rule needs all three:

- **Dollar floors relative to the org.** A fixed "+$1 per window" floor is everything at $0.50/h
  and nothing at $5,000/h. Every rule's minimum change is the larger of an absolute floor (a cent
  or so: no page about fractions of a cent) and a share of the org's normal spend in a window of
  the same length (`org_rate`). The org's *average* rate over the baseline days, not the same
  hour's: at night the same-hour spend is near zero, and a page at 03:00 should be for an amount
  someone would act on at noon.
- **Counting noise.** At a handful of requests per window, Poisson noise alone moves spend by
  ±100%, which a σ band from seven samples cannot see. `noise_floor` is the part of a change that
  request-count noise can explain (compound Poisson: spend's standard deviation is at least
  mean cost per request × √requests).
- **Tests valid at small counts.** A rate rule on a low-volume scope uses an exact binomial tail
  (`binom_upper`, `binom_lower`) against the baseline rate instead of waiting for min_requests.
"""

from __future__ import annotations

import math
from datetime import datetime

from llmtop.alerts.cache import AlertCache
from llmtop.store.alert_queries import sliding_spend
from llmtop.store.reader import Reader

DAY = 86400.0
#: Each extra σ of counting noise a change must clear (as the spend band's sigma).
NOISE_Z = 3.0


def org_rate(reader: Reader, cache: AlertCache, now: float, first: float, days: int) -> float:
    """The org's normal spend per second: its average over the last `days` days, up to an hour
    before `now` (so an incident does not raise its own floor). 0 with under a day of data:
    the absolute floors alone then apply.

    Read through a sliding tracker on the hourly rollups (cube `all`): a few rows per pass.
    """
    end = math.floor((now - 3600.0) / 3600.0) * 3600.0
    start = max(first, end - days * DAY)
    if end - start < DAY:
        return 0.0
    total = 0.0
    for _idx, _keys, spend, _n in sliding_spend(
        reader, cache.trackers, "org_rate", [(0, start, end)], ()
    ):
        total += spend
    return total / (end - start)


def floor_usd(absolute: float, share_pct: float, rate: float, window: float) -> float:
    """max(absolute floor, share of the org's normal spend in a window this long)."""
    return max(absolute, share_pct / 100.0 * rate * window)


def noise_floor(
    mean_spend: float,
    mean_requests: float,
    z: float = NOISE_Z,
    *,
    current: tuple[float, int] = (0.0, 0),
) -> float:
    """The spend change counting noise alone reaches at z σ. Compound Poisson: sd = √(λ·E[c²]),
    and request costs within a scope vary about as much as their mean (cached and uncached
    calls, long and short prompts: CV ≈ 1), so sd ≈ cost per request × √(2λ). At least one
    expected request is counted: where under one call is expected, a few calls are still noise.
    With no baseline requests at all, the cost per request is the current window's."""
    if mean_requests > 0 and mean_spend > 0:
        per_request = mean_spend / mean_requests
    elif current[1] > 0:
        per_request = current[0] / current[1]
    else:
        return 0.0
    return z * per_request * math.sqrt(2.0 * max(mean_requests, 1.0))


def rate_floor(hits: int, n: int) -> float:
    """A baseline rate's lower 2σ bound: the rate a small-count test is run against (a baseline
    of 40 requests that hit the cache 89% of the time may well be an 80% scope)."""
    if n <= 0:
        return 0.0
    p = hits / n
    return max(0.0, p - 2.0 * math.sqrt(p * (1 - p) / n))


def _pmf(i: int, n: int, p: float) -> float:
    """Binomial P(X = i), in log space: math.comb(n, i) overflows a float past n ≈ 1,000."""
    return math.exp(
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * math.log(p)
        + (n - i) * math.log1p(-p)
    )


def binom_upper(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how surprising k failures in n are at rate p."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return min(1.0, sum(_pmf(i, n, p) for i in range(k, n + 1)))


def binom_lower(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p): how surprising only k cache hits in n are at rate p."""
    if k >= n or p <= 0.0:
        return 1.0
    if k < 0 or p >= 1.0:
        return 0.0
    return min(1.0, sum(_pmf(i, n, p) for i in range(0, k + 1)))


def is_weekend(t: float) -> bool:
    return datetime.fromtimestamp(t).weekday() >= 5


def like_days(now: float, days: list[int], min_samples: int) -> list[int]:
    """The previous days of the same kind as today (weekday or weekend, local time), when there
    are at least `min_samples` of them; else all of them. A Monday is compared with weekdays,
    not with the quiet weekend before it."""
    kind = is_weekend(now)
    same = [d for d in days if is_weekend(now - d * DAY) == kind]
    return same if len(same) >= min_samples else days
