"""LiteLLM proxy's own database as a read-only source (store/pg_spendlogs.py): the proxy's
`LiteLLM_SpendLogs` table with its real column types and rows shaped like the proxy's, read by
the Reader, `llmtop check` and the dashboard, with nothing written to it."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from llmtop.store.db import DatabaseError, resolve_db_path
from llmtop.store.filters import parse_filter
from llmtop.store.reader import Reader

from tests.pg_spendlogs import Log, create, insert, make_logs

NOW = time.time()


@pytest.fixture(scope="module")
def proxy_db(pg_server: Any) -> tuple[str, list[Log]]:
    """One proxy database for the module's read-only tests (built once: ~0.3 s)."""
    url = pg_server.create_database()
    logs = make_logs(600, NOW - 2 * 86400, NOW - 5)
    create(url, logs)
    return url, logs


def _in(logs: list[Log], window: float, now: float = NOW) -> list[Log]:
    return [lg for lg in logs if now - window <= lg.started < now]


def _groups(snap: Any) -> dict[Any, tuple[int, float]]:
    return {g.key: (g.agg.requests, round(g.agg.spend, 9)) for g in snap.groups}


def test_the_proxy_database_reads_as_a_store_every_grouping_and_filter(
    proxy_db: tuple[str, list[Log]],
) -> None:
    url, logs = proxy_db
    r = Reader(resolve_db_path(url))
    try:
        assert type(r).__name__ == "SpendLogsReader"
        assert {"pricing", "attempts", "unpriced"} <= r.unavailable
        for window in (3600.0, 86400.0):
            got = _in(logs, window)
            snap = r.snapshot(now=NOW, window=window, group_by="model")
            t = snap.totals
            assert t.requests == len(got) > 0
            assert t.spend == pytest.approx(sum(lg.spend for lg in got))
            assert t.failures == sum(lg.failed for lg in got)
            assert t.retries == sum(lg.retries > 0 for lg in got)
        got = _in(logs, 86400.0)
        by = {
            "model": lambda lg: lg.model,
            "team": lambda lg: lg.team,
            "key": lambda lg: lg.key,
            "user": lambda lg: lg.user,
            "customer": lambda lg: lg.customer,
            "feature": lambda lg: lg.feature,
            "request_tags": lambda lg: ",".join(lg.tags) or None,
        }
        for dim, key in by.items():
            snap = r.snapshot(now=NOW, window=86400.0, group_by=dim)
            want: dict[Any, list[float]] = {}
            for lg in got:
                w = want.setdefault(key(lg), [0, 0.0])
                w[0] += 1
                w[1] += lg.spend
            groups = {g.key: g for g in snap.groups}
            assert set(groups) == set(want), dim
            for k, (n, spend) in want.items():
                assert groups[k].requests == n, (dim, k)
                assert groups[k].spend == pytest.approx(spend), (dim, k)
        # Filters: an interned column, a glob, a tag, a negation, status.
        for text, pick in (
            ("team=search", lambda lg: lg.team == "search"),
            ("model~claude*", lambda lg: lg.model.startswith("claude")),
            ("key=search-svc", lambda lg: lg.key == "search-svc"),
            ("customer!=acme", lambda lg: lg.customer != "acme"),
            ("status=failure", lambda lg: lg.failed),
        ):
            snap = r.snapshot(now=NOW, window=86400.0, clauses=parse_filter(text))
            assert snap.totals.requests == sum(map(pick, got)), text
        # Tokens: cache reads from metadata.additional_usage_values (one row in fifty holds
        # its metadata as a JSON string, as older proxies stored it).
        cached = r.query(
            "SELECT total(c.cache_read_tokens), total(c.reasoning_tokens) FROM calls c"
            " WHERE c.started_at >= ? AND c.started_at < ?",
            (NOW - 86400, NOW),
        )[0]
        assert cached[0] == sum(lg.cache_read for lg in got)
        assert cached[1] == 7 * sum(lg.model == "gpt-4o" for lg in got)
        assert {"key", "organization", "request_tags"} <= set(r.dimensions())
        rows = r.requests(now=NOW, window=3600.0)
        assert len(rows) == len(_in(logs, 3600.0))
        newest = max(_in(logs, 3600.0), key=lambda lg: lg.started)
        assert (rows[0].model, rows[0].started_at) == (newest.model, pytest.approx(newest.started))
        d = r.detail(rows[0].id)
        assert d is not None and dict(d.fields)["request_id"] == newest.row["request_id"]
        assert dict(d.fields)["model"] == newest.model
        # Ids back to names, as the alert engine's reads need them.
        ids = r.query("SELECT DISTINCT c.team FROM calls c WHERE c.team IS NOT NULL")
        assert set(r.strings({i for (i,) in ids}).values()) == {"search", "billing"}
    finally:
        r.close()


