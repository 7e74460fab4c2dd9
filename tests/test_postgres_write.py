"""The shared PostgreSQL store, write side: the same rows and rollups as SQLite for the same
events, many writer processes at once, and a server outage (tests/pg.py starts a real server)."""

from __future__ import annotations

import math
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from llmtop.store.histblob import decode_hist
from llmtop.store.rollup import COMBO_COLUMNS, FIELDS

from tests.builders import payload, write
from tests.pg import PgServer

NOW = 1_767_000_000.0
ROOT = Path(__file__).resolve().parents[1]


def events(n: int, seed: int = 7, start: float = NOW - 3 * 86400) -> list[dict[str, Any]]:
    """A mixed stream: models, tags, failures, retries, caching, streams, extra tags, users."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        failed = rng.random() < 0.12
        tags: dict[str, Any] = {
            "feature": rng.choice(["search", "chat", "summarise", None]),
            "team": rng.choice(["core", "growth"]),
            "customer": rng.choice(["acme", "globex", "initech", None]),
            "user": f"u{rng.randrange(40)}",
        }
        if rng.random() < 0.3:
            tags["llmtop"] = {"region": rng.choice(["eu", "us"])}  # an extra tag (tags_json)
        out.append(
            payload(
                start=start + i * (3 * 86400 / n) + rng.random(),
                latency=rng.uniform(0.05, 4.0),
                model=rng.choice(["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet-20241022"]),
                provider=rng.choice(["openai", "anthropic"]),
                input_tokens=rng.randrange(600, 5000),
                output_tokens=rng.randrange(0, 2000),
                cached=rng.choice([0, 0, 64, 512]),
                status="failure" if failed else "success",
                error_class="RateLimitError" if failed else None,
                error_code="429" if failed else None,
                stream=rng.random() < 0.3,
                ttft=rng.uniform(0.01, 0.5) if rng.random() < 0.5 else None,
                retries=1 if rng.random() < 0.05 else 0,
                **{k: v for k, v in tags.items() if v is not None},
            )
        )
    return out


def write_batches(db: str | Path, evs: list[dict[str, Any]], batch: int) -> int:
    """Like builders.write, in batches of `batch` rows (so rollup rows are merged, not only
    inserted) from a thread writer."""
    from llmtop.collector.core import CollectorCore
    from llmtop.collector.writer import Writer

    w = Writer(db, batch_size=batch, sink="thread")
    core = CollectorCore(db, writer=w)
    for i, p in enumerate(evs):
        core.log(p, None, None, None, p["standard_logging_object"]["status"] == "failure")
        if i % batch == batch - 1:
            assert w.flush(30), w.last_error
    assert w.flush(30), w.last_error
    w.close()
    return w.written


def pg_rows(url: str, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def requests_of(rows: list[tuple[Any, ...]], names: list[str]) -> list[dict[str, Any]]:
    """The `requests` view's rows without the id (ids are per backend), in a stable order."""
    out = [{k: v for k, v in zip(names, r, strict=True) if k != "id"} for r in rows]
    return sorted(out, key=lambda d: (d["started_at"], d["litellm_call_id"] or ""))


def rollups_sqlite(db: Path) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        names = dict(conn.execute("SELECT id, value FROM strings").fetchall())
        combos = {
            r[0]: r[1:] for r in conn.execute(f"SELECT id, {', '.join(COMBO_COLUMNS)} FROM combos")
        }
        rows = conn.execute(
            f"SELECT cube, res, bucket, combo, {', '.join(FIELDS)}, hist, hist2 FROM rollups"
        ).fetchall()
    finally:
        conn.close()
    return _named(rows, names, combos)


