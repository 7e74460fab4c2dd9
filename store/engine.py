"""Window aggregates that stay current without re-reading history.

A `Tracker` holds the aggregates of one time range, grouped one way, under one filter. The first
read (cold) comes from rollups — whole days, then whole hours, then minutes where the cube keeps
them, and raw rows only for the ragged edges. After that, each refresh reads only what changed, all
inside one read transaction so every part sees the same database state:

1. late rows: rows committed since the last refresh (id > last max id) whose start falls in the
   range already held;
2. new time: rows in [old end, new end);
3. expired time: rows in [old start, new start), subtracted.

Each of those is a range scan of seconds' worth of raw rows, so a refresh costs the same at 10M
rows as at 10k. Sums merge and subtract exactly, histograms too (they are counts), which is what
makes the sliding possible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from llmtop.store.histblob import decode_hist
from llmtop.store.rollup import (
    CUBE_DIMS_OF,
    FIELDS,
    METRIC_COLUMNS,
    NF,
    RESOLUTIONS,
    SLOTS,
    Agg,
    bin_indices,
    contributions,
)

#: Minute rollups are pruned after this long; older minute-sized edges are read from raw rows.
MINUTE_ROLLUP_KEEP = 8 * 86400.0
#: A slide longer than this is recomputed from rollups rather than walked over raw rows.
MAX_SLIDE = 600.0

#: SQL over `calls AS c` for each of rollup.FIELDS: the raw-row twin of rollup.contributions (a test
#: holds the two to the same numbers).
RAW_SUMS_SQL: tuple[str, ...] = (
    "count(*)",
    "total(c.cost_usd)",
    "total(c.status)",
    "total(c.is_retry)",
    "total(c.is_fallback)",
    "total(c.unpriced)",
    "total(c.unmetered)",
    "total(c.cache_hit)",
    "total(CASE WHEN c.cache_hit = 0 THEN c.input_tokens END)",
    "total(CASE WHEN c.cache_hit = 0 THEN c.output_tokens END)",
    "total(CASE WHEN c.cache_hit = 0 THEN c.cache_read_tokens END)",
    "total(CASE WHEN c.status = 1 THEN c.cost_usd END)",
    "total(CASE WHEN c.is_retry = 1 OR c.is_fallback = 1 THEN c.cost_usd END)",
    "total(CASE WHEN c.cache_hit = 1 THEN c.saved_usd END)",
    "total(CASE WHEN c.cache_hit = 0 AND c.status = 0 AND c.input_tokens > 0 THEN 1 END)",
    "total(CASE WHEN c.cache_hit = 0 AND c.status = 0 AND c.input_tokens > 0"
    " AND c.cache_read_tokens > 0 THEN 1 END)",
)
CUBE_SUMS_SQL: tuple[str, ...] = tuple(f"total(r.{f})" for f in FIELDS)
assert len(RAW_SUMS_SQL) == NF


@dataclass(frozen=True)
class Spec:
    """How a tracker groups and filters: by tag dimensions, or by time bins of `width` seconds."""

    dims: tuple[str, ...] = ()
    where: str = "1"  # SQL over alias c, valid on both `calls` and `combos` when a cube serves it
    params: tuple[Any, ...] = ()
    keys: frozenset[str] = frozenset()  # dimensions the filter reads
    width: int = 0
    hist: str = ""  # "" none, "latency" (per-group p95), "all" (the panels' quantiles)
    #: The FIELDS this view reads (None: all). Count is always kept; the others read as 0. Raw
    #: SQL with 16 CASE sums costs ~4 us a row; a tracker that needs one sum pays for one.
    fields: tuple[int, ...] | None = None

    def sums_sql(self, table: tuple[str, ...]) -> list[str]:
        if self.fields is None:
            return list(table)
        keep = {0, *self.fields}
        return [table[i] if i in keep else "0" for i in range(NF)]


class Source:
    """What a tracker needs from a database: queries, and string ids turned into names."""

    def __init__(
        self,
        q: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]],
        names: Callable[[set[int]], dict[int, str]],
        dim_sql: Callable[[str], tuple[str, bool]],
        *,
        cubes: bool = True,
    ) -> None:
        self.q = q
        #: False for a source without rollups (LiteLLM proxy's spend logs): cold reads are raw.
        self.cubes = cubes
        self._names = names
        self.dim_sql = dim_sql
        self._cache: dict[int, str] = {}
        #: The earliest raw row's start, known only inside a read transaction that read it
        #: (`rows_from`; None: unknown). Only buckets from it on may be corrected by subtracting
        #: raw rows: before it, rows may have been pruned while their rollups were kept.
        self.first: float | None = None

    @contextmanager
    def rows_from(self, first: float | None) -> Iterator[None]:
        """Cold reads inside may trim their edges (trim_edges); a value read in one transaction
        is never trusted in the next, where a prune may have run in between."""
        before, self.first = self.first, first
        try:
            yield
        finally:
            self.first = before

    def resolve(self, ids: set[int]) -> dict[int, str]:
        missing = {i for i in ids if i is not None and i not in self._cache}
        if missing:
            self._cache.update(self._names(missing))
        return self._cache


def cube_for(spec: Spec) -> int | None:
    need = set(spec.dims) | spec.keys
    for cube, dims in CUBE_DIMS_OF.items():
        if need <= set(dims):
            return cube
    return None


def decompose(
    a: float, b: float, resolutions: Sequence[int]
) -> tuple[list[tuple[int, int, int]], list[tuple[float, float]]]:
    """[a, b) → whole buckets of the coarsest fitting size, finer toward the edges, and the raw
    remainders: ([(res, lo, hi)], [(lo, hi)])."""
    pieces: list[tuple[int, int, int]] = []
    raw: list[tuple[float, float]] = []

    def rec(lo: float, hi: float, levels: Sequence[int]) -> None:
        if lo >= hi:
            return
        if not levels:
            raw.append((lo, hi))
            return
        r = levels[0]
        x0, x1 = math.ceil(lo / r) * r, math.floor(hi / r) * r
        if x0 >= x1:
            rec(lo, hi, levels[1:])
            return
        rec(lo, x0, levels[1:])
        pieces.append((r, x0, x1))
        rec(x1, hi, levels[1:])

    rec(a, b, sorted(resolutions, reverse=True))
    return pieces, raw


def trim_edges(
    raw: Sequence[tuple[float, float]], r: int, now: float, first: float | None
) -> tuple[list[tuple[int, int, int]], list[tuple[float, float, int]]]:
    """The raw remainders of `decompose`, each read the cheaper way: as its rows, or as the
    whole bucket of the finest resolution `r` around it minus the rows of the bucket outside
    it. A one-hour window on the hourly cubes is otherwise an hour of raw rows (~14k at 10M);
    this reads at most half a bucket per edge, and next to nothing at the live edge, where the
    rest of the bucket is the future. Returns ([(r, lo, hi)] buckets to add, [(lo, hi, sign)]
    raw spans). A bucket starting before `first` (rows maybe pruned) is never used."""
    pieces: list[tuple[int, int, int]] = []
    spans: list[tuple[float, float, int]] = []
    for lo, hi in raw:
        cuts = [lo, *range(math.floor(lo / r) * r + r, math.ceil(hi / r) * r, r), hi]
        for x0, x1 in zip(cuts, cuts[1:], strict=False):
            if x0 >= x1:
                continue
            b0 = math.floor(x0 / r) * r
            b1 = b0 + r
            outside = (x0 - b0) + (0.0 if x1 >= now else b1 - x1)
            if first is None or b0 < first or outside >= x1 - x0:
                spans.append((x0, x1, +1))
                continue
            pieces.append((r, b0, b1))
            if x0 > b0:
                spans.append((b0, x0, -1))
            if b1 > x1:
                spans.append((x1, b1, -1))
    return pieces, spans


class Tracker:
    """The aggregates of one sliding range (see the module docstring)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.a: float | None = None
        self.b = 0.0
        self.max_id = 0
        self.groups: dict[Any, Agg] = {}
        self.cold_reads = 0
        #: The earliest raw row when last read (Source.first; None: unknown).
        self.first: float | None = None

    def update(self, src: Source, a: float, b: float, max_id: int, now: float) -> dict[Any, Agg]:
        old_a = self.a
        if (
            old_a is None
            or a < old_a
            or b < self.b
            or a >= self.b
            or b - self.b > MAX_SLIDE
            or a - old_a > MAX_SLIDE
            or self.pruned_under(src.first)
        ):
            self.groups = {}
            self._cold(src, a, b, now)
            self.cold_reads += 1
        else:
            if max_id > self.max_id:
                self._raw(src, old_a, self.b, +1, id_after=self.max_id)
            if b > self.b:
                self._raw(src, self.b, b, +1)
            if a > old_a:
                self._raw(src, old_a, a, -1)
            self.groups = {k: g for k, g in self.groups.items() if g.v[0] != 0}
        self.a, self.b, self.max_id = a, b, max_id
        if src.first is not None:
            self.first = src.first
        return self.groups

    def pruned_under(self, first: float | None) -> bool:
        """Whether raw rows this tracker counted were pruned since its last read: sliding would
        then subtract rows no longer there, and the sums would drift up at every prune (with a
        retention shorter than a range, e.g. a 7-day one under the spike rule's last-week
        windows). Such a tracker is read afresh."""
        if first is None or self.a is None or self.a >= first:
            return False
        return self.first is None or first > self.first

    # --- reading ---
    def _cold(self, src: Source, a: float, b: float, now: float) -> None:
        cube = cube_for(self.spec) if src.cubes else None
        if cube is None:
            self._raw(src, a, b, +1)
            return
        res = [r for r in RESOLUTIONS[cube] if not self.spec.width or self.spec.width % r == 0]
        if not res:  # time bins that no bucket fits in
            self._raw(src, a, b, +1)
            return
        pieces, raw = decompose(a, b, res)
        fine = min(res)
        old_minutes = now - MINUTE_ROLLUP_KEEP + 3600
        first = src.first
        if first is not None and fine == 60:  # minute buckets past their keep are gone
            first = max(first, old_minutes)
        more, spans = trim_edges(raw, fine, now, first)
        for r, lo, hi in [*pieces, *more]:
            if r == 60 and lo < old_minutes:
                self._raw(src, lo, hi, +1)
            else:
                self._cube(src, cube, r, lo, hi)
        for lo, hi, sign in spans:
            self._raw(src, lo, hi, sign)
        if more:  # a group whose rows were all outside the range nets to nothing
            self.groups = {k: g for k, g in self.groups.items() if g.v[0] != 0}

    def _key_sql(self, src: Source, time_col: str) -> tuple[list[str], list[bool]]:
        if self.spec.width:
            w = self.spec.width
            return [f"CAST({time_col} / {w} AS INTEGER) * {w}"], [False]
        exprs, interned = [], []
        for d in self.spec.dims:
            e, i = src.dim_sql(d)
            exprs.append(e)
            interned.append(i)
        return exprs, interned

    def _keys(self, src: Source, rows: list[tuple[Any, ...]], interned: list[bool]) -> list[Any]:
        nk = len(interned)
        if self.spec.width:
            return [r[0] for r in rows]
        ids = {r[i] for r in rows for i in range(nk) if interned[i] and r[i] is not None}
        names = src.resolve(ids) if ids else {}
        return [tuple(names.get(r[i]) if interned[i] else r[i] for i in range(nk)) for r in rows]

    def _group(self, key: Any) -> Agg:
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = Agg()
        return g

    def _raw(
        self, src: Source, lo: float, hi: float, sign: int, id_after: int | None = None
    ) -> None:
        spec = self.spec
        exprs, interned = self._key_sql(src, "c.started_at")
        nk = len(exprs)
        cond = "c.started_at >= ? AND c.started_at < ?"
        params: list[Any] = [lo, hi]
        calls = "calls c"
        if id_after is not None:
            cond += " AND c.id > ?"
            params.append(id_after)
            # Late rows: walk the new ids (a rowid range), never the started_at index, which
            # would scan the whole window held (an hour is ~25k rows at 10M) once per tracker.
            calls = "calls c NOT INDEXED"
        cond += f" AND {spec.where}"
        params.extend(spec.params)
        group = f" GROUP BY {', '.join(str(i + 1) for i in range(nk))}" if nk else ""
        sel = ", ".join([*exprs, *spec.sums_sql(RAW_SUMS_SQL)])
        rows = src.q(f"SELECT {sel} FROM {calls} WHERE {cond}{group}", params)
        rows = [r for r in rows if r[nk]]
        for key, r in zip(self._keys(src, rows, interned), rows, strict=True):
            self._group(key).add(r[nk:], (), sign)
        if not spec.hist or not rows:
            return
        if spec.hist == "latency":
            # Latency only: count buckets per raw key first, name the keys once at the end.
            # (A Python SQL function doing the bucketing inside GROUP BY is 3x slower.)
            lat = "(c.ended_at - c.started_at) * 1000.0"
            sel = ", ".join([*exprs, lat])
            rows = src.q(
                f"SELECT {sel} FROM {calls} WHERE {cond} AND c.ended_at IS NOT NULL", params
            )
            if not rows:
                return
            # Bucket with numpy, count (raw key, bucket) pairs with one unique: a 1h window at
            # 10M rows is ~25k rows, which a Python loop of bin_index takes ~50 ms over.
            cols = list(zip(*rows, strict=True))
            index: dict[tuple[Any, ...], int] = {}
            raw = zip(*cols[:nk], strict=True) if nk else ((),) * len(rows)
            gi = np.fromiter((index.setdefault(k, len(index)) for k in raw), np.int64, len(rows))
            # LATENCY == 0: the histogram key is the bucket itself.
            pairs, counts = np.unique(
                gi * SLOTS + bin_indices(np.asarray(cols[nk], dtype=np.float64)),
                return_counts=True,
            )
            ids = list(index)
            groups = [self._group(k) for k in self._keys(src, ids, interned)]
            for pair, n in zip(pairs.tolist(), counts.tolist(), strict=True):
                g, k = divmod(pair, SLOTS)
                h = groups[g].h
                h[k] = h.get(k, 0) + sign * n
            return
        metrics = ", ".join(f"c.{m}" for m in METRIC_COLUMNS)
        sel = ", ".join([*exprs, metrics]) if exprs else metrics
        rows = src.q(f"SELECT {sel} FROM {calls} WHERE {cond}", params)
        if not rows:
            return
        groups = [self._group(k) for k in self._keys(src, rows, interned)]
        cols = list(zip(*rows, strict=True))
        _, hrow, hkey = contributions(dict(zip(METRIC_COLUMNS, cols[nk:], strict=True)), len(rows))
        for i, k in zip(hrow.tolist(), hkey.tolist(), strict=True):
            h = groups[i].h
            h[k] = h.get(k, 0) + sign

    def _cube(self, src: Source, cube: int, res: int, lo: int, hi: int) -> None:
        spec = self.spec
        exprs, interned = self._key_sql(src, "r.bucket")
        nk = len(exprs)
        join = " JOIN combos c ON c.id = r.combo" if cube else ""
        cond = f"r.cube = {cube} AND r.res = {res} AND r.bucket >= ? AND r.bucket < ?"
        where = f" AND {spec.where}" if cube else ""
        params = [lo, hi, *(spec.params if cube else ())]
        group = f" GROUP BY {', '.join(str(i + 1) for i in range(nk))}" if nk else ""
        sel = ", ".join([*exprs, *spec.sums_sql(CUBE_SUMS_SQL)])
        rows = src.q(f"SELECT {sel} FROM rollups r{join} WHERE {cond}{where}{group}", params)
        rows = [r for r in rows if r[nk]]
        for key, r in zip(self._keys(src, rows, interned), rows, strict=True):
            self._group(key).add(r[nk:], ())
        if not spec.hist or not rows:
            return
        cols = ["r.hist", "r.hist2"] if spec.hist == "all" else ["r.hist"]
        sel = ", ".join([*exprs, *cols])
        rows = src.q(f"SELECT {sel} FROM rollups r{join} WHERE {cond}{where}", params)
        pairs = [
            (key, blob)
            for key, r in zip(self._keys(src, rows, interned), rows, strict=True)
            for blob in r[nk:]
            if blob
        ]
        if len(pairs) < 2000:
            for key, blob in pairs:
                h = self._group(key).h
                for k, n in decode_hist(blob):
                    h[k] = h.get(k, 0) + n
            return
        width = SLOTS if spec.hist == "latency" else 4 * SLOTS
        for key, merged in merge_hists(pairs, width).items():
            h = self._group(key).h
            for k, n in merged.items():
                h[k] = h.get(k, 0) + n


