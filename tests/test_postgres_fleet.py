"""A fleet on one PostgreSQL store: alert state shared and paged once, the commands (`check`,
`prune`, `vacuum`) on a URL, a dashboard woken by another host's commit, and one line (never a
password) when the server cannot be reached."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from llmtop.alerts.model import Alert
from llmtop.alerts.state import ack, states, sync
from llmtop.store.alert_state import AlertStore
from llmtop.store.db import DatabaseError, resolve_db_path
from llmtop.store.reader import Reader

from tests.test_postgres_write import NOW, ROOT, events, pg_rows, write_batches


def alert(fp: str, parent: str | None = None) -> Alert:
    return Alert(
        fingerprint=fp,
        rule="spend_spike",
        severity="critical",
        scope=f"feature={fp}",
        title=f"{fp} spend up",
        cause="a cause",
        causes=(("a cause", 1.0),),
        owner=None,
        since=NOW,
        drill=(f"feature={fp}", "model"),
        parent=parent,
    )


def test_two_evaluators_on_two_hosts_page_each_incident_once(pg_url: str) -> None:
    stores = [AlertStore(pg_url) for _ in range(2)]
    assert type(stores[0]).__name__ == "PgAlertStore"
    try:
        for rnd in range(15):
            fired = [alert(f"r{rnd}-{k}") for k in range(3)] + [alert(f"r{rnd}-c", f"r{rnd}-0")]
            paged: list[list[Alert]] = [[], []]
            gate = threading.Barrier(2)

            def evaluate(
                i: int,
                fired: Any = fired,
                paged: Any = paged,
                gate: Any = gate,
                t: float = NOW + rnd,
            ) -> None:
                gate.wait()
                paged[i] = sync(stores[i], fired, t)[0]

            ts = [threading.Thread(target=evaluate, args=(i,)) for i in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(30)
            # Three roots page, each exactly once between the two evaluators; the child never.
            got = sorted(a.fingerprint for p in paged for a in p)
            assert got == [f"r{rnd}-0", f"r{rnd}-1", f"r{rnd}-2"]
            # Evaluating again (a cron job a minute later) pages nothing.
            assert sync(stores[rnd % 2], fired, NOW + rnd + 60)[0] == []
    finally:
        for s in stores:
            s.close()


def test_an_ack_on_one_dashboard_is_the_state_every_other_sees(pg_url: str) -> None:
    a, b = AlertStore(pg_url), AlertStore(pg_url)
    try:
        sync(a, [alert("x"), alert("y", "x")], NOW)
        assert ack(b, "x")
        seen = {s.fingerprint: s.state for s in states(a, NOW)}
        assert seen == {"x": "acked", "y": "acked"}  # the alert filed under it too
    finally:
        a.close()
        b.close()


def llmtop(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmtop", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT), **env},
    )


def test_check_prune_and_vacuum_work_on_a_postgres_url(pg_url: str, tmp_path: Path) -> None:
    n = write_batches(pg_url, events(400, start=NOW - 3 * 86400), 100)
    rules = tmp_path / "rules.toml"
    rules.write_text("")
    out = llmtop("check", "--db", pg_url, "--config", str(rules), "--now", str(NOW), "--json",
                 cwd=tmp_path)  # fmt: skip
    assert out.returncode in (0, 1, 2), out.stderr
    assert isinstance(__import__("json").loads(out.stdout), list)
    # Prune as of NOW: rows older than a day go, the rollups stay.
    before = pg_rows(pg_url, "SELECT sum(n) FROM rollups WHERE cube = 0 AND res = 3600")[0][0]
    old = pg_rows(pg_url, "SELECT count(*) FROM calls WHERE started_at < %s", (NOW - 86400,))[0][0]
    from llmtop.store.maintenance import prune

    assert prune(resolve_db_path(pg_url), older_than=86400, now=NOW) == old > 0
    assert pg_rows(pg_url, "SELECT count(*) FROM calls")[0][0] == n - old
    assert (
        pg_rows(pg_url, "SELECT sum(n) FROM rollups WHERE cube = 0 AND res = 3600")[0][0] == before
    )
    out = llmtop("prune", "--db", pg_url, "--older-than", "1d", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("pruned "), out.stderr
    out = llmtop("vacuum", "--db", pg_url, cwd=tmp_path)
    assert out.returncode == 0 and "vacuumed" in out.stdout, out.stderr
    assert list(tmp_path.iterdir()) == [rules]  # no file created for a URL


def test_someone_elses_postgres_database_is_refused_not_migrated(
    pg_server: Any, tmp_path: Path
) -> None:
    """`prune`/`vacuum` on an app's database added llmtop's ten tables beside its own and said
    "pruned 0 rows"; on an empty one (the server's `postgres`) they made the schema too."""
    import psycopg

    app = pg_server.create_database()
    with psycopg.connect(app, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int)")
    empty = pg_server.create_database()
    for url, problem in ((app, "not an llmtop database (it holds tables llmtop did not make:"
                               " customers)"),
                         (empty, "no llmtop tables in this database")):  # fmt: skip
        for cmd in (["prune", "--older-than", "1d"], ["vacuum"]):
            out = llmtop(*cmd, "--db", url, cwd=tmp_path)
            assert out.returncode == 3, (cmd, out.stdout, out.stderr)
            (line,) = out.stderr.strip().splitlines()
            assert problem in line, line
        tables = pg_rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert tables == ([("customers",)] if url == app else [])
    # Nor does a writer or a dashboard make llmtop's tables beside the app's.
    with pytest.raises(DatabaseError, match="not an llmtop database"):
        Reader(app)


def test_a_bad_connect_timeout_is_one_line_and_loses_no_row(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """LLMTOP_PG_CONNECT_TIMEOUT=abc was a traceback in every command (exit 1: "warning" to
    cron) and in the collector's writer thread, whose calls were lost at exit."""
    from llmtop.collector.writer import Writer

    from tests.pg_fleet import record

    monkeypatch.setenv("LLMTOP_PG_CONNECT_TIMEOUT", "abc")
    w = Writer(pg_url)
    rng = __import__("random").Random(3)
    for i in range(5):
        w.submit(record(rng, "h", i, NOW))
    w.close()
    assert pg_rows(pg_url, "SELECT count(*) FROM calls")[0][0] == 5
    assert "LLMTOP_PG_CONNECT_TIMEOUT=abc: expected a positive number; using 5" in caplog.text
    out = llmtop("report", "--db", pg_url, "--until", str(NOW + 60), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines() == [
        "llmtop: LLMTOP_PG_CONNECT_TIMEOUT=abc: expected a positive number; using 5"
    ]


def test_an_unreachable_server_is_one_line_without_the_password(
    pg_server: Any, tmp_path: Path
) -> None:
    url = f"postgresql://llmtop:s3cret@127.0.0.1:{pg_server.port + 1}/nope"
    for cmd in (["check"], ["prune"], []):
        out = llmtop(*cmd, "--db", url, cwd=tmp_path)
        assert out.returncode in (2, 3), out.stderr
        (line,) = out.stderr.strip().splitlines()
        assert "postgresql://llmtop@127.0.0.1" in line and "s3cret" not in line, line
    with pytest.raises(DatabaseError, match="nope: .*does not exist"):
        Reader(pg_server.url("nope"))
    assert list(tmp_path.iterdir()) == []


def test_a_commit_on_one_host_wakes_a_dashboard_on_another(pg_url: str) -> None:
    from llmtop.collector.writer import Writer

    from tests.pg_fleet import record

    dash = Reader(pg_url)
    try:
        assert dash.snapshot(now=NOW + 10, window=3600).totals.requests == 0
        assert dash.wait_for_change(0.05) is False  # LISTENing now; nothing committed
        w = Writer(pg_url)  # another "host": its own process-wide writer and connection
        w.submit(record(__import__("random").Random(1), "other", 0, NOW))
        assert dash.wait_for_change(30) is True
        assert dash.snapshot(now=NOW + 10, window=3600).totals.requests == 1
        w.close()
    finally:
        dash.close()


def test_report_and_export_read_the_same_from_both_backends(pg_url: str, tmp_path: Path) -> None:
    import csv
    import io
    import math

    evs = events(300, start=NOW - 5 * 86400)
    db = tmp_path / "same.db"
    assert write_batches(db, evs, 100) == write_batches(pg_url, evs, 100)
    out: dict[str, dict[str, str]] = {}
    for name, target in (("lite", str(db)), ("pg", pg_url)):
        out[name] = {}
        for cmd in (
            # Causes name one of several equally good explanations when they tie, which one
            # depending on string ids (assigned per backend): the numbers are compared.
            ["report", "--until", str(NOW), "--format", "md", "--no-causes"],
            ["export", "--window", "7d", "--until", str(NOW), "--format", "csv"],
            ["export", "--window", "7d", "--until", str(NOW), "--group-by", "feature",
             "--format", "csv"],
        ):  # fmt: skip
            r = llmtop(*cmd, "--db", target, cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            out[name][" ".join(cmd)] = r.stdout
    report = f"report --until {NOW} --format md --no-causes"
    assert out["lite"][report] == out["pg"][report]
    assert "Spend $" in out["pg"][report]
    for key in (
        f"export --window 7d --until {NOW} --format csv",
        f"export --window 7d --until {NOW} --group-by feature --format csv",
    ):
        a = list(csv.DictReader(io.StringIO(out["lite"][key])))
        b = list(csv.DictReader(io.StringIO(out["pg"][key])))
        assert len(a) == len(b) > 0
        for x, y in zip(a, b, strict=True):
            x.pop("id", None), y.pop("id", None)
            for k in x:
                if x[k] != y[k]:  # sums in another order: the last digit may differ
                    assert math.isclose(float(x[k]), float(y[k]), rel_tol=1e-9), (k, x[k], y[k])


def test_a_real_litellm_call_through_the_collector_lands_in_postgres(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy's way in: LLMTOP_DB=postgresql://... and the default Collector()."""
    import litellm
    from llmtop.collector import Collector

    monkeypatch.setenv("LLMTOP_DB", pg_url)
    litellm.logging_callback_manager._reset_all_callbacks()
    c = Collector()
    litellm.callbacks = [c]
    try:
        litellm.completion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            mock_response="hello",
            metadata={"feature": "fleet", "customer": "acme"},
        )
        deadline = time.monotonic() + 10  # LiteLLM logs a sync call from its own thread pool
        while c.core.writer.written == 0 and time.monotonic() < deadline:
            assert c.flush(30), c.core.writer.last_error
            time.sleep(0.05)
    finally:
        litellm.logging_callback_manager._reset_all_callbacks()
        c.core.writer.close()
    ((model, feature, customer, cost, status),) = pg_rows(
        pg_url, "SELECT model, feature, customer, cost_usd, status FROM requests"
    )
    assert (model, feature, customer, status) == ("gpt-4o-mini", "fleet", "acme", "success")
    assert cost is not None and cost > 0


def test_tasks_and_recorded_outcomes_read_the_same_from_both_backends(
    pg_url: str, tmp_path: Path
) -> None:
    """record_outcome on a postgresql:// URL lands in the shared store (it used to create a
    SQLite file under ./postgresql:/...), and cost per successful task reads the same there."""
    from llmtop.collector import record_outcome
    from llmtop.store.outcomes import task_stats
    from llmtop.store.pg_db import PgUrl

    from tests.builders import payload

    evs = [
        payload(
            start=NOW - 3600 + i * 7,
            feature=("search", "chat", None)[i % 3],
            correlation_id=f"task-{i // 3}",
            input_tokens=500 + 37 * i,
            output_tokens=40 + i,
            **({"status": "failure", "error_class": "Timeout"} if i % 11 == 4 else {}),
        )
        for i in range(90)
    ]
    db = tmp_path / "same.db"
    assert write_batches(db, evs, 30) == write_batches(pg_url, evs, 30) == 90
    cwd_files = set(Path.cwd().iterdir())
    for target in (str(db), pg_url):
        for k in range(0, 30, 4):  # every fourth task: recorded, the latest one winning
            assert record_outcome(f"task-{k}", True, db=target)
            assert record_outcome(f"task-{k}", k % 8 == 0, db=target, reason="judged")
    got = {}
    for name, target in (("lite", str(db)), ("pg", pg_url)):
        r = Reader(PgUrl(target) if name == "pg" else target, readonly=True)
        try:
            got[name] = task_stats(r, NOW - 7200, NOW)
        finally:
            r.close()
    assert set(Path.cwd().iterdir()) == cwd_files  # no stray ./postgresql:/ file
    lite, pg = got["lite"], got["pg"]
    assert [(s.key, s.tasks, s.succeeded, s.recorded, s.calls) for s in lite] == [
        (s.key, s.tasks, s.succeeded, s.recorded, s.calls) for s in pg
    ]
    assert sum(s.recorded for s in pg) == 8 and sum(s.tasks for s in pg) == 30
    for a, b in zip(lite, pg, strict=True):
        assert math.isclose(a.spend, b.spend, rel_tol=1e-9)
        assert math.isclose(a.failed_spend, b.failed_spend, rel_tol=1e-9, abs_tol=1e-12)


async def test_the_dashboards_tasks_and_margin_panels_read_a_postgres_store(
    pg_url: str, tmp_path: Path
) -> None:
    """The review row (tasks, margin) on a shared store shows what it shows on a file holding
    the same calls and outcomes."""
    from llmtop.collector import record_outcome
    from llmtop.store.pg_db import PgUrl
    from llmtop.tui.widgets.margin_panel import MarginPanel
    from llmtop.tui.widgets.tasks_panel import TasksPanel

    from tests.builders import payload
    from tests.test_review_panels import SPECS
    from tests.tui_fixtures import make_app, settle

    db = tmp_path / "same.db"
    evs = [payload(**s) for s in SPECS]
    assert write_batches(db, evs, 50) == write_batches(pg_url, evs, 50) == len(SPECS)
    rules = tmp_path / "rules.toml"
    rules.write_text("[plans]\nacme = 10\nglobex = 1000\n", encoding="utf-8")
    seen = {}
    for name, target in (("lite", db), ("pg", PgUrl(pg_url))):
        assert record_outcome("A", True, db=target) and record_outcome("B", False, db=target)
        app = make_app(target, rules_path=rules)
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(app, pilot)
            tasks = app.screen.query_one(TasksPanel)
            margin = app.screen.query_one(MarginPanel)
            assert tasks.display and margin.display, name
            assert tasks.board is not None and margin.board is not None
            t = tasks.board.total
            seen[name] = (
                (t.tasks, t.succeeded, t.failed, t.recorded, t.calls, round(t.spend, 9)),
                [(m.customer, round(m.month_to_date, 9)) for m in margin.board.customers],
            )
    assert seen["pg"] == seen["lite"]
    assert seen["pg"][0][:5] == (5, 3, 2, 3, 7)


def test_metrics_and_otlp_read_a_postgres_store(pg_url: str, tmp_path: Path) -> None:
    """`llmtop metrics --db postgresql://...` said "no such database" (the URL made a Path);
    now both exporters read the store, each scrape adding exactly the batches committed since."""
    from llmtop.store.metrics_queries import MetricTotals
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from llmtop.otel import OtelExporter

    n = write_batches(pg_url, events(300, start=NOW - 86400), 100)
    out = llmtop("metrics", "--db", pg_url, "--once", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    scraped = sum(
        float(line.rsplit(" ", 1)[1])
        for line in out.stdout.splitlines()
        if line.startswith("llmtop_requests_total{")
    )
    assert scraped == n
    totals = MetricTotals(resolve_db_path(pg_url), ["model", "team"])
    otel_reader = InMemoryMetricReader()
    exp = OtelExporter(resolve_db_path(pg_url), ["model"], reader=otel_reader)
    try:
        assert sum(s.requests for s in totals.refresh()) == n
        more = write_batches(pg_url, events(120, seed=11, start=NOW - 3600), 40)
        series = totals.refresh()
        assert sum(s.requests for s in series) == n + more
        spend = pg_rows(pg_url, "SELECT sum(cost_usd) FROM requests")[0][0]
        assert sum(s.cost_usd for s in series) == pytest.approx(spend, rel=1e-9)
        assert exp.poll() == more  # the exporter counts from its start
        assert totals.refresh() is not None and exp.poll() == 0
    finally:
        totals.close()
        exp.shutdown()


def test_a_file_and_a_store_merge_into_one_view(pg_url: str, tmp_path: Path) -> None:
    """`llmtop --db host.db --db postgresql://...` said "postgresql:/...: no such database"
    (the URL made a Path); each source is now a `source` of the merged view."""
    from llmtop.store.reader import MultiReader

    n_pg = write_batches(pg_url, events(90, start=NOW - 3000), 30)
    f = tmp_path / "laptop.db"
    n_file = write_batches(str(f), events(40, seed=5, start=NOW - 3000), 40)
    m = MultiReader([f, resolve_db_path(pg_url)])
    try:
        snap = m.snapshot(now=NOW + 86400 * 4, window=7 * 86400, group_by="source")
        dbname = pg_url.rsplit("/", 1)[1]
        assert {g.key: g.requests for g in snap.groups} == {"laptop": n_file, dbname: n_pg}
    finally:
        m.close()
