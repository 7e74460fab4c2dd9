"""The Reader (store/reader.py): its public seam (query, chunks, strings, source,
read_transaction), what it reads back, and its one-sentence errors."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from llmtop.pricing import cache_read_saving
from llmtop.store.db import DatabaseError
from llmtop.store.filters import DIMENSIONS, parse_filter
from llmtop.store.reader import Reader, source_labels

from tests.builders import payload, write
from tests.tui_fixtures import NOW, build, expected_cost


@pytest.fixture
def db(llmtop_db: Path) -> tuple[Path, list[dict]]:
    return llmtop_db, build(llmtop_db)


def test_query_strings_and_chunks_read_the_file(db) -> None:
    path, specs = db
    r = Reader(path)
    try:
        ((n,),) = r.query("SELECT count(*) FROM calls")
        assert n == len(specs) == r.max_id()
        ids = {i for (i,) in r.query("SELECT DISTINCT feature FROM calls")}
        assert set(r.strings(ids).values()) == {"chat", "summarize", "classify"}
        assert r.string(next(iter(ids))) in {"chat", "summarize", "classify"}
        assert r.string(None) is None
        chunks = list(r.chunks("SELECT id FROM calls ORDER BY id", (), 25))
        assert [len(c) for c in chunks] == [25, 25, 12]
        assert [i for c in chunks for (i,) in c] == list(range(1, len(specs) + 1))
    finally:
        r.close()


def test_strings_of_more_ids_than_one_statement_may_bind(llmtop_db: Path) -> None:
    features = [f"f{i}" for i in range(1200)]
    write(llmtop_db, [payload(start=NOW - 100, feature=f) for f in features])
    r = Reader(llmtop_db)
    try:
        ids = {i for (i,) in r.query("SELECT feature FROM calls")}
        assert len(ids) == 1200 and sorted(r.strings(ids).values()) == sorted(features)
    finally:
        r.close()


def test_read_transaction_is_one_snapshot_and_nests(db) -> None:
    path, specs = db
    r = Reader(path)
    try:
        with r.read_transaction():
            before = r.max_id()
            write(path, [payload(start=NOW - 10, feature="late")])  # another writer commits
            with r.read_transaction():  # joins the outer one
                assert r.max_id() == before
            assert r.conn.in_transaction
        assert not r.conn.in_transaction
        assert r.max_id() == before + 1
    finally:
        r.close()


def test_snapshot_totals_and_groups_match_what_was_written(db) -> None:
    path, specs = db
    r = Reader(path)
    try:
        snap = r.snapshot(now=NOW, window=3600, group_by="feature")
        assert snap.totals.requests == len(specs)
        assert snap.totals.spend == pytest.approx(sum(expected_cost(s) for s in specs), rel=1e-9)
        by = {g.key: g.spend for g in snap.groups}
        for f in ("chat", "summarize", "classify"):
            want = sum(expected_cost(s) for s in specs if s["feature"] == f)
            assert by[f] == pytest.approx(want, rel=1e-9)
        assert snap.dimensions[: len(DIMENSIONS)] == DIMENSIONS
        only = r.snapshot(now=NOW, window=3600, clauses=parse_filter("feature=chat"))
        assert only.totals.spend == pytest.approx(by["chat"], rel=1e-9)
        assert r.spend_between(NOW - 3600, NOW, parse_filter("feature=chat")) == pytest.approx(
            by["chat"], rel=1e-9
        )
    finally:
        r.close()


def test_prompt_cache_savings_are_priced_by_what_the_caller_passes(db) -> None:
    """The store never imports pricing: without `savings` the cached reads count as $0 saved;
    with pricing's, they are the full input rate minus the cached rate."""
    path, specs = db
    cached = sum(s.get("cached", 0) for s in specs if s.get("status") != "failure")
    plain, priced = Reader(path), Reader(path, savings=cache_read_saving)
    try:
        assert plain.snapshot(now=NOW, window=3600).cache.saved_prompt_cache == 0.0
        got = priced.snapshot(now=NOW, window=3600).cache.saved_prompt_cache
        by_model: dict[str, int] = {}
        for s in specs:
            if s.get("status") != "failure" and s.get("cached"):
                by_model[s["model"]] = by_model.get(s["model"], 0) + s["cached"]
        want = sum(cache_read_saving(m, n) or 0.0 for m, n in by_model.items())
        assert cached > 0 and got == pytest.approx(want, rel=1e-9) and got > 0
        calls: list[tuple[str, int]] = []
        seen = Reader(path, savings=lambda k, n: calls.append((k, n)) or None)
        assert seen.snapshot(now=NOW, window=3600).cache.saved_prompt_cache == 0.0  # None: unpriced
        assert sorted(calls) == sorted(by_model.items())
        seen.close()
    finally:
        plain.close()
        priced.close()


