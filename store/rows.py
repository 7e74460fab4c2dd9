"""Bulk reads for exports: the `requests` view's rows in chunks, and per-dimension totals.

Why not `SELECT * FROM requests`: the view names each interned column with a correlated
subquery, about twenty per row, which caps an export at a few tens of thousands of rows a second.
Here the raw ids are read in started_at order (the index's order, so SQLite streams and never
sorts) and named from a cache that fills once per distinct value; ids, latency and status are
computed exactly as the view computes them, so every row equals the view's row (test_export
holds the two to it). Columns follow the view's own list, read at run time, so a column a
migration adds to the view is exported without an edit here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from llmtop.store.engine import Spec, Tracker, total
from llmtop.store.filters import Clause, where_sql
from llmtop.store.reader import Reader
from llmtop.store.records import unpack_id
from llmtop.store.rollup import (
    F_CR,
    F_FAIL,
    F_FAILED_SPEND,
    F_FALLBACK,
    F_IN,
    F_N,
    F_OUT,
    F_RETRY,
    F_RETRY_SPEND,
    F_SPEND,
    F_UNMETERED,
    F_UNPRICED,
    Agg,
)
from llmtop.store.schema import STRING_COLUMNS

#: View columns computed rather than read as they are.
_UUID_COLUMNS = ("trace_id", "litellm_call_id")
_COMPUTED = {
    "status": "c.status",
    "latency_ms": "(c.ended_at - c.started_at) * 1000.0",
}
_REAL = ("started_at", "ended_at", "latency_ms", "ttft_ms")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int", "float" or "str": what a typed format (parquet) declares


def request_columns(reader: Reader) -> tuple[Column, ...]:
    """The `requests` view's columns, in its order, with the type each value has."""
    names = [r[1] for r in reader.query("PRAGMA table_info(requests)")]
    decl = {r[1]: (r[2] or "").upper() for r in reader.query("PRAGMA table_xinfo(calls)")}
    out = []
    for n in names:
        if n in STRING_COLUMNS or n in _UUID_COLUMNS or n in ("status", "tags_json"):
            kind = "str"
        elif n in _REAL or n.endswith("_usd") or decl.get(n, "").startswith("REAL"):
            kind = "float"
        elif decl.get(n, "").startswith("INT"):
            kind = "int"
        else:
            kind = "str"
        out.append(Column(n, kind))
    return tuple(out)


def count_rows(reader: Reader, start: float, end: float, clauses: Sequence[Clause] = ()) -> int:
    """Rows in [start, end) under a filter, from rollups where they fit (a progress bar's total
    must not cost a scan of its own)."""
    where, params = where_sql(clauses)
    spec = Spec(
        where=where, params=tuple(params), keys=frozenset(c.key for c in clauses), fields=()
    )
    groups = Tracker(spec).update(reader.source(), start, end, 0, time.time())
    return int(total(groups).v[F_N]) if groups else 0


def request_chunks(
    reader: Reader,
    start: float,
    end: float,
    clauses: Sequence[Clause] = (),
    *,
    size: int = 20_000,
    columns: Sequence[Column] | None = None,
    newest_first: bool = False,
) -> Iterator[list[tuple[Any, ...]]]:
    """The view's rows with started_at in [start, end) under a filter, oldest first (or newest
    first, the dashboard's request list order), in lists of `size` (constant memory whatever
    the range holds)."""
    cols = tuple(columns) if columns is not None else request_columns(reader)
    exprs = [_COMPUTED.get(c.name, f"c.{c.name}") for c in cols]
    interned = [i for i, c in enumerate(cols) if c.name in STRING_COLUMNS]
    uuids = [i for i, c in enumerate(cols) if c.name in _UUID_COLUMNS]
    status = [i for i, c in enumerate(cols) if c.name == "status"]
    where, params = where_sql(clauses)
    sql = (
        f"SELECT {', '.join(exprs)} FROM calls AS c WHERE c.started_at >= ? AND c.started_at < ?"
        f" AND {where} ORDER BY c.started_at{' DESC' if newest_first else ''},"
        f" c.id{' DESC' if newest_first else ''}"
    )
    names: dict[int, str] = {}
    for chunk in reader.chunks(sql, (start, end, *params), size):
        missing = {r[i] for r in chunk for i in interned if r[i] is not None} - names.keys()
        if missing:
            names.update(reader.strings(missing))
        out = []
        for r in chunk:
            row = list(r)
            for i in interned:
                if row[i] is not None:
                    row[i] = names.get(row[i])
            for i in uuids:
                row[i] = unpack_id(row[i])
            for i in status:
                row[i] = "success" if row[i] == 0 else "failure"
            out.append(tuple(row))
        yield out
        if len(names) > 200_000:  # users and customers can be many: keep the cache bounded
            names.clear()


@dataclass(frozen=True)
class GroupTotal:
    """One value of a dimension over a range: what `llmtop export --group-by` writes."""

    key: str | None
    requests: int
    spend_usd: float
    failures: int
    retries: int
    fallbacks: int
    #: None where the source cannot say (Reader.unavailable): an empty cell, never 0.
    unpriced: int | None
    unmetered: int | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    failed_spend_usd: float
    retry_spend_usd: float

    @property
    def cost_per_request(self) -> float:
        return self.spend_usd / self.requests if self.requests else 0.0


GROUP_COLUMNS: tuple[Column, ...] = (
    Column("key", "str"),
    *(
        Column(n, "float" if n.endswith("_usd") else "int")
        for n in GroupTotal.__dataclass_fields__
        if n != "key"
    ),
    Column("cost_per_request", "float"),
)


def group_total(key: str | None, a: Agg, unavailable: frozenset[str] = frozenset()) -> GroupTotal:
    v = a.v
    return GroupTotal(
        key=key,
        requests=int(v[F_N]),
        spend_usd=v[F_SPEND],
        failures=int(v[F_FAIL]),
        retries=int(v[F_RETRY]),
        fallbacks=int(v[F_FALLBACK]),
        unpriced=None if "unpriced" in unavailable else int(v[F_UNPRICED]),
        unmetered=None if "unmetered" in unavailable else int(v[F_UNMETERED]),
        input_tokens=int(v[F_IN]),
        output_tokens=int(v[F_OUT]),
        cache_read_tokens=int(v[F_CR]),
        failed_spend_usd=v[F_FAILED_SPEND],
        retry_spend_usd=v[F_RETRY_SPEND],
    )


def group_totals(
    reader: Reader, start: float, end: float, dim: str, clauses: Sequence[Clause] = ()
) -> list[GroupTotal]:
    """Totals per value of `dim` over [start, end), biggest spend first; from rollups (whole
    days and hours) plus raw rows at the edges, so a 30-day grouping at 10M rows is quick."""
    where, params = where_sql(clauses)
    spec = Spec(
        dims=(dim,), where=where, params=tuple(params), keys=frozenset(c.key for c in clauses)
    )
    groups = Tracker(spec).update(reader.source(), start, end, 0, time.time())
    rows = [group_total(k[0], a, reader.unavailable) for k, a in groups.items()]
    rows.sort(key=lambda g: (-g.spend_usd, -g.requests, g.key or ""))
    return rows