def rollups_pg(url: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    names = dict(pg_rows(url, "SELECT id, value FROM strings"))
    cols = ", ".join('"user"' if c == "user" else c for c in COMBO_COLUMNS)
    combos = {r[0]: r[1:] for r in pg_rows(url, f"SELECT id, {cols} FROM combos")}
    rows = pg_rows(
        url, f"SELECT cube, res, bucket, combo, {', '.join(FIELDS)}, hist, hist2 FROM rollups"
    )
    return _named(rows, names, combos)


def _named(rows: Any, names: dict[int, str], combos: dict[int, Any]) -> dict[Any, Any]:
    out = {}
    nf = len(FIELDS)
    for r in rows:
        # status is a number, not a string id: keep it as it is.
        combo = tuple(
            v if c == "status" else names.get(v)
            for c, v in zip(COMBO_COLUMNS, combos[r[3]], strict=True)
        )
        hist = tuple(dict(decode_hist(bytes(b))) if b else {} for b in r[4 + nf :])
        out[(r[0], r[1], r[2], combo)] = (tuple(r[4 : 4 + nf]), hist)
    return out


def test_one_event_stream_gives_the_same_rows_and_rollups_in_sqlite_and_postgres(
    pg_url: str, tmp_path: Path
) -> None:
    evs = events(1500)
    db = tmp_path / "same.db"
    n = write(db, evs)
    # Postgres in many small batches, so rollup rows and histograms are merged, not only added.
    assert write_batches(pg_url, evs, 97) == n
    assert pg_rows(pg_url, "SELECT count(*) FROM batches")[0][0] >= 15
    with sqlite3.connect(db) as conn:
        cur = conn.execute("SELECT * FROM requests")
        lite = requests_of(cur.fetchall(), [d[0] for d in cur.description])
    with psycopg.connect(pg_url) as conn:
        cur = conn.execute("SELECT * FROM requests")
        pg = requests_of(cur.fetchall(), [d.name for d in cur.description])
    assert len(lite) == len(pg) == n
    assert list(lite[0]) == list(pg[0])  # the same columns in the same order
    for a, b in zip(lite, pg, strict=True):
        assert a == b
    lr, pr = rollups_sqlite(db), rollups_pg(pg_url)
    assert lr.keys() == pr.keys()
    for k in lr:
        (fa, ha), (fb, hb) = lr[k], pr[k]
        assert ha == hb, k
        for name, x, y in zip(FIELDS, fa, fb, strict=True):
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12), (k, name, x, y)


def test_rollup_shards_add_up_and_vacuum_folds_them_into_one_row_per_key(
    pg_url: str, tmp_path: Path
) -> None:
    """A batch whose writer finds shard 0 busy merges into shard 1 (store/pg_sink.py); readers
    add the shards up, and `llmtop vacuum` folds them back (store/pg_maintenance.py)."""
    from llmtop.store.db import resolve_db_path
    from llmtop.store.maintenance import vacuum
    from llmtop.store.pg_schema import LOCK_NS, LOCK_SHARD0
    from llmtop.store.reader import Reader

    evs = events(600, start=NOW - 2 * 86400)
    db = tmp_path / "same.db"
    write(db, evs)
    with psycopg.connect(pg_url, autocommit=True) as other:
        # Another writer in the middle of its merge into shard 0, for the first half.
        other.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NS, LOCK_SHARD0))
        write_batches(pg_url, evs[:300], 100)
        other.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NS, LOCK_SHARD0))
    write_batches(pg_url, evs[300:], 100)
    shards = dict(pg_rows(pg_url, "SELECT shard, count(*) FROM rollups GROUP BY 1"))
    assert set(shards) == {0, 1}
    lite, pg = Reader(db), Reader(resolve_db_path(pg_url))
    try:
        for window in (3600.0, 7 * 86400.0):  # minutes and hours, then days from rollups
            a = lite.snapshot(now=NOW, window=window, group_by="model")
            b = pg.snapshot(now=NOW, window=window, group_by="model")
            assert a.totals.requests == b.totals.requests > 0
            assert math.isclose(a.totals.spend, b.totals.spend, rel_tol=1e-9)
            assert [(g.key, g.requests, g.p95_latency_ms) for g in a.groups] == [
                (g.key, g.requests, g.p95_latency_ms) for g in b.groups
            ]
    finally:
        lite.close()
        pg.close()
    vacuum(resolve_db_path(pg_url))
    assert pg_rows(pg_url, "SELECT count(*) FROM rollups WHERE shard > 0")[0][0] == 0
    lr, pr = rollups_sqlite(db), rollups_pg(pg_url)
    assert lr.keys() == pr.keys()
    for k in lr:
        (fa, ha), (fb, hb) = lr[k], pr[k]
        assert ha == hb, k
        for name, x, y in zip(FIELDS, fa, fb, strict=True):
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12), (k, name, x, y)


