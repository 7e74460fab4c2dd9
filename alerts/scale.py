"""What makes one set of defaults work from a $0.50/h hobby app to a $5,000/h platform.

Three things change with scale, and each rule needs all three:

- **Dollar floors relative to the org.** A fixed "+$1 per window" floor is everything at $0.50/h
  and nothing at $5,000/h. Every rule's minimum change is the larger of an absolute floor (a cent
  or so: no page about fractions of a cent) and a share of the org's normal spend in a window of
  the same length (`org_rate`). The org's *average* rate over the baseline days, not the same
  hour's: at night the same-hour spend is near zero, and a page at 03:00 should be for an amount
  someone would act on at noon.
- **Counting noise, from each scope's own spread.** At a handful of requests per window, Poisson
  noise alone moves spend by ±100%, which a σ band from seven samples cannot see. A window's
  spend is a compound Poisson sum: its variance is Σ λ·E[c²] over the features in the scope, so
  a workload mixing $0.0001 classify calls with a few $0.08 uncached answers is as noisy as its
  expensive calls make it, not as its average call suggests. Each feature's per-call mean and
  spread (`cost_profiles`) come from its last week of hourly spend and counts; a change pages
  only when the scope's own counting noise makes it less likely than `NOISE_P` (`spend_tail`,
  exact at small counts: 2 uncached answers where 0.6 calls are expected is a 1-in-150 event,
  which a 3σ Gaussian calls significant).
- **Tests valid at small counts.** A rate rule on a low-volume scope uses an exact binomial tail
  (`binom_upper`, `binom_lower`) against the baseline rate instead of waiting for min_requests
  (and a cache-hit rate since a deploy a Bayes factor: alerts/rate_rules.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from llmtop.alerts.cache import AlertCache, file_key
from llmtop.store.alert_queries import rows_added_before, sliding_spend
from llmtop.store.reader import Reader

DAY = 86400.0
HOUR = 3600.0
#: A spend change pages only if the scope's counting noise makes it less likely than this. Per
#: scope and window: a pass every few seconds over a few dozen scopes is ~10^4 different windows a
#: day, so 1e-5 is well under one false page a week from counting noise alone.
NOISE_P = 1e-5
#: Request rates vary beyond Poisson (bursts, a busier day than the baseline's): the expected
#: number of calls is tested at this multiple.
RATE_DISPERSION = 1.25
#: A feature's per-call cost spread (CV²) before it has PROFILE_MIN_HOURS of history: CV 1, about
#: what a mix of cached and uncached calls shows. Measured spreads are never taken below MIN_CV2
#: (a week of lognormal prompt lengths is not a promise about the next one).
DEFAULT_CV2 = 1.0
MIN_CV2 = 0.1
PROFILE_MIN_HOURS = 12
#: The recent hours a cost profile leaves out, once the file has as many before them.
PROFILE_LAG = DAY


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


@dataclass
class Mix:
    """A window's expected calls and the first two moments of their spend, summed over the
    features in a scope: λ, Σ λ·E[c], Σ λ·E[c²]."""

    calls: float = 0.0
    mean: float = 0.0
    second: float = 0.0

    def add(self, calls: float, cost: float, cv2: float) -> None:
        self.calls += calls
        self.mean += calls * cost
        self.second += calls * cost * cost * (1.0 + cv2)


def cost_profiles(
    reader: Reader, cache: AlertCache, now: float, first: float, days: int
) -> dict[str, tuple[float, float]]:
    """feature -> (mean cost per call, CV² of the cost per call) over the last `days` days.

    Why hourly sums are enough: within an hour with n calls and spend S, (S - n·m)² / n has
    expectation Var(c) whatever n is, so the spread of single calls is measured from the hourly
    rollups (a few rows per hour) without reading a row; a mean that drifts over the week only
    makes the spread look wider (quieter alerts, never noisier). Cached per completed hour.

    Why the last day is left out once there are two: an incident's own hours would otherwise
    enter the profile an hour after they happen, and a feature's calls costing 16× (a model swap)
    widen its spread until its still-running incident looks like noise and resolves (2 hours in,
    on the alert-quality benchmark). The windowed baselines forget an incident after a day too.
    """
    end = math.floor((now - HOUR) / HOUR) * HOUR
    floor_start = math.ceil(first / HOUR) * HOUR
    if end - PROFILE_LAG - floor_start >= PROFILE_LAG:
        end -= PROFILE_LAG
    start = max(floor_start, end - days * DAY)
    if end - start < HOUR:
        return {}
    key = (*file_key(reader), "cost_profiles", end, start)
    hit = cache.history.get(key)
    if hit is not None and not rows_added_before(reader, hit[0], end):
        return {
            f: (m, hit[1].get(("v", f), DEFAULT_CV2)) for (k, f), m in hit[1].items() if k == "m"
        }
    top = reader.max_id()
    hours = int(round((end - start) / HOUR))
    ranges = [(h, start + h * HOUR, start + (h + 1) * HOUR) for h in range(hours)]
    per: dict[str, list[tuple[float, int]]] = {}
    for _idx, (feat,), spend, n in sliding_spend(reader, {}, "profile", ranges, ("feature",)):
        if feat is not None and n > 0:
            per.setdefault(feat, []).append((spend, n))
    sums: dict[tuple[str, str], float] = {}
    for feat, obs in per.items():
        n_all = sum(n for _, n in obs)
        m = sum(s for s, _ in obs) / n_all
        sums[("m", feat)] = m
        if len(obs) >= PROFILE_MIN_HOURS and m > 0:
            var = sum((s - n * m) ** 2 / n for s, n in obs) / (len(obs) - 1)
            sums[("v", feat)] = max(MIN_CV2, var / (m * m))
    cache.remember_history(key, top, sums)
    return {f: (m, sums.get(("v", f), DEFAULT_CV2)) for (k, f), m in sums.items() if k == "m"}


def gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) = P(Gamma(a, 1) > x)."""
    if x <= 0.0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:  # series for P(a, x)
        ap, term = a, 1.0 / a
        total = term
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if term < total * 1e-13:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300  # continued fraction for Q(a, x) (modified Lentz)
    b = x + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = d if abs(d) > tiny else tiny
        c = b + an / c
        c = c if abs(c) > tiny else tiny
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-13:
            break
    return min(1.0, math.exp(log_front) * h)


