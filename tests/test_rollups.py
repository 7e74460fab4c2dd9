"""Rollups and sliding windows against a full re-aggregation of the raw rows.

Random event streams (hypothesis) are written in random batches — timestamps out of order, rows
arriving hours late — through the real batch writer; then every rollup row must equal what SQL
computes from the raw rows of its bucket, and every sliding window the dashboard keeps must equal
a fresh exact computation, after any sequence of writes and refreshes.
"""

from __future__ import annotations

import math
import random
import sqlite3
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llmtop.store.engine import RAW_SUMS_SQL, Spec, Tracker, decompose, total, trim_edges
from llmtop.store.filters import dim_expr, parse_filter
from llmtop.store.histblob import decode_hist
from llmtop.store.maintenance import prune
from llmtop.store.reader import Reader
from llmtop.store.records import CallRecord, pack_id, unpack_id
from llmtop.store.rollup import (
    ALPHA,
    CUBE_DIMS_OF,
    FIELDS,
    GAMMA,
    LATENCY,
    METRIC_COLUMNS,
    OFFSET,
    RESOLUTIONS,
    SLOTS,
    Rollup,
    bin_index,
    bin_indices,
)
from llmtop.store.schema import open_db
from llmtop.store.snapshot import quantile
from llmtop.store.write import Interner, insert_batch

T0 = 1_795_000_000.0  # a Monday-ish epoch; buckets never straddle anything special here
SPAN = 3 * 86400.0

FEATURES = ["chat", "search", None]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-haiku-4-5"]
USERS = ["u1", "u2", "u3", None]


@st.composite
def records(draw: st.DrawFn, span: float = SPAN) -> CallRecord:
    start = T0 + draw(st.floats(0, span, allow_nan=False))
    failed = draw(st.booleans()) and draw(st.booleans())
    ch = not failed and draw(st.integers(0, 9)) == 0
    latency = draw(st.one_of(st.none(), st.floats(0, 120, allow_nan=False)))
    inp = 0 if failed else draw(st.integers(0, 200_000))
    return CallRecord(
        started_at=start,
        ended_at=None if latency is None else start + latency,
        ttft_ms=draw(st.one_of(st.none(), st.floats(0, 5000, allow_nan=False))),
        model=draw(st.sampled_from(MODELS)),
        provider="openai",
        price_key=None,
        status="failure" if failed else "success",
        error_class="RateLimitError" if failed else None,
        error_code="429" if failed else None,
        input_tokens=inp,
        output_tokens=0 if failed else draw(st.integers(0, 4000)),
        cache_read_tokens=draw(st.integers(0, inp)) if inp else 0,
        cost_usd=draw(st.one_of(st.none(), st.floats(0, 5, allow_nan=False))),
        saved_usd=draw(st.floats(0, 1, allow_nan=False)) if ch else None,
        cache_hit=ch,
        is_retry=draw(st.booleans()),
        is_fallback=draw(st.integers(0, 5)) == 0,
        unpriced=draw(st.integers(0, 7)) == 0,
        tags={
            k: v
            for k, v in (
                ("feature", draw(st.sampled_from(FEATURES))),
                ("user", draw(st.sampled_from(USERS))),
                ("customer", draw(st.sampled_from(["acme", None]))),
            )
            if v is not None
        },
    )


def write_batches(db: sqlite3.Connection, recs: list[CallRecord], cuts: list[int]) -> None:
    interner, roll = Interner(), Rollup()
    bounds = sorted({0, len(recs), *(c % (len(recs) + 1) for c in cuts)})
    for a, b in zip(bounds, bounds[1:], strict=False):
        insert_batch(db, interner, recs[a:b], (), roll)


