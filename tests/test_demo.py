"""The demo workload: seeded, fixed clock, written through the real collector, read back by SQL.

Everything here runs in simulated time (no sleeping, no wall-clock assertions), so the same seed
gives the same rows on every machine.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llmtop.collector.core import CollectorCore
from llmtop.collector.mapping import Captured, to_record
from llmtop.demo.cli import main, parse_duration
from llmtop.demo.payloads import Attempt, fast_record
from llmtop.demo.scenario import FEATURES
from llmtop.demo.simulator import Simulator

T0 = 1_763_900_000.0  # a fixed "now" for the live span's start
SPAN = 1200.0  # twenty simulated minutes of live traffic
INCIDENT_AT = T0 + 600.0
HISTORY_DAYS = 1


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Why retention is switched off here: this fixture is module-scoped, so it starts before the
    per-test conftest fixture that does so, and its rows sit at a frozen clock a year in the past.
    The writer's first background prune comes 5 s after it starts; on a loaded machine the
    backfill outlasted that and the prune deleted the oldest history rows (the test of the
    history's first row then failed under load and passed alone). The prune interval is 0 so
    every run is the loaded machine's: with retention on, that test fails every time."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMTOP_RETENTION", "off")
        mp.setenv("LLMTOP_ROLLUP_RETENTION", "off")
        mp.setenv("LLMTOP_PRUNE_INTERVAL", "0")
        yield from _demo_db(tmp_path_factory.mktemp("demo") / "demo.db")


def _demo_db(db: Path) -> Iterator[Path]:
    core = CollectorCore(db)
    sim = Simulator(core, seed=7, incident_at=INCIDENT_AT)
    sim.backfill(
        T0,
        HISTORY_DAYS * 86400.0,
        rate=0.5,
        max_rows=60_000,
        flush=lambda: core.flush(60),
        submit_record=core.writer.submit,
    )
    sim.run_span(T0, T0 + SPAN, rate=10.0)
    assert core.flush(60)
    assert core.writer.dropped == 0
    yield db
    core.writer.close()


def q(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_every_feature_has_rows_with_its_team_and_priced_models(demo_db: Path) -> None:
    got = dict(q(demo_db, "SELECT feature, count(*) FROM requests GROUP BY feature"))
    assert set(got) == set(FEATURES)
    teams = dict(q(demo_db, "SELECT DISTINCT feature, team FROM requests"))
    assert teams == {f.name: f.team for f in FEATURES.values()}
    # Every model the demo uses is in the bundled price map: nothing shows up unpriced.
    assert q(demo_db, "SELECT count(*) FROM requests WHERE unpriced = 1")[0][0] == 0
    assert q(demo_db, "SELECT count(*) FROM requests WHERE call_type = 'embedding'")[0][0] > 0
    assert q(demo_db, "SELECT count(*) FROM requests WHERE reasoning_tokens > 0")[0][0] > 0
    # A small share of proxy streams arrive without usage: unmetered, not free.
    unmetered = q(demo_db, "SELECT count(*), min(feature) FROM requests WHERE unmetered = 1")[0]
    assert unmetered[0] > 0 and unmetered[1] == "chat"


def test_spend_is_heavy_tailed_by_user(demo_db: Path) -> None:
    shares = q(
        demo_db,
        "SELECT user, sum(cost_usd) / (SELECT sum(cost_usd) FROM requests WHERE user IS NOT NULL)"
        " FROM requests WHERE user IS NOT NULL GROUP BY user ORDER BY 2 DESC",
    )
    assert len(shares) > 200
    assert shares[0][1] > 0.12  # ~300 users: uniform would be 0.003
    assert len(q(demo_db, "SELECT DISTINCT customer FROM requests")) >= 35


def test_rate_limits_are_retried_on_the_same_trace_and_sometimes_fall_back(demo_db: Path) -> None:
    retried = q(
        demo_db,
        "SELECT f.trace_id, r.attempt FROM requests f JOIN requests r ON r.trace_id = f.trace_id"
        " WHERE f.normalized_error = '429_RATE_LIMIT_EXCEEDED' AND f.error_code = '429'"
        " AND f.error_class = 'RateLimitError' AND f.attempt = 1"
        " AND r.is_retry = 1 AND r.started_at > f.started_at",
    )
    assert len(retried) > 20
    assert all(attempt >= 2 for _, attempt in retried)
    fallbacks = q(
        demo_db,
        "SELECT original_model_group, model_group FROM requests WHERE is_fallback = 1",
    )
    assert fallbacks and all(o != m for o, m in fallbacks)
    errors = {r[0] for r in q(demo_db, "SELECT DISTINCT normalized_error FROM requests")}
    assert {"500_PROVIDER_INTERNAL_ERROR", "408_UPSTREAM_TIMEOUT"} <= errors


def test_the_incident_multiplies_support_summarize_spend(demo_db: Path) -> None:
    def window(a: float, b: float) -> tuple[Any, ...]:
        return q(
            demo_db,
            "SELECT sum(input_tokens) * 1.0 / count(*), sum(cache_read_tokens) * 1.0 /"
            " sum(input_tokens), sum(cost_usd), group_concat(DISTINCT prompt_version),"
            " group_concat(DISTINCT route_version) FROM requests"
            " WHERE feature = 'support-summarize' AND status = 'success'"
            " AND started_at >= ? AND started_at < ?",
            (a, b),
        )[0]

    before = window(T0, INCIDENT_AT)
    after = window(INCIDENT_AT, T0 + SPAN)
    assert before[3:] == ("v1", "r12") and after[3:] == ("v2", "r13")
    assert after[0] >= 4 * before[0]  # input tokens per request
    assert before[1] > 0.4 and after[1] < 0.1  # share of input read from the prompt cache
    assert after[2] >= 5 * before[2]  # equal spans: spend rate
    # Nothing else changed: the other features keep their version.
    assert q(
        demo_db, "SELECT DISTINCT prompt_version FROM requests WHERE feature != 'support-summarize'"
    ) == [("v1",)]


def test_history_covers_the_requested_days_and_the_nightly_burst(demo_db: Path) -> None:
    first, last = q(demo_db, "SELECT min(started_at), max(started_at) FROM requests")[0]
    assert first <= T0 - HISTORY_DAYS * 86400 + 600
    assert last < T0 + SPAN
    hours = {
        time.localtime(t).tm_hour
        for (t,) in q(demo_db, "SELECT started_at FROM requests WHERE feature = 'nightly-enrich'")
    }
    assert hours == {2}
    workloads = {r[0] for r in q(demo_db, "SELECT DISTINCT workload FROM requests")}
    assert workloads == {"realtime", "batch", "agent"}


def test_history_is_shortened_not_thinned(tmp_path: Path) -> None:
    """A row budget too small for the span keeps the live density over fewer days."""
    core = CollectorCore(tmp_path / "short.db")
    sim = Simulator(core, seed=1, incident_at=None)
    n = sim.backfill(T0, 3 * 86400.0, rate=2.0, max_rows=5_000, submit_record=core.writer.submit)
    assert core.flush(60)
    first, last, count = q(
        tmp_path / "short.db", "SELECT min(started_at), max(started_at), count(*) FROM requests"
    )[0]
    core.writer.close()
    assert count == n and n <= 5_000 * 1.2
    assert T0 - first < 86400  # the most recent part was kept, the rest dropped
    per_hour = count / ((last - first) / 3600)
    assert per_hour > 0.2 * 2.0 * 3600  # still the live rate's order of magnitude, not 1/100


class Counting:
    """A sink that only counts the calls logged to it."""

    n = 0

    def log(self, kwargs: Any, resp: Any, start: Any, end: Any, failed: bool) -> None:
        self.n += 1


def test_history_from_a_quiet_hour_keeps_to_its_row_budget() -> None:
    """Started at 4 a.m. on a Sunday, the live rate is a trough: weekday noons in history hold
    ten times as many calls a second. The span is shortened until the rows expected over it,
    not over the last hour, fit the budget (the last hour alone said 3 days: 1.4M rows for a
    400k budget, four times the README's wait)."""

    sunday_4am = time.mktime((2026, 11, 22, 4, 0, 0, 0, 0, -1))
    sink = Counting()
    sim = Simulator(sink, seed=1, incident_at=None)
    n = sim.backfill(sunday_4am, 3 * 86400.0, rate=2.0, max_rows=100_000)
    assert n == sink.n and 0.9 * 100_000 <= n <= 1.1 * 100_000, n
    # The span kept is what the demo says it wrote ("…: 3 days at this hour's rate would
    # exceed 400,000 rows"): shorter than asked.
    assert 3600 < sim.history_seconds < 86400, sim.history_seconds
    from llmtop.demo.cli import format_span

    assert [format_span(x) for x in (3 * 86400, 83000, 1500)] == ["3 days", "23 h", "25 min"]


def test_the_live_run_has_the_historys_customers_and_users() -> None:
    """A live stream of its own (not a replay of the history's first minutes), over the same
    population: a live run with other users made every one of them a "new user" alert."""
    hist = Simulator(Counting(), seed=4, incident_at=None)
    live = Simulator(Counting(), seed=4, stream=1, incident_at=None)
    assert (live.customers, live.users, live.user_customer) == (
        hist.customers,
        hist.users,
        hist.user_customer,
    )
    assert [hist.rng.random() for _ in range(3)] != [live.rng.random() for _ in range(3)]


def test_fast_history_records_match_the_collectors_mapping() -> None:
    class Keep:
        def __init__(self) -> None:
            self.calls: list[tuple[Any, ...]] = []

        def log(self, kwargs: Any, resp: Any, start: Any, end: Any, failed: bool) -> None:
            self.calls.append((kwargs, start, end, failed))

    sink = Keep()
    sim = Simulator(sink, seed=3, incident_at=T0 + 60)
    sim.run_span(T0, T0 + 180, rate=20.0)
    assert len(sink.calls) > 2000

    for kwargs, start, end, failed in sink.calls:
        lp, op = kwargs["litellm_params"], kwargs["optional_params"]
        exc = kwargs.get("exception")
        cap = Captured(
            kwargs["standard_logging_object"],
            dict(lp["metadata"]),
            op.get("user"),
            kwargs.get("response_cost"),
            type(exc).__name__ if exc else None,
            getattr(exc, "status_code", None),
            kwargs["model"],
            start,
            end,
            failed,
        )
        want = dataclasses.asdict(to_record(cap))
        got = dataclasses.asdict(fast_record(Attempt(end, kwargs, failed)))
        assert got == want


def test_cli_no_tui_writes_rows_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "cli.db"
    rc = main(["--no-tui", "--duration", "2s", "--db", str(db), "--history", "1d", "--speed", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "rows written" in out and str(db) in out
    n, first = q(db, "SELECT count(*), min(started_at) FROM requests")[0]
    assert n > 10_000
    assert first < time.time() - 0.9 * 86400


def test_durations_parse() -> None:
    assert parse_duration("10s") == 10
    assert parse_duration("2m") == 120
    assert parse_duration("1h") == 3600
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("0") == 0


def test_a_url_for_db_is_refused_not_made_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--db postgresql://...` wrote a SQLite file named `postgresql:/...` here, exit 0, and a
    mysql:// URL printed its password."""
    monkeypatch.chdir(tmp_path)
    for url in ("postgresql://u:pw@h/db", "mysql://u:pw@h/db"):
        with pytest.raises(SystemExit) as exit_:
            main(["--db", url, "--no-tui", "--history", "0"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.endswith("the demo writes a SQLite file; give a path\n") and "pw" not in err
    assert list(tmp_path.iterdir()) == []
