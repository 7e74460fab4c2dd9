"""Rollups: per-minute/hour/day aggregates kept in step with the raw rows, in the same transaction.

Why: a live screen that re-aggregates raw rows dies at 10M rows. Every number the dashboard shows
is a sum (spend, requests, failures, tokens...) or a quantile, and both merge: sums add, and
quantiles come from a log-bucketed histogram (the DDSketch mapping) whose bucket counts add. So the
writer folds each batch into rollup rows keyed by (cube, resolution, bucket, combination of tag
values), and the reader answers long windows from a few thousand rollup rows instead of millions
of raw ones.

Three cubes, because one cube over every tag would have nearly one combination per request (users
and customers multiply everything):

- cube 0, `all`: no dimensions, one row per bucket — the unfiltered panels, sparklines, burn.
- cube 1, `dims`: the low-cardinality dimensions (feature, model, team, error class...).
- cube 2, `who`: customer and user, the high-cardinality ones (runaway users, per-customer spend).

A query whose filter and grouping fit inside one cube is answered from it; anything else (a
customer inside a feature, an extra tag from `tags_json`) reads raw rows.

Quantile error bound: a value x > 0 falls in bucket i = ceil(log(x) / log(γ)) with
γ = (1 + α) / (1 - α), and bucket i reports 2γ^i / (γ + 1). Every value in the bucket is within a
relative error α of that, and bucket order is value order, so the nearest-rank quantile read
from the histogram is within α (1%) of the exact nearest-rank quantile of the raw values.
"""

from __future__ import annotations

import math
import sqlite3
import struct
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Relative accuracy of every quantile read from rollups.
ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LN_GAMMA = math.log(GAMMA)
#: Bucket index 0 holds zeros; 1..SLOTS-1 hold log buckets shifted by OFFSET (γ^-399 ≈ 3e-4 up to
#: γ^1647 ≈ 2e14: every latency in ms and token count we will ever see).
OFFSET = 400
SLOTS = 2048

METRICS: tuple[str, ...] = ("latency_ms", "ttft_ms", "input_tokens", "output_tokens")
LATENCY, TTFT, INPUT, OUTPUT = range(4)

#: The additive part of an aggregate, in column order of `rollups`.
FIELDS: tuple[str, ...] = (
    "n",
    "spend",
    "failures",
    "retries",
    "fallbacks",
    "unpriced",
    "unmetered",
    "rc_hits",  # LiteLLM response-cache hits
    "in_tok",  # token sums over rows that reached a provider (not response-cache hits)
    "out_tok",
    "cr_tok",
    "failed_spend",
    "retry_spend",
    "saved_rc",
    "eligible",  # successful provider calls with input tokens: the prompt-cache hit-rate base
    "cached_reqs",
)
NF = len(FIELDS)
(
    F_N,
    F_SPEND,
    F_FAIL,
    F_RETRY,
    F_FALLBACK,
    F_UNPRICED,
    F_UNMETERED,
    F_RC_HITS,
    F_IN,
    F_OUT,
    F_CR,
    F_FAILED_SPEND,
    F_RETRY_SPEND,
    F_SAVED_RC,
    F_ELIGIBLE,
    F_CACHED,
) = range(NF)

CUBE_ALL, CUBE_DIMS, CUBE_WHO = 0, 1, 2
#: Dimensions per cube; every name is a column of both `calls` and `combos`.
CUBE_DIMS_OF: dict[int, tuple[str, ...]] = {
    CUBE_ALL: (),
    CUBE_DIMS: (
        "call_type",
        "provider",
        "model",
        "response_model",
        "model_group",
        "price_key",
        "status",
        "error_class",
        "error_code",
        "feature",
        "endpoint",
        "team",
        "environment",
        "workload",
        "prompt_version",
        "route_version",
    ),
    CUBE_WHO: ("customer", "user"),
}
COMBO_COLUMNS: tuple[str, ...] = (*CUBE_DIMS_OF[CUBE_DIMS], *CUBE_DIMS_OF[CUBE_WHO])
#: Bucket sizes (seconds) each cube keeps. Minute rollups only for cube 0: for the tagged cubes a
#: minute holds about as many combinations as rows, so they would cost raw-row space for nothing.
RESOLUTIONS: dict[int, tuple[int, ...]] = {
    CUBE_ALL: (60, 3600, 86400),
    CUBE_DIMS: (3600, 86400),
    CUBE_WHO: (3600, 86400),
}

