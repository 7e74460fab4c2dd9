"""Alert quality at the smallest traffic scale (0.1×: about $1/h), one fixed seed per family:
each incident family of benchmarks/alert_quality.py pages with the right top cause and owner,
and the tiny-workload blip and the quiet Monday do not page.

The same generator, scenarios and judging as the benchmark (imported from it), on its cheapest
cell: the full table (three scales, several seeds, 1M rows per seed at 10×) stays in the
benchmark. The history is built once per module through the real Writer.
"""

from __future__ import annotations

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
