"""Read-side queries: everything the dashboard and `llmtop check` show, as plain dataclasses.

The TUI never sees SQL or a connection object; it calls `load_snapshot` (in a worker thread) and
renders what comes back. All functions take an explicit `now` so tests and snapshots can freeze
the clock.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from llmtop.store.db import DatabaseError, connect, explain
from llmtop.store.engine import Source, Spec, Tracker, merge_groups, total
from llmtop.store.records import pack_id, unpack_id
from llmtop.store.rollup import (
    F_CACHED,
    F_CR,
    F_ELIGIBLE,
    F_FAIL,
    F_FAILED_SPEND,
    F_FALLBACK,
    F_IN,
    F_N,
    F_OUT,
    F_RC_HITS,
    F_RETRY,
    F_RETRY_SPEND,
    F_SAVED_RC,
    F_SPEND,
    F_UNMETERED,
    F_UNPRICED,
    INPUT,
    LATENCY,
    OUTPUT,
    TTFT,
    Agg,
)
from llmtop.store.schema import STRING_COLUMNS, applied_migrations, check_not_newer, migrate

WINDOWS: dict[str, float] = {
    "5m": 300.0,
    "1h": 3600.0,
    "6h": 6 * 3600.0,
    "24h": 86400.0,
    "7d": 7 * 86400.0,
    "30d": 30 * 86400.0,
}

#: Dimensions with their own column; any other name is looked up in `tags_json`.
STRING_DIMENSIONS: tuple[str, ...] = (
    "feature",
    "endpoint",
    "model",
    "provider",
    "team",
    "environment",
    "workload",
    "customer",
    "user",
    "prompt_version",
    "route_version",
    "error_class",
    "model_group",
    "response_model",
    "call_type",
)
DIMENSIONS: tuple[str, ...] = (*STRING_DIMENSIONS, "status")
NONE_LABEL = "(none)"


def parse_window(text: str) -> float:
    """'90s', '15m', '1h', '7d' → seconds; ValueError with the accepted forms otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not m:
        raise ValueError(
            f"bad window {text!r}: use a number and a unit, e.g. 5m, 1h, 6h, 24h, 7d, 30d"
        )
    n = float(m.group(1))
    if n <= 0:
        raise ValueError(f"bad window {text!r}: must be positive")
    return n * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[m.group(2)]


def format_window(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


# --- filters -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clause:
    key: str
    op: str  # "=", "!=", "~" (glob), "!~"
    value: str | None  # None matches rows without the tag


_CLAUSE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\-]*)\s*(!=|!~|=|~)\s*(.*)$")


def parse_filter(text: str) -> tuple[Clause, ...]:
    """`team=search model~gpt-4o* status=failure` → clauses (all must hold)."""
    out: list[Clause] = []
    for part in _split(text):
        m = _CLAUSE.match(part)
        if not m:
            raise ValueError(
                f"bad filter term {part!r}: use key=value, key!=value, key~glob* or key!~glob*"
            )
        key, op, value = m.group(1), m.group(2), m.group(3)
        if key == "status" and value not in ("success", "failure"):
            raise ValueError("status takes success or failure")
        out.append(Clause(key, op, None if value in ("", NONE_LABEL) else value))
    return tuple(out)


def _split(text: str) -> list[str]:
    parts, cur, quote = [], "", None
    for ch in text.strip():
        if quote:
            if ch == quote:
                quote = None
            else:
                cur += ch
        elif ch in "\"'":
            quote = ch
        elif ch.isspace():
            if cur:
                parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


def format_filter(clauses: Sequence[Clause]) -> str:
    return " ".join(
        f"{c.key}{c.op}{c.value if c.value is not None else NONE_LABEL}" for c in clauses
    )


