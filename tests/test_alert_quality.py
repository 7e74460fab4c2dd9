"""Alert quality at the smallest traffic scale (0.1×: about $1/h), one fixed seed per family:
each incident family of benchmarks/alert_quality.py pages with the right top cause and owner,
and the tiny-workload blip and the quiet Monday do not page.

The same generator, scenarios and judging as the benchmark (imported from it), on its cheapest
cell: the full table (three scales, several seeds, 1M rows per seed at 10×) stays in the
benchmark. The history is built once per module through the real Writer.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import alert_quality as aq  # noqa: E402

SCALE = 0.1
SEED = 3
INCIDENTS = [f for f in aq.FAMILIES if not f.quiet]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("aq")
    aq.base_db(SCALE, SEED, d)
    return d


@pytest.mark.parametrize("family", INCIDENTS, ids=[f.name for f in aq.FAMILIES if not f.quiet])
def test_incident_pages_with_its_cause_and_owner(
    family: aq.Family, cache_dir: Path, tmp_path: Path
) -> None:
    r = aq.run_one(family, SCALE, SEED, cache_dir, tmp_path)
    first = r.first.text() if r.first else None
    assert r.detected, [p.text() for p in r.false_pages]
    assert r.cause_ok, first
    assert r.owner_ok, (first, r.first.alert.owner if r.first else None)
    assert not r.false_pages, [p.text() for p in r.false_pages]


def test_tiny_workload_blip_stays_quiet(cache_dir: Path, tmp_path: Path) -> None:
    r = aq.run_one(aq.FAMILY["tiny-workload blip"], SCALE, SEED, cache_dir, tmp_path)
    assert r.false_pages == []


def test_quiet_monday_never_pages(cache_dir: Path, tmp_path: Path) -> None:
    """Every 10 minutes of a Monday after a week of history: the nightly batch job, the weekly
    digest, the morning ramp, new small tenants and users; no page."""
    r = aq.run_one(aq.FAMILY["quiet week"], SCALE, SEED, cache_dir, tmp_path)
    assert [p.text() for p in r.false_pages] == []


def test_the_judge_counts_an_unrelated_page_as_false() -> None:
    """The benchmark's scoring itself: a page about something else is a false page, a related
    one with the wrong cause is detected but not correct."""
    from llmtop.alerts.model import Alert

    fam = aq.FAMILY["prompt bloat"]
    t0 = aq.incident_start(SEED)

    def alert(scope: str, cause: str, owner: str) -> Alert:
        return Alert(
            fingerprint=f"anomaly|{scope}",
            rule="anomaly",
            severity="warning",
            scope=scope,
            title=f"{scope} spend up",
            cause=cause,
            causes=((cause, 1.0),),
            owner=owner,
            since=t0,
            drill=(scope, "model"),
        )

    pages = [
        aq.Page(t0 + 60, alert("feature=kb-answer", "cache hit rate 80% → 0%", "docs")),
        aq.Page(t0 + 120, alert("feature=support-summarize", "p90 input tokens", "support")),
    ]
    r = aq.judge(fam, SCALE, SEED, pages)
    assert r.detected and r.minutes == 2.0 and r.owner_ok
    assert not r.cause_ok  # the deploy (prompt_version v5) was the cause to name
    assert [p.alert.scope for p in r.false_pages] == ["feature=kb-answer"]


def test_binomial_tails_hold_at_small_and_large_counts() -> None:
    """The rate rules' test on a busy scope (thousands of calls in a window): math.comb-based
    terms overflowed a float there and crashed the pass."""
    from llmtop.alerts.scale import binom_lower, binom_upper

    assert binom_lower(0, 5, 0.8) == pytest.approx(0.2**5)
    assert binom_upper(1, 3, 0.05) == pytest.approx(1 - 0.95**3)
    assert binom_upper(350, 5000, 0.05) < 1e-6  # 7% where 5% is normal, 5,000 calls
    assert 1e-4 < binom_upper(300, 5000, 0.05) < 1e-3  # 3.2σ
    assert binom_upper(260, 5000, 0.05) > 0.1
    assert binom_lower(3500, 5000, 0.8) < 1e-6
    assert binom_upper(0, 10, 0.3) == 1.0 and binom_lower(10, 10, 0.3) == 1.0


def test_spend_tail_is_the_exact_compound_poisson_tail() -> None:
    """At CV 1 the per-call cost is exponential, and P(S >= x) has a closed form:
    sum over n of Poisson(n; λ) · P(Poisson(x/m) <= n - 1). The engine's tail (Gamma costs,
    incomplete gamma function) must agree with it at a handful of calls, where a Gaussian does
    not."""
    import math

    from llmtop.alerts.scale import RATE_DISPERSION, Mix, spend_tail

    def exact(lam: float, m: float, x: float) -> float:
        total = 0.0
        for n in range(1, 200):
            pn = math.exp(-lam + n * math.log(lam) - math.lgamma(n + 1))
            y = x / m
            total += pn * sum(math.exp(-y + j * math.log(y) - math.lgamma(j + 1)) for j in range(n))
        return total

    for lam, x in ((0.6, 0.16), (0.6, 0.3), (6.0, 0.17), (40.0, 1.6)):
        mix = Mix()
        mix.add(lam / RATE_DISPERSION, 0.026, 1.0)
        assert spend_tail(mix, x) == pytest.approx(exact(lam, 0.026, x), rel=1e-6)


def test_counting_noise_is_the_scopes_own() -> None:
    """Two uncached answers ($0.08 each) where 0.6 calls are expected in a quarter hour of a
    workload made mostly of $0.0001 calls: its average call's noise says ~40σ, its own
    spread says 1 in 100. Six calls of a steady-cost feature at 2.7× their cost are news even
    though their spend alone is within a busy quarter hour's; at 1.2× they are not."""
    from llmtop.alerts.scale import NOISE_P, spend_p

    profiles = {"classify": (0.0001, 0.1), "kb-answer": (0.026, 1.04), "summ": (0.0095, 0.1)}
    expected = {"classify": 60.0, "kb-answer": 0.6}
    p = spend_p(0.16 + 0.006, {"classify": 60, "kb-answer": 2}, expected, profiles, 0.0)
    assert 1e-3 < p < 0.05
    assert spend_p(6 * 0.0255, {"summ": 6}, {"summ": 6.0}, profiles, 0.0) < NOISE_P
    assert spend_p(6 * 0.0095 * 1.2, {"summ": 6}, {"summ": 6.0}, profiles, 0.0) > 0.01


def test_poisson_lower_bound() -> None:
    """The new-entity rule's share is taken at this bound: 3 calls are consistent with a rate
    of 0.82 (χ² quantile: 0.5 · χ²(0.05; 6) = 0.8177)."""
    from llmtop.alerts.scale import poisson_lower

    assert poisson_lower(3, 0.05) == pytest.approx(0.8177, abs=1e-3)
    assert poisson_lower(1, 0.05) == pytest.approx(-math.log(0.95), abs=1e-4)
    assert poisson_lower(0, 0.05) == 0.0