def spend_tail(mix: Mix, x: float) -> float:
    """P(spend >= x) when calls arrive as Poisson(λ · RATE_DISPERSION) and each costs a Gamma
    draw with the mix's mean and spread: exact at a handful of calls (where a Gaussian band
    calls 2 expensive calls out of 0.6 expected a 3σ event), Gaussian past a few hundred."""
    lam = mix.calls * RATE_DISPERSION
    if lam <= 0.0 or mix.mean <= 0.0:
        return 0.0 if x > 0.0 else 1.0
    m1 = mix.mean / mix.calls
    m2 = mix.second / mix.calls
    if x <= lam * m1:
        return 1.0
    if lam > 400.0:
        return 0.5 * math.erfc((x - lam * m1) / math.sqrt(2.0 * lam * m2))
    cv2 = max(m2 / (m1 * m1) - 1.0, 1e-3)
    k, theta = 1.0 / cv2, m1 * cv2
    total, log_p = 0.0, -lam
    for n in range(1, int(lam + 12.0 * math.sqrt(lam) + 30.0)):
        log_p += math.log(lam) - math.log(n)
        total += math.exp(log_p) * gamma_q(n * k, x / theta)
    return min(1.0, total)


def gamma_tail(mean: float, var: float, x: float) -> float:
    """P(X >= x) for a Gamma variable with this mean and variance."""
    if mean <= 0.0:
        return 0.0 if x > 0.0 else 1.0
    var = max(var, 1e-6 * mean * mean)
    return gamma_q(mean * mean / var, x * mean / var)


def spend_p(
    cur: float,
    cur_calls: dict[str | None, int],
    expected: dict[str | None, float],
    profiles: dict[str, tuple[float, float]],
    fallback: float,
) -> float:
    """How likely counting noise alone makes a window's spend `cur`, at the smaller of two
    tests (either is evidence):

    - unconditional: calls arriving at their expected rate per feature (`expected`: λ per
      feature, plus one pseudo-call over the baseline for a feature seen now, so a feature
      that is rare at this hour is not "impossible"), each costing its feature's profile;
    - given the calls that came: the same calls at their features' normal cost per call
      (`profiles`), so a prompt three times longer is seen in six calls, where spend alone
      cannot tell it from a busy quarter hour.

    `fallback`: the cost per call of a feature without a profile (the scope's baseline's)."""
    mix = Mix()
    given_mean = given_var = 0.0
    for feat in {*expected, *cur_calls}:
        m, cv2 = profiles.get(feat or "", (fallback, DEFAULT_CV2))
        if m <= 0.0:
            continue
        mix.add(expected.get(feat, 0.0), m, cv2)
        n = cur_calls.get(feat, 0)
        given_mean += n * m
        given_var += n * m * m * cv2
    return min(spend_tail(mix, cur), gamma_tail(given_mean, given_var, cur))


def poisson_lower(k: int, alpha: float) -> float:
    """The one-sided lower confidence bound of a Poisson mean, given k counts: the λ at which
    P(X >= k) = alpha (3 calls are consistent with a rate of 0.82 at 95%)."""
    if k <= 0:
        return 0.0
    lo, hi = 0.0, float(k)
    for _ in range(60):  # P(X >= k | λ) = P(Gamma(k) <= λ) rises with λ
        mid = (lo + hi) / 2.0
        if 1.0 - gamma_q(k, mid) < alpha:
            lo = mid
        else:
            hi = mid
    return lo


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