def _dim_expr(dim: str) -> tuple[str, bool]:
    """SQL for a dimension over `calls AS c`, and whether it is an id into `strings`."""
    if dim in STRING_DIMENSIONS or dim in STRING_COLUMNS:
        return f"c.{dim}", True
    if dim == "status":
        return "CASE c.status WHEN 0 THEN 'success' ELSE 'failure' END", False
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", dim):
        raise ValueError(f"bad dimension {dim!r}")
    return f"json_extract(c.tags_json, '$.\"{dim}\"')", False


def _where(clauses: Sequence[Clause]) -> tuple[str, list[Any]]:
    sql: list[str] = []
    params: list[Any] = []
    for c in clauses:
        expr, interned = _dim_expr(c.key)
        neg = c.op.startswith("!")
        if c.value is None:
            sql.append(f"{expr} IS {'NOT ' if neg else ''}NULL")
            continue
        if interned:
            op = "GLOB" if "~" in c.op else "="
            sub = f"SELECT id FROM strings WHERE value {op} ?"
            sql.append(
                f"({expr} {'NOT ' if neg else ''}IN ({sub}){' OR ' + expr + ' IS NULL' if neg else ''})"
            )
        else:
            op = "GLOB" if "~" in c.op else "="
            sql.append(f"({'NOT ' if neg else ''}coalesce({expr} {op} ?, 0))")
        params.append(c.value)
    return (" AND ".join(sql) or "1"), params


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    requests: int = 0
    spend: float = 0.0
    failures: int = 0
    retries: int = 0
    fallbacks: int = 0
    unpriced: int = 0
    unmetered: int = 0
    response_cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    failed_spend: float = 0.0
    retry_spend: float = 0.0
    saved_response_cache: float = 0.0


@dataclass(frozen=True)
class Burn:
    per_hour_now: float
    per_hour_window: float
    per_hour_baseline: float | None
    today: float
    month: float
    month_projection: float
    requests_per_min: float
    spark: tuple[float, ...]


@dataclass(frozen=True)
class CacheStats:
    hit_rate: float | None
    read_share: float | None
    saved_prompt_cache: float
    saved_response_cache: float
    response_cache_hits: int


@dataclass(frozen=True)
class ErrorStats:
    error_rate: float | None
    retry_rate: float | None
    fallback_rate: float | None
    by_class: tuple[tuple[str, int], ...]
    failed_spend: float
    retry_spend: float
    spark: tuple[float, ...]


@dataclass(frozen=True)
class TokenStats:
    input_p50: float | None
    input_p90: float | None
    output_p50: float | None
    output_p90: float | None
    out_in_ratio: float | None
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    ttft_p50: float | None
    ttft_p95: float | None


@dataclass(frozen=True)
class GroupRow:
    key: str | None
    spend: float
    share: float
    delta: float | None  # relative change of spend vs the previous window; None if it had none
    requests: int
    cost_per_request: float
    cost_per_1k: float
    tokens_per_request: float
    cache_hit: float
    retry: float
    error: float
    p95_latency_ms: float | None
    unpriced: int


#: Groups a snapshot carries, biggest spend first (the rest are counted, see Snapshot).
MAX_GROUPS = 500


@dataclass(frozen=True)
class Snapshot:
    now: float
    start: float
    end: float
    group_by: str
    clauses: tuple[Clause, ...]
    totals: Totals
    burn: Burn
    cache: CacheStats
    errors: ErrorStats
    tokens: TokenStats
    groups: tuple[GroupRow, ...]
    dropped: int
    max_id: int
    dimensions: tuple[str, ...] = DIMENSIONS
    #: How many groups the window has; only the MAX_GROUPS biggest spenders are in `groups`.
    groups_total: int = 0
    #: Spend of the groups left out.
    rest_spend: float = 0.0


@dataclass(frozen=True)
class RequestRow:
    id: int
    started_at: float
    model: str | None
    feature: str | None
    status: str
    error_class: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: float | None
    latency_ms: float | None
    attempt: int
    trace_id: str | None
    unpriced: bool
    unmetered: bool
    source: str = ""  # which database, when several are open (MultiReader)