def test_rows_the_proxy_commits_late_are_counted_once(pg_server: Any) -> None:
    """The proxy writes a request's row after it ends, in batches: a refresh must add rows whose
    start is already inside the window (committed after the last read, or in flight during it)
    and never count a row twice."""
    import psycopg

    url = pg_server.create_database()
    now = time.time()
    logs = make_logs(40, now - 1800, now - 60, seed=2)
    create(url, logs[:20])
    r = Reader(resolve_db_path(url))
    slow = psycopg.connect(url)
    try:
        insert(slow, logs[20:25])  # a batch in flight while the dashboard reads
        first = r.snapshot(now=now, window=3600.0)
        assert first.totals.requests == 20
        with psycopg.connect(url, autocommit=True) as fast, fast.transaction():
            insert(fast, logs[25:30])  # a later batch, committed first
        slow.commit()
        second = r.snapshot(now=now + 1, window=3600.0)
        assert second.totals.requests == 30
        assert r.snapshot(now=now + 2, window=3600.0).totals.requests == 30
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            insert(conn, logs[30:])
        third = r.snapshot(now=now + 3, window=3600.0, group_by="model")
        assert third.totals.requests == 40
        assert third.totals.spend == pytest.approx(sum(lg.spend for lg in logs))
        assert Counter({g.key: g.requests for g in third.groups}) == Counter(
            lg.model for lg in logs
        )
    finally:
        slow.close()
        r.close()