#: Raw columns a contribution is computed from (names in `calls`).
METRIC_COLUMNS: tuple[str, ...] = (
    "started_at",
    "ended_at",
    "ttft_ms",
    "cost_usd",
    "status",
    "is_retry",
    "is_fallback",
    "unpriced",
    "unmetered",
    "cache_hit",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "saved_usd",
)


def bin_index(x: float) -> int:
    if x <= 0:
        return 0
    i = math.ceil(math.log(x) / _LN_GAMMA) + OFFSET
    return 1 if i < 1 else (SLOTS - 1 if i >= SLOTS else i)


def bin_value(idx: int) -> float:
    if idx == 0:
        return 0.0
    return 2.0 * GAMMA ** (idx - OFFSET) / (GAMMA + 1.0)


class Agg:
    """A mergeable aggregate: additive fields plus histogram counts keyed metric*SLOTS + bucket."""

    __slots__ = ("v", "h")

    def __init__(self) -> None:
        self.v: list[float] = [0] * NF
        self.h: dict[int, int] = {}

    def add(self, vals: Sequence[float], hkeys: Sequence[int], sign: int = 1) -> None:
        if sign == 1:
            self.v = [a + b for a, b in zip(self.v, vals, strict=True)]
        else:
            self.v = [a - b for a, b in zip(self.v, vals, strict=True)]
        h = self.h
        for k in hkeys:
            h[k] = h.get(k, 0) + sign

    def merge(self, other: Agg, sign: int = 1) -> None:
        self.add(other.v, (), sign)
        h = self.h
        for k, n in other.h.items():
            h[k] = h.get(k, 0) + sign * n

    def quantile(self, metric: int, q: float) -> float | None:
        """Nearest-rank quantile, within ALPHA of the exact one (see the module docstring).

        High quantiles walk down from the top bucket, so p95 of a 30-day histogram touches the
        tail only; the dashboard asks for one per table row on every refresh.
        """
        lo, hi = metric * SLOTS, (metric + 1) * SLOTS
        h = self.h
        keys = sorted(k for k, n in h.items() if lo <= k < hi and n > 0)
        if not keys:
            return None
        total = sum(h[k] for k in keys)
        rank = max(1, math.ceil(q * total))
        acc = 0
        if rank > total // 2:
            # the rank-th smallest is the (total - rank + 1)-th largest
            need = total - rank + 1
            for k in reversed(keys):
                acc += h[k]
                if acc >= need:
                    return bin_value(k - lo)
        else:
            for k in keys:
                acc += h[k]
                if acc >= rank:
                    return bin_value(k - lo)
        return bin_value(keys[-1] - lo)


def contribution(m: Sequence[Any]) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """What one raw row (values in METRIC_COLUMNS order) adds: FIELDS values and histogram keys.

    The single definition of every aggregate: the writer's rollups, the reader's raw edges and
    the tests' oracle all go through it.
    """
    (
        started,
        ended,
        ttft,
        cost,
        status,
        retry,
        fallback,
        unpriced,
        unmetered,
        ch,
        inp,
        out,
        cr,
        saved,
    ) = m
    cost = cost or 0.0
    st = 1 if status else 0
    keys: list[int] = []
    if ch:  # answered from LiteLLM's response cache: no provider tokens, money saved instead
        in_t = out_t = cr_t = elig = cached = 0
        saved_rc = saved or 0.0
    else:
        in_t, out_t, cr_t, saved_rc = inp, out, cr, 0.0
        elig = 1 if not st and inp > 0 else 0
        cached = 1 if elig and cr > 0 else 0
        if not st:
            keys.append(INPUT * SLOTS + bin_index(inp))
            keys.append(OUTPUT * SLOTS + bin_index(out))
    if ended is not None:
        keys.append(LATENCY * SLOTS + bin_index((ended - started) * 1000.0))
    if ttft is not None:
        keys.append(TTFT * SLOTS + bin_index(ttft))
    vals = (
        1,
        cost,
        st,
        1 if retry else 0,
        1 if fallback else 0,
        1 if unpriced else 0,
        1 if unmetered else 0,
        1 if ch else 0,
        in_t,
        out_t,
        cr_t,
        cost if st else 0.0,
        cost if retry or fallback else 0.0,
        saved_rc,
        elig,
        cached,
    )
    return vals, tuple(keys)


