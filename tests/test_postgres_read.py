"""The shared PostgreSQL store, read side: every panel and grouping of the dashboard's snapshot,
the requests list, the detail view and the alert reads give the same answers on both backends
for the same events; incremental reads stay exact with interleaved writers."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from llmtop.pricing import cache_read_saving
from llmtop.store.filters import DIMENSIONS, parse_filter
from llmtop.store.reader import Reader

from tests.test_postgres_write import NOW, events, write_batches

FILTERS = (
    "",
    "feature=search",
    "feature!=search",
    "model~gpt-4o*",
    "model!~claude*",
    "customer=(none)",
    "status=failure",
    "region=eu",
    "region!=eu",
    "region~e?",
    "team=core customer~[ag]*",
)


def same(a: Any, b: Any, where: str = "") -> None:
    """Equal, floats within 1e-9 relative (sums may add in another order)."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None, (where, a, b)
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (where, a, b)
    else:
        assert a == b, (where, a, b)


@pytest.fixture(scope="module")
def both(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    evs = events(2500, seed=11)
    db = tmp_path_factory.mktemp("lite") / "same.db"
    url = pg_server.create_database()
    assert write_batches(db, evs, 400) == write_batches(url, evs, 400)
    return db, url


@pytest.mark.parametrize("window", [300.0, 3600.0, 86400.0, 7 * 86400.0])
def test_every_panel_and_grouping_is_the_same_on_both_backends(
    both: tuple[Path, str], window: float
) -> None:
    db, url = both
    lite = Reader(db, savings=cache_read_saving)
    pg = Reader(url, savings=cache_read_saving)
    assert type(pg).__name__ == "PgReader"
    now = NOW - 2 * 86400 + 1234.5  # inside the stream, not on a bucket edge
    try:
        assert lite.dimensions() == pg.dimensions()
        assert "region" in pg.dimensions()
        seen = 0
        for group_by in (*DIMENSIONS, "region"):
            for text in FILTERS if group_by in ("feature", "region") else ("", "team=core"):
                clauses = parse_filter(text)
                a = lite.snapshot(now=now, window=window, group_by=group_by, clauses=clauses)
                b = pg.snapshot(now=now, window=window, group_by=group_by, clauses=clauses)
                seen += a.totals.requests
                same(dataclasses.replace(a, max_id=0), dataclasses.replace(b, max_id=0),
                     f"{group_by} {text!r}")  # fmt: skip
            # The requests list (ids differ per backend: compare what the rows say).
            ra = lite.requests(now=now, window=window, clauses=clauses, limit=50)
            rb = pg.requests(now=now, window=window, clauses=clauses, limit=50)
            same(
                [dataclasses.replace(r, id=0) for r in ra],
                [dataclasses.replace(r, id=0) for r in rb],
            )
        assert seen > 0
        # Windows sliding forward reuse the trackers: still the same.
        for step in (30.0, 90.0, 700.0):
            a = lite.snapshot(now=now + step, window=window)
            b = pg.snapshot(now=now + step, window=window)
            same(dataclasses.replace(a, max_id=0), dataclasses.replace(b, max_id=0), f"+{step}")
        assert lite.spend_between(now - window, now) == pytest.approx(
            pg.spend_between(now - window, now), rel=1e-9
        )
    finally:
        lite.close()
        pg.close()


def test_detail_and_counts_are_the_same_on_both_backends(both: tuple[Path, str]) -> None:
    db, url = both
    lite, pg = Reader(db), Reader(url)
    try:
        now = NOW
        ra = lite.requests(now=now, window=7 * 86400, limit=5)
        rb = pg.requests(now=now, window=7 * 86400, limit=5)
        for x, y in zip(ra, rb, strict=True):
            da, dpg = lite.detail(x.id), pg.detail(y.id)
            assert da is not None and dpg is not None
            fa, fb = dict(da.fields), dict(dpg.fields)
            fa.pop("id"), fb.pop("id")
            same(list(fa.items()), list(fb.items()))
            same([dataclasses.replace(r, id=0) for r in da.attempts],
                 [dataclasses.replace(r, id=0) for r in dpg.attempts])  # fmt: skip
        assert pg.detail(10**9) is None
        assert lite.dropped() == pg.dropped() == 0
        assert lite.invalid(0, NOW + 1) == pg.invalid(0, NOW + 1)
    finally:
        lite.close()
        pg.close()


# --- incremental reads with concurrent writers ----------------------------------------------------

WRITERS = 3


@pytest.fixture(scope="module")
def fleet_db(pg_server: Any) -> str:
    return pg_server.create_database()


_example = iter(range(1, 10**6))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
# The case that defeats an id marker: writer 0 takes the smaller ids, writer 1 commits first.
@example(ops=[("stage", 0, 5), ("stage", 1, 5), ("finish", 1, 0), ("read", 0, 0), ("finish", 0, 0)])
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["stage", "finish", "read"]),
            st.integers(0, WRITERS - 1),
            st.integers(1, 30),
        ),  # fmt: skip
        min_size=4,
        max_size=24,
    )
)
def test_interleaved_writers_never_hide_a_row_from_incremental_reads(
    fleet_db: str, ops: list[tuple[str, int, int]]
) -> None:
    """Writers copy rows in (ids taken) and commit in any order; a reader refreshing between
    any two steps must count exactly the committed rows. With `id > last id` as the marker, a
    batch that took smaller ids but committed after a read is never counted."""
    from llmtop.store.pg_db import PgUrl
    from llmtop.store.pg_sink import PostgresSink

    from tests.pg_fleet import record

    base = NOW + next(_example) * 10_000.0  # each example its own stretch of time
    url = PgUrl(fleet_db)
    sinks = [PostgresSink(url) for _ in range(WRITERS)]
    staged: dict[int, tuple[Any, int]] = {}
    committed = 0
    rng = random.Random(len(ops))
    reader = Reader(url)
    i = 0

    def read() -> None:
        snap = reader.snapshot(now=base + 5000, window=5000)
        assert snap.totals.requests == committed

    try:
        read()
        for op, w, n in [*ops, *(("finish", w, 0) for w in range(WRITERS)), ("read", 0, 0)]:
            if op == "stage" and w not in staged:
                recs = [record(rng, f"w{w}", i + k, base + 1 + (i + k) % 4000) for k in range(n)]
                i += n
                g = sinks[w].steps(sinks[w].connection(), recs)
                next(g)  # rows copied in, ids taken, not committed
                staged[w] = (g, n)
            elif op == "finish" and w in staged:
                g, n = staged.pop(w)
                for _ in g:
                    pass
                committed += n
            elif op == "read":
                read()
    finally:
        for g, _ in staged.values():
            g.close()
        for s in sinks:
            s.close()
        reader.close()


def test_a_reader_reconnects_after_the_server_restarts(pg_url: str, pg_server: Any) -> None:
    """The dashboard's reader kept its closed connection after a restart: "● live" over a
    frozen screen, `the connection is closed` on every refresh, until llmtop was restarted.
    The read that meets the outage fails (one line); the next one reads again."""
    from llmtop.store.db import DatabaseError

    n = write_batches(pg_url, events(50, start=NOW - 600), 25)
    r = Reader(pg_url)
    try:
        assert r.snapshot(now=NOW + 4 * 86400, window=7 * 86400).totals.requests == n
        pg_server.stop()
        pg_server.restart()
        with pytest.raises(DatabaseError):
            r.snapshot(now=NOW + 4 * 86400, window=7 * 86400)
        write_batches(pg_url, events(10, start=NOW - 300, seed=9), 10)
        assert r.snapshot(now=NOW + 4 * 86400, window=7 * 86400).totals.requests == n + 10
    finally:
        r.close()