def test_requests_newest_first_and_detail_with_its_attempts(llmtop_db: Path) -> None:
    write(
        llmtop_db,
        [
            payload(start=NOW - 30, trace_id="t-1", status="failure", error_class="RateLimitError", error_code="429", feature="chat"),
            payload(start=NOW - 20, trace_id="t-1", retries=1, feature="chat"),
            payload(start=NOW - 10, feature="other"),
        ],
    )  # fmt: skip
    r = Reader(llmtop_db)
    try:
        rows = r.requests(now=NOW, window=3600)
        assert [x.feature for x in rows] == ["other", "chat", "chat"]
        assert [x.status for x in rows] == ["success", "success", "failure"]
        assert r.requests(now=NOW, window=3600, limit=1) == rows[:1]
        chat = r.requests(now=NOW, window=3600, clauses=parse_filter("feature=chat"))
        assert len(chat) == 2
        d = r.detail(chat[0].id)
        assert d is not None and dict(d.fields)["feature"] == "chat"
        assert [a.attempt for a in d.attempts] == [1, 2]  # the trace's attempts, oldest first
        assert r.detail(10**9) is None
    finally:
        r.close()


def test_dimensions_include_the_tags_of_recent_rows(llmtop_db: Path) -> None:
    write(llmtop_db, [payload(start=NOW - 5, feature="x", llmtop={"region": "eu"})])
    r = Reader(llmtop_db)
    try:
        dims = r.dimensions()
        assert dims[: len(DIMENSIONS)] == DIMENSIONS and "region" in dims
        snap = r.snapshot(now=NOW, window=3600, group_by="region")
        assert [g.key for g in snap.groups] == ["eu"]
    finally:
        r.close()


def test_errors_are_one_sentence_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(DatabaseError, match="no such database"):
        Reader(missing, readonly=True)
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(DatabaseError, match=f"{junk}: the file is not a valid llmtop/SQLite"):
        Reader(junk)
    r = Reader(tmp_path / "ok.db")
    try:
        with pytest.raises(DatabaseError, match=str(tmp_path / "ok.db")):
            r.query("SELECT nope FROM calls")
        with pytest.raises(DatabaseError, match=str(tmp_path / "ok.db")):
            list(r.chunks("SELECT nope FROM calls"))
    finally:
        r.close()


def test_a_readonly_reader_never_writes(db) -> None:
    path, _ = db
    r = Reader(path, readonly=True)
    try:
        with pytest.raises(DatabaseError, match="read-only"):
            r.query("DELETE FROM calls")
    finally:
        r.close()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM calls").fetchone()[0] > 0


def test_source_labels_are_short_and_distinct() -> None:
    paths = [Path("/a/api.db"), Path("/b/api.db"), Path("/c/worker.db")]
    assert source_labels(paths) == ["a/api", "b/api", "worker"]
    assert source_labels([Path("/x/a.db"), Path("/x/a.db")]) == ["x/a", "x/a'"]


class CountingReader(Reader):
    """Counts the rows a snapshot's statements return: a view kept warm slides (the rows that
    moved, none here), a cold one re-reads its window's rollups and rows."""

    statements = 0

    def query(self, sql, params=()):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN201
        rows = super().query(sql, params)
        self.statements += len(rows)
        return rows


def test_a_view_read_cold_keeps_the_warm_views_warm(db) -> None:
    path, _ = db
    guesses = [parse_filter(f"customer=cust-{i}") for i in range(12)]
    dims = ["model", "user", "team", "customer"]
    costs = {}
    for warm in (False, True):
        r = CountingReader(path)
        try:
            r.snapshot(now=NOW, window=3600)
            r.statements = 0
            r.snapshot(now=NOW, window=3600)
            warm_cost = r.statements
            for i, clauses in enumerate(guesses):
                cold = r.snapshot(
                    now=NOW, window=3600, group_by=dims[i % 4], clauses=clauses, warm=warm
                )
                fresh = Reader(path).snapshot(
                    now=NOW, window=3600, group_by=dims[i % 4], clauses=clauses
                )
                assert cold.groups == fresh.groups and cold.totals == fresh.totals
            r.statements = 0
            r.snapshot(now=NOW, window=3600)
            costs[warm] = (warm_cost, r.statements)
        finally:
            r.close()
    # Read with warm=False, twelve other views leave the view on screen as warm as before; read
    # warm, they push it out of the warm set (WARM_VIEWS) and it is read cold again.
    assert costs[False][1] == costs[False][0]
    assert costs[True][1] > costs[True][0]


def test_averages_and_the_month_projection_cover_only_the_files_own_time(
    llmtop_db: Path,
) -> None:
    """A 7-day window over a two-day-old file averaged its spend over seven days, and the month
    projection of a file started mid-month spread its spend over the whole month so far."""
    from datetime import datetime, timedelta

    local = datetime.fromtimestamp(NOW)
    month0 = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    next_month = (datetime.fromtimestamp(month0) + timedelta(days=32)).replace(day=1)
    start = NOW - 2 * 86400
    assert start > month0  # the fixture's clock is mid-month
    write(llmtop_db, [payload(start=start + i * 3600, input_tokens=1000) for i in range(48)])
    r = Reader(llmtop_db, readonly=True)
    try:
        snap = r.snapshot(now=NOW, window=7 * 86400)
        spend = snap.totals.spend
        assert snap.burn.per_hour_window == pytest.approx(spend / 48, rel=1e-9)
        assert snap.burn.month_projection == pytest.approx(
            spend + spend / (NOW - start) * (next_month.timestamp() - NOW), rel=1e-9
        )
        # Under an hour of the month covered: no projection rather than one from minutes.
        young = r.snapshot(now=start + 1800, window=3600)
        assert young.burn.month_projection is None
    finally:
        r.close()