def encode_hist(h: Mapping[int, int]) -> bytes:
    """A flag byte, n uint16 keys ascending, then n counts: uint8 when all fit (the usual case in
    hour buckets), else uint32. About 3 bytes per non-empty bucket."""
    items = sorted((k, n) for k, n in h.items() if n > 0)
    n = len(items)
    if not n:
        return b""
    keys = (k for k, _ in items)
    counts = [c for _, c in items]
    if max(counts) < 256:
        return struct.pack(f"<B{n}H{n}B", 1, *keys, *counts)
    return struct.pack(f"<B{n}H{n}I", 0, *keys, *counts)


def split_hist(h: Mapping[int, int]) -> tuple[bytes, bytes]:
    """(latency histogram, the others): stored apart so per-group p95 latency over a long window
    decodes a quarter of the buckets."""
    return (
        encode_hist({k: n for k, n in h.items() if k < SLOTS}),
        encode_hist({k: n for k, n in h.items() if k >= SLOTS}),
    )


def decode_hist(blob: bytes) -> Iterable[tuple[int, int]]:
    if not blob:
        return ()
    if blob[0] == 1:
        n = (len(blob) - 1) // 3
        counts = struct.unpack_from(f"<{n}B", blob, 1 + 2 * n)
    else:
        n = (len(blob) - 1) // 6
        counts = struct.unpack_from(f"<{n}I", blob, 1 + 2 * n)
    return zip(struct.unpack_from(f"<{n}H", blob, 1), counts, strict=True)


def merge_hist_blobs(a: bytes | None, b: bytes | None) -> bytes:
    """SQL function `llmtop_hist_merge`: the upsert's way to add two histograms."""
    if not a:
        return b or b""
    if not b:
        return a
    h: dict[int, int] = dict(decode_hist(a))
    for k, n in decode_hist(b):
        h[k] = h.get(k, 0) + n
    return encode_hist(h)


# --- the write side ------------------------------------------------------------------------------

_UPSERT = (
    "INSERT INTO rollups (cube, res, bucket, combo, "
    + ", ".join(FIELDS)
    + ", hist, hist2) VALUES (?, ?, ?, ?, "
    + ", ".join("?" * NF)
    + ", ?, ?) ON CONFLICT(cube, res, bucket, combo) DO UPDATE SET "
    + ", ".join(f"{f} = {f} + excluded.{f}" for f in FIELDS)
    + ", hist = llmtop_hist_merge(hist, excluded.hist)"
    + ", hist2 = llmtop_hist_merge(hist2, excluded.hist2)"
)