def expected_rollups(db: sqlite3.Connection) -> dict[tuple[Any, ...], tuple[list[float], Counter]]:
    """Every rollup row recomputed from raw rows: sums in SQL, histogram keys row by row."""
    out: dict[tuple[Any, ...], tuple[list[float], Counter]] = {}
    for cube, dims in CUBE_DIMS_OF.items():
        cols = ", ".join(f"c.{d}" for d in dims)
        for res in RESOLUTIONS[cube]:
            b = f"CAST(c.started_at / {res} AS INTEGER) * {res}"
            sel = ", ".join(x for x in (b, cols, *RAW_SUMS_SQL) if x)
            grp = ", ".join(x for x in (b, cols) if x)
            for r in db.execute(f"SELECT {sel} FROM calls c GROUP BY {grp}"):
                key = (cube, res, r[0], *r[1 : 1 + len(dims)])
                out[key] = (list(r[1 + len(dims) :]), Counter())
            metrics = ", ".join(f"c.{m}" for m in METRIC_COLUMNS)
            for r in db.execute(f"SELECT {b}, {cols + ', ' if cols else ''}{metrics} FROM calls c"):
                key = (cube, res, r[0], *r[1 : 1 + len(dims)])
                m = dict(zip(METRIC_COLUMNS, r[1 + len(dims) :], strict=True))
                h = out[key][1]
                if m["ended_at"] is not None:
                    h[LATENCY * SLOTS + bin_index((m["ended_at"] - m["started_at"]) * 1000.0)] += 1
                if cube == 2:  # customer/user cube: latency histogram only
                    continue
                if m["ttft_ms"] is not None:
                    h[1 * SLOTS + bin_index(m["ttft_ms"])] += 1
                if not m["cache_hit"] and not m["status"]:
                    h[2 * SLOTS + bin_index(m["input_tokens"])] += 1
                    h[3 * SLOTS + bin_index(m["output_tokens"])] += 1
    return out


def stored_rollups(db: sqlite3.Connection) -> dict[tuple[Any, ...], tuple[list[float], Counter]]:
    out = {}
    for cube, dims in CUBE_DIMS_OF.items():
        cols = "".join(f", c.{d}" for d in dims)
        fields = ", ".join(f"r.{f}" for f in FIELDS)
        for r in db.execute(
            f"SELECT r.res, r.bucket{cols}, {fields}, r.hist, r.hist2 FROM rollups r"
            f" JOIN combos c ON c.id = r.combo WHERE r.cube = ?",
            (cube,),
        ):
            key = (cube, *r[: 2 + len(dims)])
            hist = Counter(dict(decode_hist(r[-2])))
            assert all(k < SLOTS for k in hist)  # latency in `hist`, the rest in `hist2`
            hist.update(dict(decode_hist(r[-1])))
            out[key] = (list(r[2 + len(dims) : -2]), hist)
    return out


def assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k in want:
        gv, gh = got[k]
        wv, wh = want[k]
        assert gv == pytest.approx(wv, rel=1e-9, abs=1e-9), k
        assert +gh == +wh, k


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    recs=st.lists(records(), min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=6),
)
def test_rollups_equal_full_reaggregation(tmp_path_factory: Any, recs: list, cuts: list) -> None:
    db = open_db(tmp_path_factory.mktemp("r") / "r.db")
    try:
        write_batches(db, recs, cuts)
        assert_same(stored_rollups(db), expected_rollups(db))
    finally:
        db.close()