def test_check_report_and_export_read_it_and_nothing_is_ever_written_to_it(
    proxy_db: tuple[str, list[Log]], tmp_path: Any, capsys: Any
) -> None:
    import csv
    import io

    import psycopg
    from llmtop.alerts.cli import main as check_main
    from llmtop.store.alert_state import AlertStore
    from llmtop.store.maintenance import prune

    from llmtop.cli import main

    url, logs = proxy_db
    rules = tmp_path / "rules.toml"
    rules.write_text("")
    code = check_main(["--db", url, "--config", str(rules), "--now", str(NOW), "--json"])
    assert code in (0, 1), code
    capsys.readouterr()
    assert main(["export", "--db", url, "--window", "24h", "--until", str(NOW)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    got = _in(logs, 86400.0)
    assert len(rows) == len(got)
    assert sorted(r["team"] for r in rows) == sorted(lg.team or "" for lg in got)
    assert sum(float(r["cost_usd"]) for r in rows) == pytest.approx(sum(lg.spend for lg in got))
    assert main(["report", "--db", url, "--until", str(NOW), "--format", "md"]) == 0
    week = _in(logs, 7 * 86400.0)
    md = capsys.readouterr().out
    assert f"{len(week)} requests" in md
    # What the proxy's table cannot give is "n/a" in the report and empty in an export, as on
    # the dashboard: it was "saved by prompt caching $0.72" and "unpriced 0".
    assert "| saved by prompt caching | n/a |" in md
    assert "| unpriced (no price known: spend understated) | n/a |" in md
    assert main(["report", "--db", url, "--until", str(NOW), "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["unpriced"] is None and rep["unmetered"] is None
    assert rep["saved_prompt_cache"] is None
    assert main(["export", "--db", url, "--window", "24h", "--until", str(NOW),
                 "--group-by", "team"]) == 0  # fmt: skip
    groups = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert groups and {(g["unpriced"], g["unmetered"]) for g in groups} == {("", "")}
    for attempt in (lambda: AlertStore(resolve_db_path(url)),
                    lambda: prune(resolve_db_path(url), older_than=86400)):  # fmt: skip
        with pytest.raises(DatabaseError) as err:
            attempt()
        msg = str(err.value)
        assert "LiteLLM proxy database" in msg and "\n" not in msg and "callback" in msg
    from llmtop.collector import record_outcome

    capsys.readouterr()
    assert record_outcome("task-1", True, db=url) is False  # never raises into the app
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "LiteLLM proxy database" in line and "record_outcome" in line
    with psycopg.connect(url) as conn:
        tables = {t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )}  # fmt: skip
    assert tables == {"LiteLLM_SpendLogs"}


async def test_the_dashboard_shows_a_proxy_database(proxy_db: tuple[str, list[Log]]) -> None:
    from llmtop.tui.app import LlmtopApp

    from tests.tui_fixtures import settle

    url, logs = proxy_db
    app = LlmtopApp(resolve_db_path(url), clock=lambda: NOW, watch=False, alerts=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        snap = app.dashboard.snapshot
        assert snap is not None
        assert snap.totals.requests == len(_in(logs, snap.end - snap.start))
        # What the proxy's table cannot give reads "n/a", never a reassuring 0.
        assert {"unpriced", "unmetered", "drops", "saved_usd"} <= snap.unavailable
        status = str(app.dashboard.query_one("#status").render())
        assert "unpriced n/a" in status and "unmetered n/a" in status
        assert "dropped n/a" in status and "0 dropped" not in status
        from llmtop.tui.widgets.cache_panel import CachePanel

        assert "saved by cached reads n/a" in CachePanel.body(None, snap).plain  # type: ignore[arg-type]


def test_an_older_proxy_table_without_the_newer_columns_reads(pg_server: Any) -> None:
    """Columns added across LiteLLM releases (status, session_id, organization_id...) read as
    NULL when a proxy's table predates them; late rows are still found."""
    import psycopg

    url = pg_server.create_database()
    now = time.time()
    logs = make_logs(60, now - 3000, now - 30, seed=3)
    create(url, logs[:40])
    old = ("status", "session_id", "litellm_call_id", "organization_id", "completionStartTime",
           "model_group", "request_tags")  # fmt: skip
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            'ALTER TABLE "LiteLLM_SpendLogs" ' + ", ".join(f'DROP COLUMN "{c}"' for c in old)
        )
    r = Reader(resolve_db_path(url))
    try:
        assert r.missing == frozenset(old)
        snap = r.snapshot(now=now, window=3600.0, group_by="team")
        assert snap.totals.requests == 40
        assert snap.totals.spend == pytest.approx(sum(lg.spend for lg in logs[:40]))
        assert {g.key for g in snap.groups} == {lg.team for lg in logs[:40]}
        # Failures from metadata.status where the status column is missing.
        assert snap.totals.failures == sum(lg.failed for lg in logs[:40]) > 0
        cols = [c for c in logs[0].row if c not in old]
        with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
            cur.executemany(
                f'INSERT INTO "LiteLLM_SpendLogs" ({", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)})'
                f" VALUES ({', '.join('%s' for _ in cols)})",
                [[lg.row[c] for c in cols] for lg in logs[40:]],
            )
        assert r.snapshot(now=now + 1, window=3600.0).totals.requests == 60
    finally:
        r.close()


async def test_alerts_on_a_proxy_database_show_unrecorded_and_say_so_once(
    proxy_db: tuple[str, list[Log]],
) -> None:
    """The proxy's database cannot keep alert state: the dashboard's passes still show what
    fired (as open), the reason is said once, and later passes do not repeat it."""
    from llmtop.tui.app import LlmtopApp

    from tests.tui_fixtures import settle

    url, _ = proxy_db
    app = LlmtopApp(resolve_db_path(url), clock=lambda: NOW, watch=False, alerts=True)
    async with app.run_test(size=(160, 48)) as pilot:
        alerts = app.dashboard.alerts
        for _ in range(200):
            await settle(app, pilot)
            if alerts.unrecordable is not None and not alerts.busy:
                break
            await pilot.pause(0.05)
        assert alerts.unrecordable is not None
        assert "LiteLLM proxy database" in alerts.unrecordable
        assert app.dashboard.error is not None and "not recorded" in app.dashboard.error
        app.dashboard.error = None
        alerts.evaluate()
        for _ in range(200):
            await settle(app, pilot)
            if not alerts.busy:
                break
            await pilot.pause(0.05)
        assert app.dashboard.error is None  # said once, not every pass
        assert all(s.state == "open" for s in app.dashboard.alert_states)
