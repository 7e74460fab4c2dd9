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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from llmtop.store.histblob import encode_keys

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
_REAL_FIELDS = frozenset({"spend", "failed_spend", "retry_spend", "saved_rc"})
_INT_FIELDS = [i for i, f in enumerate(FIELDS) if f not in _REAL_FIELDS]
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


def bin_indices(x: np.ndarray) -> np.ndarray:
    """`bin_index` over an array, bit-for-bit: numpy's log may differ from libm's in the last
    place, which only matters for values whose bucket boundary is that close, so those few are
    recomputed with math.log."""
    out = np.zeros(len(x), dtype=np.int64)
    pos = np.flatnonzero(x > 0)
    if not len(pos):
        return out
    v = x[pos]
    r = np.log(v) / _LN_GAMMA
    i = np.ceil(r)
    near = np.flatnonzero(np.abs(r - np.rint(r)) < 1e-6)
    if len(near):
        i[near] = [math.ceil(math.log(float(y)) / _LN_GAMMA) for y in v[near]]
    out[pos] = np.clip(i + OFFSET, 1, SLOTS - 1)
    return out


def contributions(
    cols: Mapping[str, Sequence[Any]], n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What n raw rows add, from their columns (METRIC_COLUMNS names): an n x NF matrix of
    FIELDS values, and (row, histogram key) pairs as two arrays.

    The single definition of every aggregate: the writer's rollups and the reader's raw edges
    both go through it (with numpy: a Python loop per row cost as much as the INSERT); the
    property tests hold it to SQL re-aggregation of the stored rows.
    """

    def f(name: str) -> np.ndarray:  # None -> nan
        return np.asarray(cols[name], dtype=np.float64)

    def b(name: str) -> np.ndarray:
        return np.asarray(cols[name], dtype=np.float64) != 0

    started, ended, ttft = f("started_at"), f("ended_at"), f("ttft_ms")
    cost, saved = np.nan_to_num(f("cost_usd")), np.nan_to_num(f("saved_usd"))
    st, retry, fallback = b("status"), b("is_retry"), b("is_fallback")
    ch = b("cache_hit")
    inp, out, cr = f("input_tokens"), f("output_tokens"), f("cache_read_tokens")
    provider = ~ch
    elig = provider & ~st & (inp > 0)
    v = np.empty((n, NF), dtype=np.float64)
    v[:, F_N] = 1
    v[:, F_SPEND] = cost
    v[:, F_FAIL] = st
    v[:, F_RETRY] = retry
    v[:, F_FALLBACK] = fallback
    v[:, F_UNPRICED] = b("unpriced")
    v[:, F_UNMETERED] = b("unmetered")
    v[:, F_RC_HITS] = ch
    v[:, F_IN] = np.where(provider, inp, 0)
    v[:, F_OUT] = np.where(provider, out, 0)
    v[:, F_CR] = np.where(provider, cr, 0)
    v[:, F_FAILED_SPEND] = np.where(st, cost, 0.0)
    v[:, F_RETRY_SPEND] = np.where(retry | fallback, cost, 0.0)
    v[:, F_SAVED_RC] = np.where(ch, saved, 0.0)
    v[:, F_ELIGIBLE] = elig
    v[:, F_CACHED] = elig & (cr > 0)
    rows, keys = [], []
    ok = provider & ~st
    for metric, values, mask in (
        (LATENCY, (ended - started) * 1000.0, ~np.isnan(ended)),
        (TTFT, ttft, ~np.isnan(ttft)),
        (INPUT, inp, ok),
        (OUTPUT, out, ok),
    ):
        idx = np.flatnonzero(mask)
        rows.append(idx)
        keys.append(bin_indices(values[idx]) + metric * SLOTS)
    return v, np.concatenate(rows), np.concatenate(keys)


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
        transaction so the rollups commit or roll back with the rows they count (the sums and
        blobs are `upsert_rows`'s; the histograms add up inside SQLite's upsert)."""
        rows = rows if isinstance(rows, list) else list(rows)
        if rows:
            db.executemany(
                _UPSERT, upsert_rows(rows, columns, lambda c, k: self._combo_ids(db, c, k))
            )

    def _combo_ids(
        self, db: sqlite3.Connection, cube: int, keys: list[tuple[Any, ...]]
    ) -> list[int]:
        """Combination ids for `keys` of one cube, in order, creating the missing ones."""
        known = self._combos
        missing = [k for k in keys if (cube, k) not in known]
        if missing:
            if len(known) + len(missing) > 500_000:
                known.clear()
                missing = keys
            dims = CUBE_DIMS_OF[cube]
            cols = ", ".join(("cube", "key", *dims))
            marks = ", ".join("?" * (2 + len(dims)))
            for key in missing:
                text = combo_key(key)
                row = db.execute(
                    "SELECT id FROM combos WHERE cube = ? AND key = ?", (cube, text)
                ).fetchone()
                if row is None:
                    cur = db.execute(
                        f"INSERT INTO combos ({cols}) VALUES ({marks})", (cube, text, *key)
                    )
                    known[(cube, key)] = int(cur.lastrowid or 0)
                else:
                    known[(cube, key)] = row[0]
        return [known[(cube, k)] for k in keys]


def upsert_rows(
    rows: list[Sequence[Any]],
    columns: Sequence[str],
    combo_ids: Callable[[int, list[tuple[Any, ...]]], list[int]],
) -> list[tuple[Any, ...]]:
    """What a batch adds to `rollups`, one tuple per (cube, res, bucket, combo): the key, the
    FIELDS sums, then the latency and other histograms as blobs. `combo_ids(cube, keys)` gives
    the combination ids of one cube's keys, in order (each backend interns them its own way).

    Vectorised: the batch is transposed once, every row's contribution computed with numpy,
    and each (cube, resolution) grouped with one `np.unique`; Python work per row is a tuple
    look-up per tagged cube. The per-row loop this replaced cost as much as the INSERT itself.
    """
    n = len(rows)
    if not n:
        return []
    pos = {c: i for i, c in enumerate(columns)}
    by_col = list(zip(*rows, strict=True))
    v, hrow, hkey = contributions({c: by_col[pos[c]] for c in METRIC_COLUMNS}, n)
    started = np.asarray(by_col[pos["started_at"]], dtype=np.float64)
    upserts: list[tuple[Any, ...]] = []
    for cube, dims in CUBE_DIMS_OF.items():
        index: dict[tuple[Any, ...], int] = {}
        if dims:
            combos = zip(*(by_col[pos[d]] for d in dims), strict=True)
            ci = np.fromiter((index.setdefault(k, len(index)) for k in combos), np.int64, n)
        else:
            index[()] = 0
            ci = np.zeros(n, dtype=np.int64)
        ids = combo_ids(cube, list(index))
        # Cube 2 (customer, user) keeps only the latency histogram: its groups need p95
        # latency, while panel quantiles come from cubes 0 and 1; it halves the cube's size.
        hsel = np.flatnonzero(hkey < SLOTS) if cube == CUBE_WHO else slice(None)
        crow, ckey = hrow[hsel], hkey[hsel]
        for res in RESOLUTIONS[cube]:
            upserts.extend(_fold(cube, res, started, ci, ids, v, crow, ckey))
    return upserts


def _fold(
    cube: int,
    res: int,
    started: np.ndarray,
    ci: np.ndarray,
    ids: list[int],
    v: np.ndarray,
    hrow: np.ndarray,
    hkey: np.ndarray,
) -> list[tuple[Any, ...]]:
    """Upsert rows for one (cube, resolution): sums and histograms per (combination, bucket)."""
    bucket = (np.floor_divide(started, res) * res).astype(np.int64)
    b0 = int(bucket.min())
    span = int(bucket.max() - b0) // res + 1
    groups, inv = np.unique(ci * span + (bucket - b0) // res, return_inverse=True)
    inv = inv.reshape(-1)
    g = len(groups)
    order = np.argsort(inv, kind="stable")
    starts = np.searchsorted(inv[order], np.arange(g))
    sums = np.add.reduceat(v[order], starts, axis=0)
    vals = sums.astype(object)
    vals[:, _INT_FIELDS] = np.rint(sums[:, _INT_FIELDS]).astype(np.int64).astype(object)
    # Histogram counts per (group, key): one unique over combined keys, sorted by group then key.
    width = len(METRICS) * SLOTS
    hk, counts = np.unique(inv[hrow] * width + hkey, return_counts=True)
    hg, hk = hk // width, hk % width
    cut = np.searchsorted(hg, np.arange(g + 1))
    out = []
    for j, (gk, row) in enumerate(zip(groups.tolist(), vals.tolist(), strict=True)):
        c, b = divmod(gk, span)
        a, z = cut[j], cut[j + 1]
        m = a + int(np.searchsorted(hk[a:z], SLOTS))  # latency keys come first
        out.append(
            (
                cube,
                res,
                b0 + b * res,
                ids[c],
                *row,
                encode_keys(hk[a:m], counts[a:m]),
                encode_keys(hk[m:z], counts[m:z]),
            )
        )
    return out


def combo_key(key: Sequence[Any]) -> str:
    return ",".join("" if v is None else str(v) for v in key)


def create_tables(db: sqlite3.Connection) -> None:
    dims = ", ".join(f"{c} INTEGER" for c in COMBO_COLUMNS)
    db.execute(
        f"CREATE TABLE combos (id INTEGER PRIMARY KEY, cube INTEGER NOT NULL, key TEXT NOT NULL,"
        f" {dims}, UNIQUE (cube, key))"
    )
    fields = ", ".join(f"{f} {'REAL' if f in _REAL_FIELDS else 'INTEGER'} NOT NULL" for f in FIELDS)
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
