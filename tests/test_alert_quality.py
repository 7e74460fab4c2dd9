"""Alert quality at the smallest traffic scale (0.1×: about $1/h), one fixed seed per family:
each incident family of benchmarks/alert_quality.py pages with the right top cause and owner,
and the tiny-workload blip and the quiet Monday do not page.

The same generator, scenarios and judging as the benchmark (imported from it), on its cheapest
cell: the full table (three scales, several seeds, 1M rows per seed at 10×) stays in the
benchmark. The history is built once per module through the real Writer.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import alert_quality as aq  # noqa: E402

SCALE = 0.1
SEED = 3
INCIDENTS = [f for f in aq.FAMILIES if not f.quiet]
#: The deploys page through the since-a-change rules at this scale (the windowed rules page
#: later, or not within the hour): the first page's title.
FIRST_TITLE = {
    "prompt bloat": r"cost per call .* since prompt_version v5",
    "route change kills cache hits": r"cache hit rate .* since route_version r13",
    "model swap": r"cost per call .* since model gpt-4o ",
}


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
    if family.name in FIRST_TITLE:
        assert r.first is not None and re.search(FIRST_TITLE[family.name], r.first.alert.title), (
            r.first.alert.title if r.first else None
        )
        # Since the deploy's first call, known to the rule, not guessed from the spend.
        t0 = aq.incident_start(SEED)
        assert r.first.alert.since == pytest.approx(t0 + 60 * r.affected[0], abs=1e-6)


def test_tiny_workload_blip_stays_quiet(cache_dir: Path, tmp_path: Path) -> None:
    r = aq.run_one(aq.FAMILY["tiny-workload blip"], SCALE, SEED, cache_dir, tmp_path)
    assert r.false_pages == []


def test_a_deploy_that_changes_nothing_stays_quiet(cache_dir: Path, tmp_path: Path) -> None:
    """A new route version on kb-answer and prompt version on chat-assist (the prompt-cache
    users), hits as before: the cache-hit test since a change sees them and must not page."""
    r = aq.run_one(aq.FAMILY["benign deploy"], SCALE, SEED, cache_dir, tmp_path)
    assert [p.text() for p in r.false_pages] == []


def test_a_deploy_that_triples_a_cheap_features_cost_stays_quiet(
    cache_dir: Path, tmp_path: Path
) -> None:
    """classify ($0.0001 a call, under 1% of the org's spend) with a prompt three times longer
    from a new prompt version: its calls since the change cost 3x their usual, far beyond their
    spread, but +$0.004/h is under the anomaly floor (5% of the org's hourly spend): no page."""
    from dataclasses import replace

    def bloat_classify(rows: list[aq.Row], t0: float, scale: float, seed: int) -> list[aq.Row]:
        return [
            replace(r, inp=r.inp * 3, prompt_version="v5") if r.feature == "classify" else r
            for r in rows
        ]

    fam = aq.Family("cheap deploy", bloat_classify, r"classify|v5", "", None, 45.0, quiet=True)
    r = aq.run_one(fam, SCALE, SEED, cache_dir, tmp_path)
    assert [p.text() for p in r.false_pages] == []


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


def test_the_since_change_bayes_factor_is_its_integrals() -> None:
    """change_p against the integrals it stands for, on a grid: the alternative (no hits at all,
    or a rate uniform below half the baseline's, equally likely) over the null (the baseline's
    Beta posterior), for a collapse and for a partial drop."""
    from llmtop.alerts.rate_rules import change_p

    def brute(k: int, m: int, hits_b: int, n_b: int) -> float:
        grid = [(i + 0.5) / 40_000 for i in range(40_000)]
        seq = [p**k * (1 - p) ** (m - k) for p in grid]
        post = [p**hits_b * (1 - p) ** (n_b - hits_b) for p in grid]
        null = sum(a * b for a, b in zip(post, seq, strict=True)) / sum(post)
        cap = hits_b / n_b / 2
        below = [s for p, s in zip(grid, seq, strict=True) if p < cap]
        alt = 0.5 * (k == 0) + 0.5 * sum(below) / len(below)
        return null / alt

    for case in ((0, 3, 215, 276), (0, 5, 12, 16), (1, 9, 150, 300)):
        assert change_p(*case, 50.0) == pytest.approx(brute(*case), rel=2e-3), case
    assert change_p(0, 3, 215, 276, 50.0) < 0.02 < change_p(0, 3, 12, 16, 50.0)
    # cache_hit_drop_pct = 100 (a valid setting): only a total loss is the alternative.
    assert 0 < change_p(0, 3, 215, 276, 100.0) < 1 == change_p(1, 3, 215, 276, 100.0)


def test_a_cache_hit_drop_since_a_change_pages_rarely_on_a_deploy_that_changed_nothing() -> None:
    """The since-change test runs on every call of a deploy, and its Bayes factor keeps the
    chance of ever paging on a deploy that changed nothing under change_significance however
    often it looks (Ville's inequality). Simulated deploys that keep the old hit rate (80%, 50%;
    baselines of 20 to 3,000 calls; the first 30 calls after the deploy) stay under it (repeated
    p-values at the same level paged 5% of the 50% ones); a deploy that kills the cache of a
    feature hitting 78% of the time pages on its third call."""
    import numpy as np
    from llmtop.alerts.rate_rules import change_p
    from llmtop.alerts.rules import Rules

    qr = Rules().rates
    rng = np.random.default_rng(17)
    for p, n_base in ((0.8, 20), (0.8, 290), (0.8, 3000), (0.5, 600)):
        fired, trials = 0, 1500
        for _ in range(trials):
            hits_b = int(rng.binomial(n_base, p))
            calls = rng.random(30) < p
            hits = np.cumsum(calls)
            if any(
                change_p(int(hits[m - 1]), m, hits_b, n_base, qr.cache_hit_drop_pct)
                <= qr.change_significance
                for m in range(1, 31)
            ):
                fired += 1
        # The level, plus three standard errors of the simulation.
        a = qr.change_significance
        limit = a + 3 * math.sqrt(a * (1 - a) / trials)
        assert fired / trials <= limit, (p, n_base, fired / trials)
    assert change_p(0, 3, 215, 276, qr.cache_hit_drop_pct) <= qr.change_significance
    assert change_p(0, 2, 228, 290, qr.cache_hit_drop_pct) == 1.0  # too few to judge
    assert change_p(2, 3, 228, 290, qr.cache_hit_drop_pct) == 1.0  # not a 50% drop


def test_change_significance_is_a_rules_key(tmp_path: Path) -> None:
    """`[rates] change_significance` reads from the rules file; a level above 0.5 is one precise
    line, not a traceback."""
    from llmtop.alerts.rules import RulesError, load_rules

    p = tmp_path / "llmtop-rules.toml"
    p.write_text("[rates]\nchange_significance = 0.005\n")
    assert load_rules(p).rates.change_significance == 0.005
    p.write_text("[rates]\n\nchange_significance = 0.7\n")
    with pytest.raises(RulesError) as exc:
        load_rules(p)
    assert str(exc.value).startswith(f"{p}:3: rates.change_significance: "), str(exc.value)


def test_sliding_sums_agree_with_the_rows(cache_dir: Path) -> None:
    """The since-a-change reads (a week from the hourly rollups, then only the rows that moved)
    give the same cache-eligible calls, hits and spend per feature and route version as a scan
    of the rows, cold and after sliding."""
    from llmtop.store.alert_queries import aggregate, sliding_sums
    from llmtop.store.reader import Reader
    from llmtop.store.rollup import F_CACHED, F_ELIGIBLE, F_SPEND

    reader = Reader(aq.base_db(SCALE, SEED, cache_dir), readonly=True)
    trackers: dict = {}
    dims = ("feature", "route_version")
    try:
        for step in (0.0, 10.0, 250.0):
            end = aq.TEST_DAY + 9 * 3600 + 1234.5 + step
            ranges = [(0, end - 7200, end), (1, end - 7200 - 6 * 86400, end - 7200)]
            got = {
                (i, k): (n, round(e), round(h), s)
                for i, k, n, (e, h, s) in sliding_sums(
                    reader, trackers, "t", ranges, dims, (F_ELIGIBLE, F_CACHED, F_SPEND)
                )
            }
            want = {
                (i, k): (a.requests, a.eligible, a.cached, a.spend)
                for i, k, a in aggregate(reader, ranges, dims)
            }
            assert got.keys() == want.keys() and len(got) > 10
            for key, (n, e, h, s) in want.items():
                assert got[key][:3] == (n, e, h), key
                assert got[key][3] == pytest.approx(s, rel=1e-9, abs=1e-12), key
    finally:
        reader.close()


@pytest.mark.parametrize("dims", [("feature",), ("customer", "user"), ()])
def test_rate_and_spend_trackers_agree_with_the_rows(cache_dir: Path, dims: tuple) -> None:
    """The rate rules' counts (failures, retries, fallbacks, cache-eligible calls and hits) and
    the spike and runaway rules' spend read through trackers kept across passes equal a scan of
    the rows, cold and after sliding; with the edges trimmed as the alert reads trim them."""
    from llmtop.alerts.rate_rules import FIELDS
    from llmtop.store.alert_queries import aggregate, sliding_spend, sliding_sums
    from llmtop.store.reader import Reader

    reader = Reader(aq.base_db(SCALE, SEED, cache_dir), readonly=True)
    trackers: dict = {}
    try:
        for step in (0.0, 10.0, 250.0, 3700.0):
            end = aq.TEST_DAY + 9 * 3600 + 1234.5 + step
            ranges = [
                (0, end - 900, end),
                (1, end - 7200, end),
                (2, end - 86400 - 7200, end - 7200),
            ]
            rates = {
                (i, k): (n, *(round(x) for x in sums))
                for i, k, n, sums in sliding_sums(reader, trackers, "r", ranges, dims, FIELDS)
            }
            spend = {
                (i, k): (n, s) for i, k, s, n in sliding_spend(reader, trackers, "s", ranges, dims)
            }
            want = {(i, k): a for i, k, a in aggregate(reader, ranges, dims)}
            assert rates.keys() == want.keys() == spend.keys() and len(want) >= 3
            for key, a in want.items():
                counts = (a.requests, a.failures, a.retries, a.fallbacks, a.eligible, a.cached)
                assert rates[key] == counts, key
                assert spend[key][0] == a.requests, key
                assert spend[key][1] == pytest.approx(a.spend, rel=1e-9, abs=1e-12), key
    finally:
        reader.close()


def test_a_new_entitys_cause_reads_only_the_history_that_can_hold_its_rows(
    cache_dir: Path, tmp_path: Path
) -> None:
    """The new-entity rule hands the cause analysis a baseline from the last whole hour only
    (the entity has no rows before it: that is what made it new), scaled over the whole
    history: the analysis must be the one a read of the whole history gives."""
    from llmtop.alerts.cache import AlertCache
    from llmtop.alerts.explain import explain
    from llmtop.alerts.newcomers import newcomers
    from llmtop.alerts.rules import Rules
    from llmtop.store.alert_queries import AGG_COLUMNS, first_row_at
    from llmtop.store.reader import Reader

    fam = aq.FAMILY["new customer"]
    db, _ = aq.scenario_db(aq.base_db(SCALE, SEED, cache_dir), fam, SCALE, SEED, tmp_path / "n.db")
    reader = Reader(db, readonly=True)
    rules, cache, seen = Rules(), AlertCache(), 0
    try:
        first = first_row_at(reader)
        assert first is not None
        for k in range(2, 13):
            now = aq.incident_start(SEED) + 300.0 * k
            for c in newcomers(reader, cache, rules, now, first):
                (a, b), w = c.base[0], c.cur[1] - c.cur[0]
                whole = [(c.cur[0] - w / c.scale, c.cur[0])]
                assert b == c.cur[0] and whole[0][0] < a - 86400  # the read is shorter by days
                got = explain(reader, rules, c.scope, c.cur, c.base, c.scale, extra=c.extra)
                want = explain(reader, rules, c.scope, c.cur, whole, c.scale, extra=c.extra)
                assert [e.text for e in got.causes] == [e.text for e in want.causes]
                assert (got.owner, got.drill_dim) == (want.owner, want.drill_dim)
                # Its drill-down splits the entity by another tag ("customer=X by customer"
                # was one row).
                assert got.drill_dim not in {cl.key for cl in c.scope}, got.drill_dim
                for name in AGG_COLUMNS:
                    assert getattr(got.base, name) == pytest.approx(getattr(want.base, name))
                seen += 1
    finally:
        reader.close()
    assert seen >= 3


def test_the_affected_calls_are_the_ones_the_incident_changed_or_added(
    cache_dir: Path, tmp_path: Path
) -> None:
    """The benchmark's evidence floor counts the incident's own rows: the runaway loop's calls
    (not the tenant's normal traffic), every call of the changed feature."""
    base = aq.base_db(SCALE, SEED, cache_dir)
    t0 = aq.incident_start(SEED)
    _, loop = aq.scenario_db(base, aq.FAMILY["runaway customer"], SCALE, SEED, tmp_path / "r.db")
    assert loop == [t0 + 7.0, t0 + 67.0, t0 + 127.0]
    _, bloat = aq.scenario_db(base, aq.FAMILY["prompt bloat"], SCALE, SEED, tmp_path / "b.db")
    want = [
        r.t
        for r in aq.normal_rows(SCALE, SEED, aq.HISTORY_DAYS)
        if r.t >= t0 and r.feature == "support-summarize"
    ]
    assert len(want) > 3 and bloat == sorted(want)[:3]
    _, quiet = aq.scenario_db(base, aq.FAMILY["benign deploy"], SCALE, SEED, tmp_path / "q.db")
    assert quiet == []


def test_a_cost_per_call_alerts_figures_are_per_call_since_the_change(
    cache_dir: Path, tmp_path: Path
) -> None:
    """The detail screen's figures for a deploy that tripled each call's cost: per call, since
    the change, against the same span on the previous days. An hour's spend on a quiet hour
    said "×0.8 its baseline" under a critical cost-per-call alert (the demo)."""
    from llmtop.alerts.rules import Rules
    from llmtop.tui.alerting import alert_window, read_figures
    from llmtop.tui.screens.alert_detail import numbers_text

    fam = aq.FAMILY["prompt bloat"]
    db, _ = aq.scenario_db(aq.base_db(SCALE, SEED, cache_dir), fam, SCALE, SEED, tmp_path / "b.db")
    t0 = aq.incident_start(SEED)
    pages = aq.pages_over(db, aq.eval_times(fam, t0), Rules())
    page = next(p for p in pages if p.alert.rule == "cost_per_call")
    a, now = page.alert, page.t
    window = alert_window(Rules(), a, now)
    assert window == pytest.approx(now - a.since)
    f = read_figures(db, a, window, now)
    assert f.per_call is not None and f.baseline_per_call is not None
    assert f.per_call > 2 * f.baseline_per_call, (f.per_call, f.baseline_per_call)
    text = numbers_text(a.rule, a.title, f, None).plain
    assert "a call over" in text and "per call" in text and "σ" not in text, text


def test_a_sustained_incident_keeps_firing_hours_later(cache_dir: Path, tmp_path: Path) -> None:
    """classify swapped to gpt-4o for five hours: the alert stays up, its cause still the model.
    The cost profiles took in the incident's own hours an hour after them, its 16x calls widened
    classify's spread until the swap looked like noise, and it resolved 2 hours in."""
    from dataclasses import replace

    from llmtop.alerts.cache import AlertCache
    from llmtop.alerts.evaluate import evaluate
    from llmtop.alerts.rules import Rules
    from llmtop.store.reader import Reader

    fam = replace(aq.FAMILY["model swap"], length=300.0)
    base = aq.base_db(SCALE, SEED, cache_dir)
    db, _ = aq.scenario_db(base, fam, SCALE, SEED, tmp_path / "swap.db")
    t0 = aq.incident_start(SEED)
    reader, cache = Reader(db, readonly=True), AlertCache()
    firing = []
    try:
        for k in range(24, 61):  # every 5 minutes from 2 to 5 hours in
            roots = [
                a
                for a in evaluate(reader, Rules(), t0 + 300 * k, cache=cache)
                if a.parent is None and re.search(fam.related, f"{a.scope} {a.title} {a.cause}")
            ]
            firing.append(bool(roots))
            assert all(re.search(fam.cause, f"{a.scope} | {a.causes[0][0]}") for a in roots)
    finally:
        reader.close()
    assert sum(firing) >= 0.9 * len(firing), firing