@dataclass(frozen=True)
class RequestDetail:
    fields: tuple[tuple[str, Any], ...]
    attempts: tuple[RequestRow, ...] = field(default_factory=tuple)


# --- helpers -------------------------------------------------------------------------------------


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile of already sorted values (what htop-style tools report)."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    return float(sorted_values[rank - 1])


def _rate(num: float, den: float) -> float | None:
    return num / den if den else None


def classify_error(error_class: str | None, error_code: str | None) -> str:
    """The buckets an on-call engineer acts on differently."""
    cls = (error_class or "").lower()
    code = error_code or ""
    if code == "429" or "ratelimit" in cls:
        return "429 rate limit"
    if "timeout" in cls or code == "408":
        return "timeout"
    if "contextwindow" in cls:
        return "context window"
    if "contentpolicy" in cls or "contentfilter" in cls:
        return "content filter"
    if code.startswith("5") or "internalserver" in cls or "serviceunavailable" in cls:
        return "5xx"
    return "other"


_NICE_WIDTHS = (
    10,
    20,
    30,
    60,
    120,
    180,
    240,
    300,
    360,
    600,
    720,
    900,
    1200,
    1800,
    3600,
    7200,
    10800,
    14400,
    21600,
    28800,
    43200,
    86400,
)


def spark_width(window: float, buckets: int) -> int:
    """A sparkline bin size that rollup buckets divide, close to window/buckets."""
    w = window / buckets
    for n in _NICE_WIDTHS:
        if n >= w:
            return n
    return math.ceil(w / 86400) * 86400


def _trackers(
    group_by: str, clauses: Sequence[Clause], window: float, buckets: int
) -> dict[str, Tracker]:
    where, params = _where(clauses)
    keys = frozenset(c.key for c in clauses)
    dims = () if group_by == "source" else (group_by,)

    def spec(**kw: Any) -> Spec:
        return Spec(where=kw.pop("where", where), params=tuple(params), keys=keys, **kw)

    fail_where = f"({where}) AND c.status = 1"
    out = {
        "totals": Tracker(spec(hist="all")),
        "main": Tracker(spec(dims=dims, hist="latency")),
        "prev": Tracker(spec(dims=dims, fields=(F_SPEND,))),
        "errors": Tracker(
            Spec(
                dims=("error_class", "error_code"),
                where=fail_where,
                params=tuple(params),
                keys=keys | {"status"},
                fields=(),
            )
        ),
        "price": Tracker(spec(dims=("price_key",), fields=(F_CR,))),
        "spark": Tracker(spec(width=spark_width(window, buckets), fields=(F_SPEND, F_FAIL))),
        "recent": Tracker(spec(fields=(F_SPEND,))),
        "today": Tracker(spec(fields=(F_SPEND,))),
        "month": Tracker(spec(fields=(F_SPEND,))),
    }
    for d in range(1, 8):
        out[f"base{d}"] = Tracker(spec(fields=(F_SPEND,)))
    return out


@dataclass
class Partial:
    """One database's share of a snapshot, before merging (see MultiReader)."""

    totals: Agg
    main: dict[Any, Agg]
    prev: dict[Any, Agg]
    errors: dict[Any, Agg]
    price: dict[Any, Agg]
    spark: dict[Any, Agg]
    recent: Agg
    base: tuple[float | None, ...]
    today: float
    month: float
    dropped: int
    max_id: int
    dimensions: tuple[str, ...]