def test_late_rows_land_in_their_own_bucket(tmp_path: Path) -> None:
    """A row that arrives a day late is added to its old hour, not to the hour it arrived in."""
    db = open_db(tmp_path / "late.db")
    new = CallRecord(started_at=T0 + 86400, ended_at=T0 + 86401, cost_usd=1.0)
    late = CallRecord(started_at=T0 + 10, ended_at=T0 + 11, cost_usd=2.0)
    write_batches(db, [new], [])
    write_batches(db, [late], [])
    rows = dict(
        db.execute("SELECT bucket, spend FROM rollups WHERE cube = 0 AND res = 3600").fetchall()
    )
    hour = int(T0 // 3600) * 3600
    assert rows == {hour: 2.0, hour + 86400: 1.0}
    assert_same(stored_rollups(db), expected_rollups(db))
    db.close()


def test_decompose_covers_the_range_exactly() -> None:
    rnd = random.Random(7)
    for _ in range(500):
        a = rnd.uniform(0, 1e6)
        b = a + rnd.choice([30, 300, 3600, 86400, 7 * 86400]) * rnd.random() * 3
        pieces, raw = decompose(a, b, (60, 3600, 86400))
        spans = sorted([(lo, hi) for _, lo, hi in pieces] + raw)
        assert spans[0][0] == a and spans[-1][1] == b
        for (x0, x1), (y0, _) in zip(spans, spans[1:], strict=False):
            assert x1 == y0 and x0 < x1
        for r, lo, hi in pieces:
            assert lo % r == 0 and hi % r == 0


@settings(max_examples=300, deadline=None)
@given(
    a=st.integers(0, 10**9).map(lambda n: n / 1000),  # timestamps in ms, as rows have them
    length=st.integers(1, 3 * 86400 * 1000).map(lambda n: n / 1000),
    live=st.integers(-7200, 7200),
    first=st.one_of(st.none(), st.integers(0, 11 * 10**8).map(lambda n: n / 1000)),
    res=st.sampled_from([(60, 3600, 86400), (3600, 86400), (86400,)]),
)
def test_trimmed_edges_cover_the_range_exactly(
    a: float, length: float, live: float, first: float | None, res: tuple[int, ...]
) -> None:
    """Buckets added plus raw spans with their signs count every instant of [a, b) once and
    nothing else; no bucket starts before the earliest row; no edge reads more raw time than
    it would have untrimmed (except at the live edge, where the rest of a bucket is the future)."""
    b = a + length
    now = b + live
    pieces, raw = decompose(a, b, res)
    more, spans = trim_edges(raw, min(res), now, first)
    for r, lo, hi in more:
        assert r == min(res) and lo % r == 0 and hi - lo == r
        assert first is not None and lo >= first
    past = sum(min(hi, now) - lo for lo, hi, _ in spans if lo < now)
    assert past <= sum(min(hi, now) - lo for lo, hi in raw if lo < now) + 1e-6
    cuts = sorted(
        {a, b, *(x for _, lo, hi in [*pieces, *more] for x in (lo, hi))}
        | {x for lo, hi, _ in spans for x in (lo, hi)}
    )
    for x0, x1 in zip(cuts, cuts[1:], strict=False):
        x = (x0 + x1) / 2
        n = sum(lo <= x < hi for _, lo, hi in [*pieces, *more])
        n += sum(sign for lo, hi, sign in spans if lo <= x < hi)
        assert n == (1 if a <= x < b else 0), (x, pieces, more, spans)


def exact(db: sqlite3.Connection, a: float, b: float, where: str, params: tuple, dim: str | None):
    """Group sums straight from raw rows, no rollups, no state."""
    key = dim_expr(dim)[0] if dim else "NULL"
    sql = (
        f"SELECT (SELECT value FROM strings WHERE id = {key}) AS k, {', '.join(RAW_SUMS_SQL)}"
        if dim
        else f"SELECT NULL, {', '.join(RAW_SUMS_SQL)}"
    )
    rows = db.execute(
        f"{sql} FROM calls c WHERE c.started_at >= ? AND c.started_at < ? AND {where}"
        + (" GROUP BY k" if dim else ""),
        (a, b, *params),
    ).fetchall()
    return {(r[0],): list(r[1:]) for r in rows if r[1]}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    recs=st.lists(records(span=4 * 3600.0), min_size=1, max_size=80),
    steps=st.lists(
        st.tuples(st.integers(0, 80), st.floats(0, 900, allow_nan=False)), min_size=1, max_size=10
    ),
    window=st.sampled_from([300.0, 1800.0, 3600.0, 7200.0]),
    dim=st.sampled_from(["feature", "user", "model"]),
    filt=st.sampled_from(["", "feature=chat", "user~u*", "status=failure"]),
    hist=st.sampled_from(["latency", "all"]),
    trim=st.booleans(),
)
def test_sliding_windows_equal_a_fresh_exact_read(
    tmp_path_factory: Any,
    recs: list,
    steps: list,
    window: float,
    dim: str,
    filt: str,
    hist: str,
    trim: bool,
) -> None:
    """Write in steps and slide the window forward; after each refresh the tracker's groups equal
    an exact raw computation (late rows included: batches are in random time order). With
    `trim`, cold reads know the earliest row, as the reader's do, so their edges may be whole
    rollup buckets minus the rows outside the window (engine.trim_edges)."""
    path = tmp_path_factory.mktemp("s") / "s.db"
    db = open_db(path)
    reader = Reader(path)
    src = reader.source()
    from llmtop.store.filters import where_sql

    where, params = where_sql(parse_filter(filt))
    keys = frozenset(c.key for c in parse_filter(filt))
    tracker = Tracker(Spec(dims=(dim,), where=where, params=tuple(params), keys=keys, hist=hist))
    interner, roll = Interner(), Rollup()
    now = T0 + 3600.0
    written = 0
    for cut, advance in steps:
        n = min(len(recs), written + cut)
        if n > written:
            insert_batch(db, interner, recs[written:n], (), roll)
            written = n
        now += advance
        reader.conn.execute("BEGIN")
        max_id = reader.max_id()
        first = reader.query("SELECT min(started_at) FROM calls")[0][0] if trim else None
        with src.rows_from(first):  # as Reader.partial reads
            got = tracker.update(src, now - window, now, max_id, now)
        reader.conn.execute("COMMIT")
        want = exact(db, now - window, now, where, tuple(params), dim)
        assert set(got) == set(want)
        for k, w in want.items():
            assert got[k].v == pytest.approx(w, rel=1e-9, abs=1e-9)
        # Each group's latency histogram is exactly the buckets of its rows' latencies.
        key = dim_expr(dim)[0]
        lat_hist: dict[tuple[Any, ...], Counter] = {}
        for k, s, e in db.execute(
            f"SELECT (SELECT value FROM strings WHERE id = {key}), c.started_at, c.ended_at"
            f" FROM calls c WHERE c.started_at >= ? AND c.started_at < ?"
            f" AND c.ended_at IS NOT NULL AND {where}",
            (now - window, now, *params),
        ):
            lat_hist.setdefault((k,), Counter())[bin_index((e - s) * 1000.0)] += 1
        for k, g in got.items():
            assert {b: n for b, n in g.h.items() if n and b < SLOTS} == lat_hist.get(k, {}), k
        # Latency quantile within ALPHA of the exact nearest rank.
        lat = sorted(
            (e - s) * 1000.0
            for s, e in db.execute(
                f"SELECT c.started_at, c.ended_at FROM calls c WHERE c.started_at >= ?"
                f" AND c.started_at < ? AND c.ended_at IS NOT NULL AND {where}",
                (now - window, now, *params),
            )
        )
        q = total(got).quantile(LATENCY, 0.95)
        if lat:
            ex = quantile(lat, 0.95)
            assert q is not None
            assert math.isclose(q, ex, rel_tol=ALPHA * 1.0001, abs_tol=1e-3)
        else:
            assert q is None
    reader.close()
    db.close()