def merge_hists(
    pairs: Sequence[tuple[Any, bytes]], width: int = 4 * SLOTS, chunk: int = 20_000
) -> dict[Any, dict[int, int]]:
    """Sum many histogram blobs per group key with numpy: a 30-day window at 10M rows is ~200k
    blobs and ~10M buckets, far too slow for a Python loop. The blobs of a chunk are joined into
    one buffer and every key and count is gathered by computed byte offsets (histblob.encode_hist
    has the layout), so no Python code runs per blob or per bucket; chunks keep the temporaries
    to a few MB."""

    groups: dict[Any, int] = {}
    gi_all = [groups.setdefault(key, len(groups)) for key, _ in pairs]
    dense = np.zeros(len(groups) * width, dtype=np.int64)
    for c0 in range(0, len(pairs), chunk):
        blobs = [blob for _, blob in pairs[c0 : c0 + chunk]]
        gi = np.asarray(gi_all[c0 : c0 + chunk], dtype=np.int64)
        buf = np.frombuffer(b"".join(blobs), np.uint8)
        size = np.fromiter(map(len, blobs), np.int64, len(blobs))
        start = np.cumsum(size) - size
        wide = buf[start] != 1
        n = np.where(wide, (size - 1) // 6, (size - 1) // 3)
        blob = np.repeat(np.arange(len(blobs)), n)
        j = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)  # index within its blob
        s, nn = start[blob], n[blob]
        koff = s + 1 + 2 * j
        keys = buf[koff].astype(np.int64) | (buf[koff + 1].astype(np.int64) << 8)
        counts = buf[s + 1 + 2 * nn + j].astype(np.int64)
        w = wide[blob]
        if w.any():
            c = (s + 1 + 2 * nn + 4 * j)[w]
            parts = [buf[c + i].astype(np.int64) << (8 * i) for i in range(4)]
            counts[w] = parts[0] | parts[1] | parts[2] | parts[3]
        dense += np.bincount(
            gi[blob] * width + keys, weights=counts, minlength=len(groups) * width
        ).astype(np.int64)
    table = dense.reshape(len(groups), width)
    out: dict[Any, dict[int, int]] = {}
    for key, g in groups.items():
        row = table[g]
        nz = np.flatnonzero(row)
        out[key] = dict(zip(nz.tolist(), row[nz].tolist(), strict=True))
    return out


def merge_groups(parts: Sequence[dict[Any, Agg]]) -> dict[Any, Agg]:
    """Add up the groups of several databases. One part is returned as is (callers only read),
    so the single-file refresh never copies a 30-day window's histograms."""
    if len(parts) == 1:
        return parts[0]
    out: dict[Any, Agg] = {}
    for part in parts:
        for k, g in part.items():
            o = out.get(k)
            if o is None:
                o = out[k] = Agg()
            o.merge(g)
    return out


def total(groups: dict[Any, Agg]) -> Agg:
    if len(groups) == 1:
        return next(iter(groups.values()))
    t = Agg()
    for g in groups.values():
        t.merge(g)
    return t
