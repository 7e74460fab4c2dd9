"""All SQL the alert engine reads with, in one place beside the schema it depends on (the
alert state it writes is store/alert_state.py).

Why ranges joined from a VALUES list: every alert rule compares a window with a handful of
same-length windows in the past (the same hour on the previous seven days, the trailing two
hours...). Sending them as one `WITH r(idx, a, b) AS (VALUES ...)` and joining on
`c.started_at >= r.a AND c.started_at < r.b` lets SQLite walk the `calls_started_at` index once per
range and group in SQL, so the cost follows the rows inside the windows, not the size of the file.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from llmtop.store.engine import Spec, Tracker
from llmtop.store.filters import Clause, dim_expr, where_sql
from llmtop.store.reader import Reader
from llmtop.store.rollup import F_N, F_SPEND

#: Per range and group: the sums every rule and the cause analysis are built from.
AGG_COLUMNS = (
    "spend",
    "requests",
    "failures",
    "retries",
    "fallbacks",
    "eligible",
    "cached",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "input_usd",
    "cache_read_usd",
    "output_usd",
    "retry_spend",
    "fallback_spend",
    "failed_spend",
)

_AGG_SQL = """coalesce(sum(c.cost_usd), 0), count(*), coalesce(sum(c.status), 0),
    coalesce(sum(c.is_retry), 0), coalesce(sum(c.is_fallback), 0),
    coalesce(sum(CASE WHEN c.cache_hit=0 AND c.status=0 AND c.input_tokens>0 THEN 1 END), 0),
    coalesce(sum(CASE WHEN c.cache_hit=0 AND c.status=0 AND c.cache_read_tokens>0 THEN 1 END), 0),
    coalesce(sum(CASE WHEN c.cache_hit=0 THEN c.input_tokens END), 0),
    coalesce(sum(CASE WHEN c.cache_hit=0 THEN c.output_tokens END), 0),
    coalesce(sum(CASE WHEN c.cache_hit=0 THEN c.cache_read_tokens END), 0),
    coalesce(sum(c.input_usd), 0), coalesce(sum(c.cache_read_usd), 0),
    coalesce(sum(c.output_usd), 0),
    coalesce(sum(CASE WHEN c.is_retry=1 THEN c.cost_usd END), 0),
    coalesce(sum(CASE WHEN c.is_fallback=1 THEN c.cost_usd END), 0),
    coalesce(sum(CASE WHEN c.status=1 THEN c.cost_usd END), 0)"""


@dataclass
class Agg:
    """Sums over a set of rows; mutable so callers can add groups together."""

    spend: float = 0.0
    requests: int = 0
    failures: int = 0
    retries: int = 0
    fallbacks: int = 0
    eligible: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    input_usd: float = 0.0
    cache_read_usd: float = 0.0
    output_usd: float = 0.0
    retry_spend: float = 0.0
    fallback_spend: float = 0.0
    failed_spend: float = 0.0

    def add(self, other: Agg, scale: float = 1.0) -> None:
        # Written out: the cause analysis adds ~1M of these per incident pass at 10M rows, and a
        # getattr/setattr loop over AGG_COLUMNS costs 5x as much.
        o, k = other, scale
        self.spend += o.spend * k
        self.requests += o.requests * k
        self.failures += o.failures * k
        self.retries += o.retries * k
        self.fallbacks += o.fallbacks * k
        self.eligible += o.eligible * k
        self.cached += o.cached * k
        self.input_tokens += o.input_tokens * k
        self.output_tokens += o.output_tokens * k
        self.cache_read_tokens += o.cache_read_tokens * k
        self.input_usd += o.input_usd * k
        self.cache_read_usd += o.cache_read_usd * k
        self.output_usd += o.output_usd * k
        self.retry_spend += o.retry_spend * k
        self.fallback_spend += o.fallback_spend * k
        self.failed_spend += o.failed_spend * k

    def scaled(self, scale: float) -> Agg:
        out = Agg()
        out.add(self, scale)
        return out


_ZERO = Agg()
assert tuple(_ZERO.__dict__) == AGG_COLUMNS  # add() names every column, in this order


def _ranges_cte(ranges: Sequence[tuple[int, float, float]]) -> tuple[str, list[Any]]:
    marks = ",".join("(?,?,?)" for _ in ranges)
    params: list[Any] = []
    for idx, a, b in ranges:
        params.extend((idx, a, b))
    return f"WITH r(idx, a, b) AS (VALUES {marks})", params


def aggregate(
    reader: Reader,
    ranges: Sequence[tuple[int, float, float]],
    dims: Sequence[str] = (),
    clauses: Sequence[Clause] = (),
) -> list[tuple[int, tuple[str | None, ...], Agg]]:
    """Sums per (range index, values of `dims`) over rows whose started_at is in each range."""
    if not ranges:
        return []
    cte, params = _ranges_cte(ranges)
    where, wparams = where_sql(clauses)
    exprs = [dim_expr(d) for d in dims]
    cols = "".join(f", {e}" for e, _ in exprs)
    group = "".join(f", {i + 2}" for i in range(len(exprs)))
    sql = f"""{cte}
        SELECT r.idx{cols}, {_AGG_SQL}
        FROM r JOIN calls c ON c.started_at >= r.a AND c.started_at < r.b
        WHERE {where}
        GROUP BY 1{group}"""
    rows = reader.query(sql, (*params, *wparams))
    ids: set[int] = set()
    for row in rows:
        for i, (_, interned) in enumerate(exprs):
            if interned and row[1 + i] is not None:
                ids.add(row[1 + i])
    names = reader.strings(ids) if ids else {}
    out: list[tuple[int, tuple[str | None, ...], Agg]] = []
    n = len(exprs)
    for row in rows:
        keys: list[str | None] = []
        for i, (_, interned) in enumerate(exprs):
            v = row[1 + i]
            keys.append(
                names.get(v) if interned and v is not None else (None if v is None else str(v))
            )
        out.append((row[0], tuple(keys), Agg(*row[1 + n :])))
    return out


def values_in(dim: str, n: int) -> str:
    """SQL over `calls AS c`: `dim` is one of `n` values given as parameters (matched through
    `strings` for an interned dimension, so the values never need looking up first)."""
    expr, interned = dim_expr(dim)
    marks = ",".join("?" * n)
    if interned:
        return f"{expr} IN (SELECT id FROM strings WHERE value IN ({marks}))"
    return f"{expr} IN ({marks})"


def aggregate_values(
    reader: Reader, ranges: Sequence[tuple[int, float, float]], dim: str, values: Sequence[str]
) -> list[tuple[int, str, Agg]]:
    """`aggregate` of many one-tag scopes (`dim = v` for each of `values`) in one read: sums per
    (range index, value) over the rows whose `dim` is one of `values`."""
    if not ranges or not values:
        return []
    cte, params = _ranges_cte(ranges)
    expr, interned = dim_expr(dim)
    cond = values_in(dim, len(values))
    rows = reader.query(
        f"""{cte}
        SELECT r.idx, {expr}, {_AGG_SQL}
        FROM r JOIN calls c ON c.started_at >= r.a AND c.started_at < r.b
        WHERE {cond}
        GROUP BY 1, 2""",
        (*params, *values),
    )
    names = reader.strings({row[1] for row in rows}) if interned else {}
    return [
        (row[0], names[row[1]] if interned else str(row[1]), Agg(*row[2:]))
        for row in rows
        if not interned or row[1] in names
    ]


def sliding_sums(
    reader: Reader,
    trackers: dict[Any, Tracker],
    name: str,
    ranges: Sequence[tuple[int, float, float]],
    dims: Sequence[str],
    fields: Sequence[int],
) -> list[tuple[int, tuple[str | None, ...], int, tuple[float, ...]]]:
    """(range index, dim values, requests, the rollup `fields` asked for) like `aggregate`, from
    sliding trackers kept in `trackers` (the caller's, across passes): the engine asks for the
    same ranges every few seconds, a few seconds later, so after the first pass each range
    costs only the rows that moved in or out of it (a week is read from the hourly rollups
    once). Cold reads trim their edges from the earliest raw row, read in the same transaction
    (a prune may run between two)."""
    spec = Spec(dims=tuple(dims), fields=tuple(fields))
    out: list[tuple[int, tuple[str | None, ...], int, tuple[float, ...]]] = []
    with reader.read_transaction():
        max_id = reader.max_id()
        src = reader.source()
        with src.rows_from(first_row_at(reader)):
            for idx, a, b in ranges:
                key = (str(reader.path), name, idx, spec)
                t = trackers.get(key)
                if t is None:
                    t = trackers[key] = Tracker(spec)
                for keys, g in t.update(src, a, b, max_id, time.time()).items():
                    out.append((idx, keys, int(g.v[F_N]), tuple(float(g.v[f]) for f in fields)))
    return out


def sliding_spend(
    reader: Reader,
    trackers: dict[Any, Tracker],
    name: str,
    ranges: Sequence[tuple[int, float, float]],
    dims: Sequence[str],
) -> list[tuple[int, tuple[str | None, ...], float, int]]:
    """(range index, dim values, spend, requests): `sliding_sums` of spend alone."""
    return [
        (idx, keys, spend, n)
        for idx, keys, n, (spend,) in sliding_sums(reader, trackers, name, ranges, dims, (F_SPEND,))
    ]


def token_values(
    reader: Reader,
    ranges: Sequence[tuple[int, float, float]],
    clauses: Sequence[Clause] = (),
    limit: int = 50_000,
) -> dict[int, tuple[list[int], list[int]]]:
    """Input and output tokens of successful, billed rows per range (for p90 comparisons)."""
    if not ranges:
        return {}
    cte, params = _ranges_cte(ranges)
    where, wparams = where_sql(clauses)
    out: dict[int, tuple[list[int], list[int]]] = {}
    for idx, i, o in reader.query(
        f"""{cte} SELECT r.idx, c.input_tokens, c.output_tokens
        FROM r JOIN calls c ON c.started_at >= r.a AND c.started_at < r.b
        WHERE c.status = 0 AND c.cache_hit = 0 AND {where} LIMIT ?""",
        (*params, *wparams, limit),
    ):
        ins, outs = out.setdefault(idx, ([], []))
        ins.append(i)
        outs.append(o)
    return out


#: Baseline rows read for p90 token comparisons when many alerts share one read.
TOKEN_SAMPLE = 200_000


class ExplainData:
    """The rows behind every likely-cause analysis of one evaluation pass, read once.

    Why: during an incident dozens of alerts fire at once (a feature, then each customer and user
    it touched), all comparing the same ranges. Read per alert, each analysis re-scans those rows
    (at 10M rows, ~1.5 s per alert with a 7-day baseline). Read once, grouped by every explain
    dimension, each alert is a numpy mask and a few group sums (~20 ms). The one read costs
    several per-alert reads (it returns every group to Python), so evaluate() uses it only for
    a crowd of alerts over the same ranges.

    Only scopes made of `dim = value` clauses on `dims` are served; `supports` says so, and the
    caller falls back to `aggregate`/`token_values` for anything else.
    """

    def __init__(
        self,
        reader: Reader,
        ranges: Sequence[tuple[int, float, float]],
        dims: Sequence[str],
        only: Sequence[Clause] = (),
    ) -> None:
        """`only`: `dim = value` clauses (the crowd's scopes, e.g. 25 customers and 24 users);
        rows matching none of them are not read. A 7-day baseline is most of a big file, and its
        other tenants' groups were most of the cost (10 s -> 6 s at 10M rows)."""
        self.reader = reader
        self.ranges = tuple(ranges)
        self.dims = tuple(dims)
        self._pos = {d: i for i, d in enumerate(self.dims)}
        self._only = frozenset(only)
        self._agg: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._tok: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._ids: dict[str, int] = {}
        self._names: dict[int, str] = {}

    @property
    def loaded(self) -> bool:
        """Its rows are read: serving one more scope is cheap."""
        return self._agg is not None

    def supports(self, scope: Sequence[Clause]) -> bool:
        return (
            all(c.op == "=" and c.key in self._pos for c in scope)
            and all(dim_expr(d)[1] for d in self.dims)
            and (not self._only or any(c in self._only for c in scope))
        )

    def _only_sql(self) -> tuple[str, list[Any]]:
        if not self._only:
            return "1", []
        by: dict[str, list[str]] = {}
        for c in self._only:
            if c.op != "=" or c.value is None or c.key not in self._pos:
                return "1", []  # not a restriction this read can express: read everything
            by.setdefault(c.key, []).append(c.value)
        parts, params = [], []
        for d, values in sorted(by.items()):
            parts.append(values_in(d, len(values)))
            params += sorted(values)
        return "(" + " OR ".join(parts) + ")", params

    def _read(self, select: str, where: str, width: int) -> tuple[np.ndarray, ...]:
        cte, params = _ranges_cte(self.ranges)
        only, oparams = self._only_sql()
        cols = ", ".join(f"c.{d}" for d in self.dims)
        sql = f"""{cte} SELECT r.idx, {cols}, {select}
            FROM r JOIN calls c ON c.started_at >= r.a AND c.started_at < r.b
            WHERE {only} AND {where}"""
        nd = len(self.dims)
        idx, codes, vals = [], [], []
        # numpy per chunk: no list of 200k tuples
        for chunk in self.reader.chunks(sql, [*params, *oparams], 20_000):
            cols_ = list(zip(*chunk, strict=True))
            idx.append(np.asarray(cols_[0], dtype=np.int64))
            c = np.asarray(cols_[1 : 1 + nd], dtype=np.float64).reshape(nd, -1)
            c[np.isnan(c)] = -1  # NULL: the row has no such tag
            codes.append(c.T.astype(np.int64))
            vals.append(np.asarray(cols_[1 + nd :], dtype=np.float64).reshape(width, -1).T)
        if not idx:
            return (
                np.zeros(0, np.int64),
                np.zeros((0, nd), np.int64),
                np.zeros((0, width), np.float64),
            )
        return np.concatenate(idx), np.concatenate(codes), np.concatenate(vals)

    def _mask(self, codes: np.ndarray, scope: Sequence[Clause]) -> np.ndarray:
        mask = np.ones(len(codes), dtype=bool)
        for c in scope:
            if c.value is None:
                code = -1
            else:
                if c.value not in self._ids:
                    r = self.reader.query("SELECT id FROM strings WHERE value = ?", (c.value,))
                    self._ids[c.value] = r[0][0] if r else -2  # -2: no row can match
                code = self._ids[c.value]
            mask &= codes[:, self._pos[c.key]] == code
        return mask

    def breakdown(
        self, scope: Sequence[Clause], dims: Sequence[str]
    ) -> tuple[Agg, Agg, dict[str, dict[str | None, tuple[Agg | None, Agg | None, int]]]]:
        """(current total, baseline total unscaled, per dim and value: (current, baseline,
        baseline requests)); range 0 is current, the others the baseline."""
        if self._agg is None:
            groups = ", ".join(f"{i + 2}" for i in range(len(self.dims)))
            self._agg = self._read(_AGG_SQL, f"1 GROUP BY 1, {groups}", len(AGG_COLUMNS))
        idx, codes, vals = self._agg
        m = self._mask(codes, scope)
        idx, codes, vals = idx[m], codes[m], vals[m]
        is_cur = idx == 0
        cur_total = _agg_of(vals[is_cur].sum(axis=0).tolist()) if len(vals) else Agg()
        base_total = _agg_of(vals[~is_cur].sum(axis=0).tolist()) if len(vals) else Agg()
        per: dict[str, dict[str | None, tuple[Agg | None, Agg | None, int]]] = {}
        ids: set[int] = set()
        sums: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for d in dims:
            col = codes[:, self._pos[d]]
            keys, inv = np.unique(col * 2 + ~is_cur, return_inverse=True)
            inv = inv.reshape(-1)
            g = np.zeros((len(keys), vals.shape[1]))
            np.add.at(g, inv, vals)
            sums[d] = (keys // 2, keys % 2, g)
            ids.update(int(k) for k in keys // 2 if k >= 0)
        missing = ids - self._names.keys()
        if missing:
            self._names.update(self.reader.strings(missing))
        req = AGG_COLUMNS.index("requests")
        for d in dims:
            out: dict[str | None, tuple[Agg | None, Agg | None, int]] = {}
            for code, base, row in zip(*(x.tolist() for x in sums[d]), strict=True):
                name = None if code < 0 else self._names.get(code)
                cur_a, base_a, n = out.get(name, (None, None, 0))
                if base:
                    out[name] = (cur_a, _agg_of(row), n + int(round(row[req])))
                else:
                    out[name] = (_agg_of(row), base_a, n)
            per[d] = out
        return cur_total, base_total, per

    def tokens(self, scope: Sequence[Clause]) -> dict[int, tuple[list[int], list[int]]]:
        """`token_values` for this scope. A long baseline (7 days at 10M rows is ~2M rows) is
        sampled, every k-th row by id, to about TOKEN_SAMPLE rows: a p90 needs a fair sample,
        not every row, and reading every row cost more than all the other evidence together.
        The alerting window itself is always read whole."""
        if self._tok is None:
            if self._agg is not None:  # the baseline's row count is in the groups read already
                idx, _codes, vals = self._agg
                n = int(round(vals[idx > 0, AGG_COLUMNS.index("requests")].sum()))
            else:
                cte, params = _ranges_cte(self.ranges)
                only, oparams = self._only_sql()
                (n,) = self.reader.query(
                    f"{cte} SELECT count(*) FROM r JOIN calls c"
                    f" ON c.started_at >= r.a AND c.started_at < r.b WHERE r.idx > 0 AND {only}",
                    [*params, *oparams],
                )[0]
            k = max(1, -(-n // TOKEN_SAMPLE))
            self._tok = self._read(
                "c.input_tokens, c.output_tokens",
                f"c.status = 0 AND c.cache_hit = 0 AND (r.idx = 0 OR c.id % {k} = 0)",
                2,
            )
        idx, codes, vals = self._tok
        m = self._mask(codes, scope)
        idx, vals = idx[m], vals[m].astype(np.int64)
        out: dict[int, tuple[list[int], list[int]]] = {}
        for i in np.unique(idx).tolist():
            sel = idx == i
            out[i] = (vals[sel, 0].tolist(), vals[sel, 1].tolist())
        return out


#: Which AGG_COLUMNS are money (floats); the others are counts.
_MONEY = tuple(isinstance(getattr(_ZERO, name), float) for name in AGG_COLUMNS)


def _agg_of(row: Sequence[float]) -> Agg:
    return Agg(*(v if money else int(round(v)) for money, v in zip(_MONEY, row, strict=True)))


def error_breakdown(
    reader: Reader, start: float, end: float, clauses: Sequence[Clause] = ()
) -> list[tuple[str | None, str | None, str | None, int]]:
    """(error_class, error_code, model, failures) in a window, most failures first."""
    where, params = where_sql(clauses)
    return [
        tuple(r)  # type: ignore[misc]
        for r in reader.query(
            f"""SELECT (SELECT value FROM strings WHERE id = c.error_class),
            (SELECT value FROM strings WHERE id = c.error_code),
            (SELECT value FROM strings WHERE id = c.model), count(*)
            FROM calls c WHERE c.started_at >= ? AND c.started_at < ? AND c.status = 1 AND {where}
            GROUP BY c.error_class, c.error_code, c.model ORDER BY 4 DESC LIMIT 20""",
            (start, end, *params),
        )
    ]


def first_seen(
    reader: Reader, dim: str, value: str, start: float, end: float, clauses: Sequence[Clause] = ()
) -> float | None:
    """When a tag value first appears inside [start, end) (e.g. a new prompt version's deploy)."""
    expr, interned = dim_expr(dim)
    where, params = where_sql(clauses)
    cond = f"{expr} = (SELECT id FROM strings WHERE value = ?)" if interned else f"{expr} = ?"
    r = reader.query(
        f"SELECT min(c.started_at) FROM calls c WHERE c.started_at >= ? AND c.started_at < ? AND {cond} AND {where}",
        (start, end, value, *params),
    )
    return r[0][0] if r else None


def first_row_at(reader: Reader) -> float | None:
    """Oldest row: days before it are "no data", not "zero spend" (indexed, instant)."""
    return reader.query("SELECT min(started_at) FROM calls")[0][0]


def spend_between(
    reader: Reader, start: float, end: float, clauses: Sequence[Clause] = ()
) -> float:
    return reader.spend_between(start, end, clauses)


def rows_added_before(reader: Reader, after_id: int, before: float) -> bool:
    """Did rows with started_at < `before` arrive after row `after_id`? (walks new ids only)"""
    return bool(
        # NOT INDEXED: walk the new ids (a rowid range), never the started_at index, where
        # `started_at < before` matches nearly the whole file.
        reader.query(
            "SELECT 1 FROM calls NOT INDEXED WHERE id > ? AND started_at < ? LIMIT 1",
            (after_id, before),
        )
    )