def test_prune_keeps_rollups_and_every_young_row(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    db = open_db(path)
    rnd = random.Random(3)
    now = T0 + 100 * 86400
    recs = [
        CallRecord(started_at=now - rnd.uniform(0, 120 * 86400), ended_at=None, cost_usd=1.0)
        for _ in range(3000)
    ]
    write_batches(db, recs, [500, 1500])
    before = stored_rollups(db)
    young = {
        r[0] for r in db.execute("SELECT id FROM calls WHERE started_at >= ?", (now - 90 * 86400,))
    }
    db.close()
    deleted = prune(path, older_than=90 * 86400, now=now, batch=100)
    db = sqlite3.connect(path)
    left = {r[0] for r in db.execute("SELECT id FROM calls")}
    assert left == young
    assert deleted == 3000 - len(young) > 0
    after = {k: v for k, v in stored_rollups(db).items()}
    # Hour and day rollups of pruned rows remain (minute rollups have their own, shorter, life).
    keep = {k: v for k, v in before.items() if k[1] != 60 or k[2] >= now - 8 * 86400}
    assert_same(after, keep)
    db.close()


def test_reader_snapshot_uses_rollups_and_matches_raw(tmp_path: Path) -> None:
    """A 30-day snapshot agrees with raw SQL, whether computed cold or slid forward."""
    path = tmp_path / "w.db"
    db = open_db(path)
    rnd = random.Random(5)
    now = T0 + 40 * 86400
    recs = [
        CallRecord(
            started_at=now - rnd.uniform(0, 35 * 86400),
            ended_at=None,
            cost_usd=rnd.random(),
            tags={"feature": rnd.choice(["a", "b", "c"])},
        )
        for _ in range(5000)
    ]
    write_batches(db, recs, [1000, 2000, 3000])
    r = Reader(path)
    for step in range(3):
        t = now + step * 37.0
        snap = r.snapshot(now=t, window=30 * 86400, group_by="feature")
        want = exact(db, t - 30 * 86400, t, "1", (), "feature")
        assert {g.key: g.spend for g in snap.groups} == pytest.approx(
            {k[0]: v[1] for k, v in want.items()}, rel=1e-9
        )
        if step == 0:
            assert r._trackers["main"].cold_reads == 1
    assert r._trackers["main"].cold_reads == 1  # the slides never went back to history
    r.close()
    db.close()


def test_writer_prunes_in_the_background(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No cron job: the collector's own writer deletes expired raw rows, a little at a time, and
    leaves the hour rollups that count them."""
    import time

    from llmtop.collector.writer import Writer

    monkeypatch.setenv("LLMTOP_RETENTION", "2d")
    monkeypatch.setenv("LLMTOP_PRUNE_INTERVAL", "0")
    now = time.time()
    w = Writer(tmp_path / "bg.db")
    old = [CallRecord(started_at=now - 5 * 86400 + i, cost_usd=1.0) for i in range(1200)]
    young = [CallRecord(started_at=now - 3600 + i, cost_usd=1.0) for i in range(10)]
    for r in old + young:
        w.submit(r)
    assert w.flush(30)
    w.submit(CallRecord(started_at=now, cost_usd=0.0))
    assert w.flush(30)

    def old_left() -> int:
        with sqlite3.connect(tmp_path / "bg.db") as c:
            return c.execute(
                "SELECT count(*) FROM calls WHERE started_at < ?", (now - 2 * 86400,)
            ).fetchone()[0]

    # Each idle step deletes at most PRUNE_BATCH rows; wait for the steps, not a fixed count.
    deadline = time.monotonic() + 60
    while old_left() and time.monotonic() < deadline:
        time.sleep(0.1)
    w.close()
    db = sqlite3.connect(tmp_path / "bg.db")
    assert old_left() == 0
    assert db.execute("SELECT count(*) FROM calls").fetchone()[0] == 10 + 1
    spend = db.execute("SELECT sum(spend) FROM rollups WHERE cube = 0 AND res = 3600").fetchone()[0]
    assert spend == pytest.approx(1210.0)
    db.close()


def test_histogram_quantiles_are_within_alpha_of_nearest_rank() -> None:
    from llmtop.store.rollup import INPUT, Agg

    rnd = random.Random(11)
    for _ in range(300):
        values = [
            rnd.choice([0, 1, 2, 3, 50, 999, 10**6])
            if rnd.random() < 0.2
            else int(rnd.lognormvariate(6, 2))
            for _ in range(rnd.randint(1, 400))
        ]
        a = Agg()
        for v in values:
            a.add((0,) * len(FIELDS), (INPUT * SLOTS + bin_index(v),))
        s = sorted(values)
        for q in (0.01, 0.5, 0.9, 0.95, 0.99, 1.0):
            got, want = a.quantile(INPUT, q), quantile(s, q)
            assert got is not None and want is not None
            assert abs(got - want) <= ALPHA * want + 1e-9, (q, got, want)


def test_numpy_histogram_merge_equals_the_dict_loop() -> None:
    from llmtop.store.engine import merge_hists
    from llmtop.store.histblob import encode_hist

    rnd = random.Random(2)
    pairs, want = [], {}
    for _ in range(3000):
        key = (rnd.choice(["a", "b", None]),)
        h = {rnd.randrange(4 * SLOTS): rnd.choice([1, 2, 255, 256, 70000]) for _ in range(5)}
        pairs.append((key, encode_hist(h)))  # both count widths occur
        w = want.setdefault(key, Counter())
        w.update(h)
    got = merge_hists(pairs, chunk=700)  # several chunks
    assert {k: Counter(v) for k, v in got.items()} == want


@settings(max_examples=200, deadline=None)
@given(
    xs=st.lists(
        st.one_of(
            st.floats(-1.0, 1e15, allow_nan=False),
            st.integers(0, 10**9).map(float),
            # bucket boundaries themselves, where a last-place difference in log() would show
            st.integers(-OFFSET, SLOTS - OFFSET).map(lambda i: GAMMA**i),
        ),
        max_size=50,
    )
)
def test_vectorised_buckets_equal_bin_index(xs: list[float]) -> None:
    """The writer buckets with numpy; readers and the oracle with math.log, one value at a time."""
    got = bin_indices(np.asarray(xs, dtype=np.float64)).tolist()
    assert got == [bin_index(x) for x in xs]


@given(
    st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper()),
        st.text(min_size=30, max_size=40),
        st.none(),
    )
)
def test_packed_ids_round_trip_exactly(value: str | None) -> None:
    packed = pack_id(value)
    assert unpack_id(packed) == value
    assert isinstance(packed, bytes) == _canonical_uuid(value)


def _canonical_uuid(value: str | None) -> bool:
    try:
        return value is not None and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def test_late_rows_are_read_by_id_not_by_rescanning_the_window(tmp_path: Path) -> None:
    """Under live traffic every refresh finds late rows; reading them through the started_at
    index would re-scan the whole window once per tracker (the refresh went to >1 s at 10M rows
    and 2,000 calls/s). The plan must walk the new ids."""
    path = tmp_path / "late.db"
    db = open_db(path)
    interner, roll = Interner(), Rollup()
    recs = [
        CallRecord(started_at=T0 + i, ended_at=T0 + i + 0.5, cost_usd=0.01, tags={"feature": "f"})
        for i in range(200)
    ]
    insert_batch(db, interner, recs[:100], (), roll)
    reader = Reader(path)
    src = reader.source()
    seen: list[tuple[str, Sequence[Any]]] = []
    q = src.q

    def spy(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        seen.append((sql, params))
        return q(sql, params)

    src.q = spy
    tracker = Tracker(Spec(dims=("feature",), hist="latency"))
    now = T0 + 300
    tracker.update(src, now - 3600, now, reader.max_id(), now)
    insert_batch(db, interner, recs[100:], (), roll)  # arrive late, inside the window held
    seen.clear()
    got = tracker.update(src, now - 3600, now, reader.max_id(), now)
    assert got[("f",)].v[0] == 200
    late = [(sql, p) for sql, p in seen if "c.id > ?" in sql]
    assert len(late) == 2  # the sums and the latency histogram
    for sql, p in late:
        plan = " ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", p))
        assert "INTEGER PRIMARY KEY" in plan and "calls_started_at" not in plan, plan
    reader.close()
    db.close()


def test_sliding_all_metric_histograms_equal_a_fresh_read(tmp_path: Path) -> None:
    """The panels' tracker (hist="all": latency, TTFT, tokens) slid over expiring rows holds the
    same histograms as a tracker reading the new window cold."""
    path = tmp_path / "all.db"
    db = open_db(path)
    rnd = random.Random(3)
    recs = [
        CallRecord(
            started_at=T0 + i * 7.0,
            ended_at=T0 + i * 7.0 + rnd.uniform(0.05, 4.0),
            ttft_ms=rnd.uniform(20, 900) if i % 3 else None,
            input_tokens=rnd.randrange(1, 5000),
            output_tokens=rnd.randrange(1, 900),
            cost_usd=0.001,
            tags={"feature": rnd.choice(["a", "b", "c"])},
        )
        for i in range(1500)
    ]
    insert_batch(db, Interner(), recs, (), Rollup())
    reader = Reader(path)
    src = reader.source()
    spec = Spec(dims=("feature",), hist="all")
    slid = Tracker(spec)
    now = T0 + 1800.0
    max_id = reader.max_id()
    slid.update(src, now - 1800, now, max_id, now)
    for _ in range(6):  # 5 minutes at a time: rows leave at the back, arrive at the front
        now += 300.0
        got = slid.update(src, now - 1800, now, max_id, now)
        want = Tracker(spec).update(src, now - 1800, now, max_id, now)
        assert set(got) == set(want)
        for k in want:
            assert {b: n for b, n in got[k].h.items() if n} == want[k].h, k
    assert slid.cold_reads == 1
    reader.close()
    db.close()


def test_a_prune_under_a_sliding_tracker_reads_it_afresh(tmp_path: Path) -> None:
    """Raw rows deleted under a tracker's range (a prune with a short retention) are not
    subtracted again when the range slides past them: the tracker re-reads, and equals a fresh
    tracker's read of the same range."""
    path = tmp_path / "p.db"
    db = open_db(path)
    recs = [
        CallRecord(
            started_at=T0 + i * 20.0,
            ended_at=T0 + i * 20.0 + 1.0,
            model="gpt-4o",
            cost_usd=0.001 * (1 + i % 7),
            tags={"feature": FEATURES[i % 2]},
        )
        for i in range(3 * 180)  # 3 hours, a row every 20 s
    ]
    insert_batch(db, Interner(), recs, (), Rollup())
    db.commit()
    reader = Reader(path)
    src = reader.source()
    spec = Spec(dims=("feature",), fields=(1,))
    slid, now = Tracker(spec), T0 + 2.5 * 3600

    def read(t: Tracker, a: float, b: float) -> dict:
        reader.conn.execute("BEGIN")
        first = reader.query("SELECT min(started_at) FROM calls")[0][0]
        with src.rows_from(first):
            got = t.update(src, a, b, reader.max_id(), now)
        reader.conn.execute("COMMIT")
        return {k: (g.v[0], g.v[1]) for k, g in got.items()}

    read(slid, T0 + 600, T0 + 4200)
    db.execute("DELETE FROM calls WHERE started_at < ?", (T0 + 1200,))  # as prune_step does
    db.commit()
    got = read(slid, T0 + 900, T0 + 4500)
    want = read(Tracker(spec), T0 + 900, T0 + 4500)
    assert got.keys() == want.keys() and got
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9), k
    assert slid.cold_reads == 2  # read afresh once; the next slide slides
    read(slid, T0 + 960, T0 + 4560)
    assert slid.cold_reads == 2
    reader.close()
    db.close()