class Rollup:
    """Folds batches of raw rows into rollup rows; caches combination ids like Interner does."""

    def __init__(self) -> None:
        self._combos: dict[tuple[int, tuple[Any, ...]], int] = {}

    def forget(self) -> None:
        self._combos.clear()

    def apply(
        self,
        db: sqlite3.Connection,
        rows: Iterable[Sequence[Any]],
        columns: Sequence[str],
    ) -> None:
        """Fold raw rows (tuples whose names are `columns`) into `rollups`; call inside the batch's
        transaction so the rollups commit or roll back with the rows they count."""
        pos = {c: i for i, c in enumerate(columns)}
        mi = [pos[c] for c in METRIC_COLUMNS]
        d1 = [pos[c] for c in CUBE_DIMS_OF[CUBE_DIMS]]
        d2 = [pos[c] for c in CUBE_DIMS_OF[CUBE_WHO]]
        # Cube 2 (customer, user) keeps only the latency histogram: its groups need p95 latency,
        # while panel quantiles come from cubes 0 and 1; it halves the cube's size.
        # Gather each row's contribution under the finest bucket of each cube, extend the
        # coarser buckets from those lists, then sum columns and count histogram keys in C
        # (zip/sum, Counter): per-row Python work stays at one contribution and three appends.
        groups: dict[tuple[int, int, int, tuple[Any, ...]], tuple[list[Any], list[int]]] = {}
        for row in rows:
            m = [row[i] for i in mi]
            vals, hkeys = contribution(m)
            t = m[0]
            minute, hour = int(t // 60) * 60, int(t // 3600) * 3600
            for k, hk in (
                ((CUBE_ALL, 60, minute, ()), hkeys),
                ((CUBE_DIMS, 3600, hour, tuple(row[i] for i in d1)), hkeys),
                (
                    (CUBE_WHO, 3600, hour, tuple(row[i] for i in d2)),
                    [k for k in hkeys if k < SLOTS],
                ),  # latency only
            ):
                g = groups.get(k)
                if g is None:
                    g = groups[k] = ([], [])
                g[0].append(vals)
                g[1].extend(hk)
        for (cube, res, bucket, key), (vl, kl) in list(groups.items()):
            for coarse in RESOLUTIONS[cube]:
                if coarse > res:
                    g = groups.setdefault((cube, coarse, bucket // coarse * coarse, key), ([], []))
                    g[0].extend(vl)
                    g[1].extend(kl)
        acc = groups
        if not acc:
            return
        ids = self._combo_ids(db, {(k[0], k[3]) for k in acc})
        db.executemany(
            _UPSERT,
            [
                (
                    cube,
                    res,
                    bucket,
                    ids[(cube, key)],
                    *map(sum, zip(*vl, strict=True)),
                    *split_hist(Counter(kl)),
                )
                for (cube, res, bucket, key), (vl, kl) in acc.items()
            ],
        )

    def _combo_ids(
        self, db: sqlite3.Connection, wanted: set[tuple[int, tuple[Any, ...]]]
    ) -> dict[tuple[int, tuple[Any, ...]], int]:
        missing = [w for w in wanted if w not in self._combos]
        if missing:
            if len(self._combos) > 500_000:
                self._combos.clear()
            for cube, key in missing:
                text = combo_key(key)
                dims = CUBE_DIMS_OF[cube]
                row = db.execute(
                    "SELECT id FROM combos WHERE cube = ? AND key = ?", (cube, text)
                ).fetchone()
                if row is None:
                    cols = ", ".join(("cube", "key", *dims))
                    marks = ", ".join("?" * (2 + len(dims)))
                    cur = db.execute(
                        f"INSERT INTO combos ({cols}) VALUES ({marks})", (cube, text, *key)
                    )
                    self._combos[(cube, key)] = int(cur.lastrowid or 0)
                else:
                    self._combos[(cube, key)] = row[0]
        return self._combos


def combo_key(key: Sequence[Any]) -> str:
    return ",".join("" if v is None else str(v) for v in key)


def create_tables(db: sqlite3.Connection) -> None:
    dims = ", ".join(f"{c} INTEGER" for c in COMBO_COLUMNS)
    db.execute(
        f"CREATE TABLE combos (id INTEGER PRIMARY KEY, cube INTEGER NOT NULL, key TEXT NOT NULL,"
        f" {dims}, UNIQUE (cube, key))"
    )
    real = {"spend", "failed_spend", "retry_spend", "saved_rc"}
    fields = ", ".join(f"{f} {'REAL' if f in real else 'INTEGER'} NOT NULL" for f in FIELDS)
    db.execute(
        f"CREATE TABLE rollups (cube INTEGER NOT NULL, res INTEGER NOT NULL, bucket INTEGER NOT NULL,"
        f" combo INTEGER NOT NULL, {fields}, hist BLOB, hist2 BLOB,"
        f" PRIMARY KEY (cube, res, bucket, combo)) WITHOUT ROWID"
    )


def rebuild(db: sqlite3.Connection, *, chunk: int = 50_000) -> int:
    """Recompute every rollup from the raw rows (migration backfill, and the tests' oracle)."""
    db.execute("DELETE FROM rollups")
    cols = ("id", *METRIC_COLUMNS, *COMBO_COLUMNS)
    roll = Rollup()
    last, total = 0, 0
    while True:
        rows = db.execute(
            f"SELECT {', '.join(cols)} FROM calls WHERE id > ? ORDER BY id LIMIT ?", (last, chunk)
        ).fetchall()
        if not rows:
            return total
        roll.apply(db, rows, cols)
        last = rows[-1][0]
        total += len(rows)