def fleet(url: str, hosts: list[str], n: int) -> list[tuple[int, int]]:
    """Start one writer process per host name, all at once; (written, dropped) of each."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.pg_fleet", url, h, str(n)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for h in hosts
    ]
    out = []
    for p in procs:
        so, se = p.communicate(timeout=300)
        assert p.returncode == 0, se
        written, dropped, *_ = so.split()
        out.append((int(written), int(dropped)))
    return out


def test_four_writer_processes_on_two_hosts_write_every_call_exactly_once(pg_url: str) -> None:
    n = 5000  # the size: 4 x 5,000 = 20,000 rows (about 4 s)
    # Two "hosts", two processes each: every one has its own connection, interns the same
    # strings and upserts the same rollup rows as the others at the same moment.
    res = fleet(pg_url, ["a", "a2", "b", "b2"], n)
    assert res == [(n, 0)] * 4
    assert pg_rows(pg_url, "SELECT count(*), count(DISTINCT correlation_id) FROM calls")[0] == (
        4 * n,
        4 * n,
    )
    # The rollups count every row once: the all-cube's minute buckets add up to the rows.
    assert pg_rows(pg_url, "SELECT sum(n) FROM rollups WHERE cube = 0 AND res = 60")[0][0] == 4 * n
    assert (
        pg_rows(pg_url, "SELECT sum(n) FROM rollups WHERE cube = 1 AND res = 3600")[0][0] == 4 * n
    )
    # No string or combination was interned twice.
    assert pg_rows(pg_url, "SELECT count(*) - count(DISTINCT value) FROM strings")[0][0] == 0
    assert pg_rows(pg_url, "SELECT count(*) - count(DISTINCT (cube, key)) FROM combos")[0][0] == 0
    # Commit sequence: one per batch, no two alike, every row's batch recorded.
    assert pg_rows(pg_url, "SELECT sum(rows) FROM batches")[0][0] == 4 * n


def test_server_stopped_mid_run_rows_plus_counted_drops_equal_calls(
    pg_url: str, pg_server: PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    from llmtop.collector.writer import Writer

    from tests.pg_fleet import record

    rng = random.Random(3)
    # A small buffer, so the outage overflows it and the loss is counted, not silent.
    w = Writer(pg_url, max_queue=400, flush_interval=0.05)
    calls = 0
    t0 = NOW
    for _ in range(300):
        w.submit(record(rng, "h", calls, t0 + calls))
        calls += 1
    assert w.flush(30)
    pg_server.stop()
    try:
        for i in range(1500):  # the app keeps calling while the server is gone
            w.submit(record(rng, "h", calls, t0 + calls))
            calls += 1
            if i % 100 == 0:
                time.sleep(0.05)
        assert not w.flush(0.5)
        assert w.last_error and "127.0.0.1" in w.last_error
    finally:
        pg_server.restart()
    for _ in range(200):
        w.submit(record(rng, "h", calls, t0 + calls))
        calls += 1
    assert w.flush(30), w.last_error
    w.close()
    rows = pg_rows(pg_url, "SELECT count(*) FROM calls")[0][0]
    dropped = pg_rows(pg_url, "SELECT coalesce(sum(count), 0) FROM drops")[0][0]
    assert w.dropped > 0 and rows > 300 + 200
    assert rows + dropped == calls
    assert dropped == w.dropped
    assert any("cannot write to the database" in r.message for r in caplog.records)
