"""Several databases (one per host or service) merged into one read-only view."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from llmtop.store.filters import parse_filter
from llmtop.store.reader import MultiReader, Reader
from llmtop.tui.navigation import View
from llmtop.tui.widgets.requests_table import RequestsTable
from llmtop.tui.widgets.top_table import TopTable

from llmtop.cli import main
from tests.tui_fixtures import NOW, build, expected_cost, fixture_specs, make_app, settle


@pytest.fixture
def two_dbs(tmp_path: Path) -> tuple[Path, Path, list[dict], list[dict]]:
    a, b = tmp_path / "east" / "api.db", tmp_path / "west" / "worker.db"
    a.parent.mkdir()
    b.parent.mkdir()
    specs_a = build(a)
    specs_b = [dict(s, feature="batch-" + s["feature"]) for s in fixture_specs()[:20]]
    build(b, specs_b)
    return a, b, specs_a, specs_b


def test_merged_snapshot_adds_up_and_has_a_source_dimension(two_dbs) -> None:
    a, b, specs_a, specs_b = two_dbs
    spend_a = sum(expected_cost(s) for s in specs_a)
    spend_b = sum(expected_cost(s) for s in specs_b)
    # Read-only: the files' modes are not even writable, and nothing needs them to be.
    for p in (a, b):
        os.chmod(p, stat.S_IRUSR)
    m = MultiReader([a, b])
    snap = m.snapshot(now=NOW, window=3600, group_by="source")
    assert snap.totals.requests == len(specs_a) + len(specs_b)
    assert snap.totals.spend == pytest.approx(spend_a + spend_b, rel=1e-9)
    assert {g.key: g.spend for g in snap.groups} == pytest.approx(
        {"api": spend_a, "worker": spend_b}, rel=1e-9
    )
    assert "source" in snap.dimensions
    # Group by a tag: values from both files meet in one table.
    snap = m.snapshot(now=NOW, window=3600, group_by="feature")
    assert {g.key for g in snap.groups} >= {"chat", "batch-chat"}
    # A source filter narrows to one file.
    only = m.snapshot(now=NOW, window=3600, clauses=parse_filter("source=worker"))
    assert only.totals.spend == pytest.approx(spend_b, rel=1e-9)
    none = m.snapshot(now=NOW, window=3600, clauses=parse_filter("source=nowhere"))
    assert none.totals.requests == 0
    # Row ids collide across files; requests and details keep them apart by source.
    rows = m.requests(now=NOW, window=3600)
    assert {r.source for r in rows} == {"api", "worker"}
    assert len(rows) == len(specs_a) + len(specs_b)
    r0 = next(r for r in rows if r.source == "worker")
    d = m.detail(r0.id, "worker")
    assert d is not None and dict(d.fields)["source"] == "worker"
    assert dict(d.fields)["started_at"] == r0.started_at
    m.close()


def test_same_file_names_get_distinct_labels(tmp_path: Path) -> None:
    paths = []
    for host in ("h1", "h2"):
        p = tmp_path / host / "llmtop.db"
        p.parent.mkdir()
        build(p, fixture_specs()[:3])
        paths.append(p)
    m = MultiReader(paths)
    assert m.labels == ["h1/llmtop", "h2/llmtop"]
    m.close()


async def test_app_merges_files_and_drills_into_a_source(two_dbs) -> None:
    a, b, specs_a, specs_b = two_dbs
    app = make_app(a, more_dbs=[b])
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        # Alert state needs a writable file: off, and said so.
        assert not app.dashboard.alerts_enabled
        assert app.dashboard.snapshot is not None
        assert app.dashboard.snapshot.totals.requests == len(specs_a) + len(specs_b)
        app.dashboard.go(View(group_by="source"))
        await settle(app, pilot)
        table = app.query_one(TopTable)
        assert set(table.groups) == {"api", "worker"}
        assert "2 databases" in str(app.query_one("#topbar").render())
        # source=worker → ... → the requests of that file only, and a detail that opens.
        app.dashboard.go(View(path=(parse_filter("source=worker")[0],), requests=True))
        await settle(app, pilot)
        rt = app.query_one(RequestsTable)
        assert rt.row_count == len(specs_b)
        assert all(k.startswith("worker|") for k in rt.ids)
        rt.focus()
        await pilot.press("enter")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "DetailScreen"


def test_cli_refuses_a_glob_that_matches_nothing(tmp_path: Path, capsys) -> None:
    assert main(["--db", str(tmp_path / "*.db")]) == 2
    assert "no file matches" in capsys.readouterr().err


def test_an_old_unmigrated_file_is_named_not_crashed_on(tmp_path: Path) -> None:
    import sqlite3

    from llmtop.store.db import DatabaseError

    p = tmp_path / "old.db"
    conn = sqlite3.connect(p)
    from llmtop.store.schema import MIGRATIONS

    conn.execute("CREATE TABLE _llmtop_migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    for fn in MIGRATIONS[:3]:
        fn(conn)
        conn.execute("INSERT INTO _llmtop_migrations VALUES (?, 0)", (fn.__name__,))
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="older llmtop"):
        MultiReader([p])
    Reader(p).close()  # opened on its own (read-write), it upgrades...
    MultiReader([p]).close()  # ...and then merges fine