def assemble(
    parts: Sequence[Partial],
    *,
    now: float,
    window: float,
    group_by: str,
    clauses: Sequence[Clause],
    buckets: int = 30,
) -> Snapshot:
    """Merge the partials of one or more databases into what the dashboard shows."""
    start = now - window
    main = merge_groups([p.main for p in parts])
    tot = Agg()
    for p in parts:
        tot.merge(p.totals)
    v = tot.v
    totals = Totals(
        requests=int(v[F_N]),
        spend=v[F_SPEND],
        failures=int(v[F_FAIL]),
        retries=int(v[F_RETRY]),
        fallbacks=int(v[F_FALLBACK]),
        unpriced=int(v[F_UNPRICED]),
        unmetered=int(v[F_UNMETERED]),
        response_cache_hits=int(v[F_RC_HITS]),
        input_tokens=int(v[F_IN]),
        output_tokens=int(v[F_OUT]),
        cache_read_tokens=int(v[F_CR]),
        failed_spend=v[F_FAILED_SPEND],
        retry_spend=v[F_RETRY_SPEND],
        saved_response_cache=v[F_SAVED_RC],
    )

    width = spark_width(window, buckets)
    spark_groups = merge_groups([p.spark for p in parts])
    b0 = int(start // width) * width
    bins = range(b0, int(now // width) * width + 1, width)
    spark = tuple(spark_groups[b].v[F_SPEND] if b in spark_groups else 0.0 for b in bins)
    err_spark = tuple(float(spark_groups[b].v[F_FAIL]) if b in spark_groups else 0.0 for b in bins)

    recent_s = min(300.0, window)
    recent = Agg()
    for p in parts:
        recent.merge(p.recent)
    base_days = [
        [p.base[d] for p in parts if p.base[d] is not None] for d in range(len(parts[0].base))
    ]
    base_vals = [sum(x) for x in base_days if x]  # type: ignore[misc]
    month = sum(p.month for p in parts)
    local = datetime.fromtimestamp(now)
    month0 = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (month0 + timedelta(days=32)).replace(day=1)
    elapsed = now - month0.timestamp()
    span = next_month.timestamp() - month0.timestamp()
    burn = Burn(
        per_hour_now=recent.v[F_SPEND] * 3600.0 / recent_s,
        per_hour_window=totals.spend * 3600.0 / window,
        per_hour_baseline=sum(base_vals) / len(base_vals) if base_vals else None,
        today=sum(p.today for p in parts),
        month=month,
        month_projection=month * span / elapsed if elapsed > 0 else month,
        requests_per_min=recent.v[F_N] * 60.0 / recent_s,
        spark=spark,
    )

    # Prompt-cache savings: cached reads priced at the full input rate minus what they cost.
    saved_prompt = 0.0
    price = merge_groups([p.price for p in parts])
    per_key = [(k[0], g.v[F_CR]) for k, g in price.items() if k[0] and g.v[F_CR] > 0]
    if per_key:
        from llmtop.pricing import catalogue

        cat = catalogue()
        for name, n in per_key:
            n = int(n)
            full = cat.cost(name, input_tokens=n, output_tokens=0, price_key=name)
            cached = cat.cost(
                name, input_tokens=n, output_tokens=0, cache_read_tokens=n, price_key=name
            )
            if full.total_usd is not None and cached.total_usd is not None:
                saved_prompt += full.total_usd - cached.total_usd
    cache = CacheStats(
        hit_rate=_rate(v[F_CACHED], v[F_ELIGIBLE]),
        read_share=_rate(totals.cache_read_tokens, totals.input_tokens),
        saved_prompt_cache=saved_prompt,
        saved_response_cache=totals.saved_response_cache,
        response_cache_hits=totals.response_cache_hits,
    )

    by_class: dict[str, int] = {}
    for (ec, code), g in merge_groups([p.errors for p in parts]).items():
        k = classify_error(ec, code)
        by_class[k] = by_class.get(k, 0) + int(g.v[F_N])
    errors = ErrorStats(
        error_rate=_rate(totals.failures, totals.requests),
        retry_rate=_rate(totals.retries, totals.requests),
        fallback_rate=_rate(totals.fallbacks, totals.requests),
        by_class=tuple(sorted(by_class.items(), key=lambda kv: -kv[1])),
        failed_spend=totals.failed_spend,
        retry_spend=totals.retry_spend,
        spark=err_spark,
    )

    def whole(x: float | None) -> float | None:  # token counts are integers
        return None if x is None else float(round(x))

    tokens = TokenStats(
        input_p50=whole(tot.quantile(INPUT, 0.5)),
        input_p90=whole(tot.quantile(INPUT, 0.9)),
        output_p50=whole(tot.quantile(OUTPUT, 0.5)),
        output_p90=whole(tot.quantile(OUTPUT, 0.9)),
        out_in_ratio=_rate(v[F_OUT], v[F_IN]),
        latency_p50=tot.quantile(LATENCY, 0.5),
        latency_p95=tot.quantile(LATENCY, 0.95),
        latency_p99=tot.quantile(LATENCY, 0.99),
        ttft_p50=tot.quantile(TTFT, 0.5),
        ttft_p95=tot.quantile(TTFT, 0.95),
    )

    prev = merge_groups([p.prev for p in parts])
    # Biggest spenders only: grouping by user on a busy proxy gives tens of thousands of groups,
    # which no one reads and a terminal table cannot redraw every second.
    ranked = sorted(
        main.items(), key=lambda kv: (-kv[1].v[F_SPEND], -kv[1].v[F_N], str(kv[0][0] or ""))
    )
    top, rest = ranked[:MAX_GROUPS], ranked[MAX_GROUPS:]
    groups = []
    for key, g in top:
        gv = g.v
        n = int(gv[F_N])
        spend = gv[F_SPEND]
        pg = prev.get(key)
        pv = pg.v[F_SPEND] if pg is not None else 0.0
        label = key[0]
        groups.append(
            GroupRow(
                key=None if label is None else str(label),
                spend=spend,
                share=spend / totals.spend if totals.spend else 0.0,
                delta=(spend - pv) / pv if pv else None,
                requests=n,
                cost_per_request=spend / n if n else 0.0,
                cost_per_1k=spend * 1000.0 / n if n else 0.0,
                tokens_per_request=(gv[F_IN] + gv[F_OUT]) / n if n else 0.0,
                cache_hit=gv[F_CACHED] / gv[F_ELIGIBLE] if gv[F_ELIGIBLE] else 0.0,
                retry=gv[F_RETRY] / n if n else 0.0,
                error=gv[F_FAIL] / n if n else 0.0,
                p95_latency_ms=g.quantile(LATENCY, 0.95),
                unpriced=int(gv[F_UNPRICED]),
            )
        )
    dims: list[str] = []
    for p in parts:
        dims.extend(d for d in p.dimensions if d not in dims)
    if len(parts) > 1 and "source" not in dims:
        dims.append("source")
    return Snapshot(
        now=now,
        start=start,
        end=now,
        group_by=group_by,
        clauses=tuple(clauses),
        totals=totals,
        burn=burn,
        cache=cache,
        errors=errors,
        tokens=tokens,
        groups=tuple(groups),
        dropped=sum(p.dropped for p in parts),
        max_id=sum(p.max_id for p in parts),
        dimensions=tuple(dims),
        groups_total=len(ranked),
        rest_spend=sum(g.v[F_SPEND] for _, g in rest),
    )


class Reader:
    """One read connection and the queries over it (used from a single worker thread at a time)."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        try:
            if readonly:
                self.conn = connect(self.path, readonly=True, check_same_thread=False)
                check_not_newer(self.conn, self.path)
                if "m004_rollups" not in applied_migrations(self.conn):
                    self.conn.close()
                    raise DatabaseError(
                        f"{self.path}: written by an older llmtop; open it once on its own"
                        f" (llmtop --db {self.path}) to upgrade it, then merge it read-only"
                    )
            else:
                self.conn = connect(self.path, check_same_thread=False)
                migrate(self.conn, self.path)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(explain(self.path, exc)) from exc

        self._src: Source | None = None
        self._view: tuple[Any, ...] | None = None
        self._trackers: dict[str, Tracker] = {}
        self._views: dict[Any, dict[str, Tracker]] = {}
        #: Sliding trackers of the alert engine's ranges (store/alert_queries.sliding_spend).
        self.alert_trackers: dict[Any, Tracker] = {}

    def close(self) -> None:
        self.conn.close()

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(explain(self.path, exc)) from exc

    def max_id(self) -> int:
        return self._q("SELECT coalesce(max(id), 0) FROM calls")[0][0]

    def string(self, sid: int | None) -> str | None:
        if sid is None:
            return None
        r = self._q("SELECT value FROM strings WHERE id = ?", (sid,))
        return r[0][0] if r else None

    def _strings(self, ids: set[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        ids_l = [i for i in ids if i is not None]
        for i in range(0, len(ids_l), 500):
            chunk = ids_l[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self._q(f"SELECT id, value FROM strings WHERE id IN ({marks})", chunk))
        return out

    def spend_between(self, start: float, end: float, clauses: Sequence[Clause] = ()) -> float:
        """Spend over any range, from rollups where they fit (a month-to-date budget check reads
        a few hundred rollup rows, not a month of calls)."""
        where, params = _where(clauses)
        spec = Spec(where=where, params=tuple(params), keys=frozenset(c.key for c in clauses))
        groups = Tracker(spec).update(self._source(), start, end, 0, time.time())
        return total(groups).v[F_SPEND]

    def dropped(self) -> int:
        return self._q("SELECT coalesce(sum(count), 0) FROM drops")[0][0]

    def dimensions(self) -> tuple[str, ...]:
        """Built-in dimensions plus any extra tag key seen in recent rows."""
        keys: set[str] = set()
        # The newest few thousand rows by rowid: a range on the primary key, never a table scan.
        for (tj,) in self._q(
            "SELECT tags_json FROM calls WHERE id > (SELECT coalesce(max(id), 0) - 5000 FROM calls)"
            " AND tags_json IS NOT NULL"
        ):
            try:
                keys.update(json.loads(tj))
            except (ValueError, TypeError):
                continue
        return (*DIMENSIONS, *sorted(k for k in keys if k not in DIMENSIONS))

    # --- the dashboard snapshot ---
    def _source(self) -> Source:
        if self._src is None:
            self._src = Source(self._q, self._strings, _dim_expr)
        return self._src

    def partial(
        self,
        *,
        now: float,
        window: float,
        group_by: str = "feature",
        clauses: Sequence[Clause] = (),
        buckets: int = 30,
        source: str | None = None,
    ) -> Partial:
        """This database's share of a snapshot: mergeable aggregates, kept warm between calls.

        Everything is read in one transaction, so the rows, rollups and max id agree.
        """
        view = (group_by, tuple(clauses), window, buckets)
        if self._view != view:
            # The last few views stay warm: flipping 1h → 30d → 1h slides instead of re-reading.
            self._views[self._view] = self._trackers
            self._trackers = self._views.pop(view, None) or _trackers(
                group_by, clauses, window, buckets
            )
            self._view = view
            while len(self._views) > 2:
                self._views.pop(next(iter(self._views)))
        t = self._trackers
        src = self._source()
        local = datetime.fromtimestamp(now)
        day0 = local.replace(hour=0, minute=0, second=0, microsecond=0)
        month0 = day0.replace(day=1)
        self._q("BEGIN")
        try:
            max_id = self.max_id()
            first = self._q("SELECT min(started_at) FROM calls")[0][0]

            def upd(name: str, a: float, b: float) -> dict[Any, Agg]:
                return t[name].update(src, a, b, max_id, now)

            main = upd("main", now - window, now)
            prev = upd("prev", now - 2 * window, now - window)
            if group_by == "source":
                main = {(source,): total(main)} if main else {}
                prev = {(source,): total(prev)} if prev else {}
            base: list[float | None] = []
            for d in range(1, 8):
                s0 = now - d * 86400 - 3600
                if first is None or first > s0:
                    base.append(None)
                    continue
                base.append(total(upd(f"base{d}", s0, now - d * 86400)).v[F_SPEND])
            part = Partial(
                totals=total(upd("totals", now - window, now)),
                main=main,
                prev=prev,
                errors=upd("errors", now - window, now),
                price=upd("price", now - window, now),
                spark=upd("spark", now - window, now),
                recent=total(upd("recent", now - min(300.0, window), now)),
                base=tuple(base),
                today=total(upd("today", day0.timestamp(), now)).v[F_SPEND],
                month=total(upd("month", month0.timestamp(), now)).v[F_SPEND],
                dropped=self.dropped(),
                max_id=max_id,
                dimensions=self.dimensions(),
            )
        finally:
            self._q("COMMIT")
        return part

    def snapshot(
        self,
        *,
        now: float,
        window: float,
        group_by: str = "feature",
        clauses: Sequence[Clause] = (),
        buckets: int = 30,
    ) -> Snapshot:
        part = self.partial(
            now=now,
            window=window,
            group_by=group_by,
            clauses=clauses,
            buckets=buckets,
            source=self.path.stem,
        )
        return assemble([part], now=now, window=window, group_by=group_by, clauses=clauses)

    # --- requests and detail ---
    def requests(
        self, *, now: float, window: float, clauses: Sequence[Clause] = (), limit: int = 500
    ) -> tuple[RequestRow, ...]:
        where, params = _where(clauses)
        rs = self._q(
            f"""SELECT c.id, c.started_at, c.model, c.feature, c.status, c.error_class, c.input_tokens,
            c.output_tokens, c.cache_read_tokens, c.cost_usd, (c.ended_at - c.started_at) * 1000.0,
            c.attempt, c.trace_id, c.unpriced, c.unmetered
            FROM calls c WHERE c.started_at >= ? AND c.started_at < ? AND {where}
            ORDER BY c.started_at DESC, c.id DESC LIMIT ?""",
            (now - window, now, *params, limit),
        )
        return self._request_rows(rs)

    def _request_rows(self, rs: list[tuple[Any, ...]]) -> tuple[RequestRow, ...]:
        names = self._strings({r[2] for r in rs} | {r[3] for r in rs} | {r[5] for r in rs})
        return tuple(
            RequestRow(
                id=r[0],
                started_at=r[1],
                model=names.get(r[2]),
                feature=names.get(r[3]),
                status="success" if r[4] == 0 else "failure",
                error_class=names.get(r[5]),
                input_tokens=r[6],
                output_tokens=r[7],
                cache_read_tokens=r[8],
                cost_usd=r[9],
                latency_ms=r[10],
                attempt=r[11],
                trace_id=unpack_id(r[12]),
                unpriced=bool(r[13]),
                unmetered=bool(r[14]),
            )
            for r in rs
        )

    def detail(self, row_id: int, source: str = "") -> RequestDetail | None:
        cur = self.conn.execute("SELECT * FROM requests WHERE id = ?", (row_id,))
        row = cur.fetchone()
        if row is None:
            return None
        names = [d[0] for d in cur.description]
        fields = tuple(zip(names, row, strict=True))
        d = dict(fields)
        attempts: tuple[RequestRow, ...] = ()
        if d.get("trace_id"):
            rs = self._q(
                """SELECT c.id, c.started_at, c.model, c.feature, c.status, c.error_class, c.input_tokens,
                c.output_tokens, c.cache_read_tokens, c.cost_usd, (c.ended_at - c.started_at) * 1000.0,
                c.attempt, c.trace_id, c.unpriced, c.unmetered
                FROM calls c WHERE c.started_at BETWEEN ? AND ? AND c.trace_id = ? ORDER BY c.started_at, c.id""",
                (d["started_at"] - 3600, d["started_at"] + 3600, pack_id(d["trace_id"])),
            )
            attempts = self._request_rows(rs)
        return RequestDetail(fields=fields, attempts=attempts)


def source_labels(paths: Sequence[Path]) -> list[str]:
    """Short, distinct names for databases: the file stem, or parent/stem when stems collide."""
    stems = [p.stem for p in paths]
    out = []
    for p, stem in zip(paths, stems, strict=True):
        label = stem if stems.count(stem) == 1 else f"{p.parent.name}/{stem}"
        while label in out:
            label += "'"
        out.append(label)
    return out


class MultiReader:
    """Several databases (hosts, services) read as one, read-only, with `source` as a dimension.

    Each file answers for itself with mergeable partials (its own string ids and row ids never
    leave it), and the partials are added up: the same code path as one file.
    """

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self.labels = source_labels(self.paths)
        self.readers: list[Reader] = []
        try:
            for p in self.paths:
                self.readers.append(Reader(p, readonly=True))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for r in self.readers:
            r.close()

    def _pick(
        self, clauses: Sequence[Clause]
    ) -> tuple[list[tuple[str, Reader]], tuple[Clause, ...]]:
        mine = [c for c in clauses if c.key == "source"]
        rest = tuple(c for c in clauses if c.key != "source")
        chosen = []
        for label, r in zip(self.labels, self.readers, strict=True):
            ok = True
            for c in mine:
                hit = fnmatch.fnmatchcase(label, c.value or "") if "~" in c.op else label == c.value
                ok = ok and (hit != c.op.startswith("!"))
            if ok:
                chosen.append((label, r))
        return chosen, rest

    def snapshot(
        self,
        *,
        now: float,
        window: float,
        group_by: str = "feature",
        clauses: Sequence[Clause] = (),
        buckets: int = 30,
    ) -> Snapshot:
        chosen, rest = self._pick(clauses)
        parts = [
            r.partial(
                now=now,
                window=window,
                group_by=group_by,
                clauses=rest,
                buckets=buckets,
                source=label,
            )
            for label, r in chosen
        ]
        if not parts:  # a source filter that matches no file: an empty screen, not an error
            parts = [
                Partial(
                    totals=Agg(),
                    main={},
                    prev={},
                    errors={},
                    price={},
                    spark={},
                    recent=Agg(),
                    base=(None,) * 7,
                    today=0.0,
                    month=0.0,
                    dropped=0,
                    max_id=0,
                    dimensions=DIMENSIONS,
                )
            ]
        snap = assemble(parts, now=now, window=window, group_by=group_by, clauses=clauses)
        return dataclasses.replace(
            snap,
            dropped=sum(r.dropped() for r in self.readers),
            dimensions=(
                *snap.dimensions,
                *(("source",) if "source" not in snap.dimensions else ()),
            ),
        )

    def requests(
        self, *, now: float, window: float, clauses: Sequence[Clause] = (), limit: int = 500
    ) -> tuple[RequestRow, ...]:
        chosen, rest = self._pick(clauses)
        rows = [
            dataclasses.replace(row, source=label)
            for label, r in chosen
            for row in r.requests(now=now, window=window, clauses=rest, limit=limit)
        ]
        rows.sort(key=lambda x: (-x.started_at, x.source, -x.id))
        return tuple(rows[:limit])

    def detail(self, row_id: int, source: str = "") -> RequestDetail | None:
        for label, r in zip(self.labels, self.readers, strict=True):
            if label == source:
                d = r.detail(row_id)
                if d is None:
                    return None
                return RequestDetail(
                    fields=(("source", label), *d.fields),
                    attempts=tuple(dataclasses.replace(a, source=label) for a in d.attempts),
                )
        return None
