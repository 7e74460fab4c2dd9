"""Read-side queries: everything the dashboard and `llmtop check` show, as plain dataclasses.

The TUI never sees SQL or a connection object; it calls `load_snapshot` (in a worker thread) and
renders what comes back. All functions take an explicit `now` so tests and snapshots can freeze
the clock.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from llmtop.store.db import DatabaseError, connect, explain
from llmtop.store.schema import check_not_newer, migrate

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
    if dim in STRING_DIMENSIONS:
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


class Reader:
    """One read connection and the queries over it (used from a single worker thread at a time)."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        try:
            if readonly:
                self.conn = connect(self.path, readonly=True, check_same_thread=False)
                check_not_newer(self.conn, self.path)
            else:
                self.conn = connect(self.path, check_same_thread=False)
                migrate(self.conn, self.path)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(explain(self.path, exc)) from exc

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
        where, params = _where(clauses)
        return self._q(
            f"SELECT coalesce(sum(c.cost_usd), 0) FROM calls c WHERE c.started_at >= ? AND c.started_at < ? AND {where}",
            (start, end, *params),
        )[0][0]

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
    def snapshot(
        self,
        *,
        now: float,
        window: float,
        group_by: str = "feature",
        clauses: Sequence[Clause] = (),
        buckets: int = 30,
    ) -> Snapshot:
        start = now - window
        where, params = _where(clauses)
        base = f"FROM calls c WHERE c.started_at >= ? AND c.started_at < ? AND {where}"
        p = (start, now, *params)
        t = self._q(
            f"""SELECT count(*), coalesce(sum(c.cost_usd),0), coalesce(sum(c.status),0),
            coalesce(sum(c.is_retry),0), coalesce(sum(c.is_fallback),0), coalesce(sum(c.unpriced),0),
            coalesce(sum(c.unmetered),0), coalesce(sum(c.cache_hit),0),
            coalesce(sum(CASE WHEN c.cache_hit=0 THEN c.input_tokens END),0),
            coalesce(sum(CASE WHEN c.cache_hit=0 THEN c.output_tokens END),0),
            coalesce(sum(CASE WHEN c.cache_hit=0 THEN c.cache_read_tokens END),0),
            coalesce(sum(CASE WHEN c.status=1 THEN c.cost_usd END),0),
            coalesce(sum(CASE WHEN c.is_retry=1 OR c.is_fallback=1 THEN c.cost_usd END),0),
            coalesce(sum(CASE WHEN c.cache_hit=1 THEN c.saved_usd END),0),
            coalesce(sum(CASE WHEN c.cache_hit=0 AND c.status=0 AND c.input_tokens>0 THEN 1 END),0),
            coalesce(sum(CASE WHEN c.cache_hit=0 AND c.status=0 AND c.cache_read_tokens>0 THEN 1 END),0)
            {base}""",
            p,
        )[0]
        totals = Totals(*t[:14])
        eligible, cached_reqs = t[14], t[15]

        # Spend and errors over time for the sparklines.
        width = window / buckets
        spark = [0.0] * buckets
        err_spark = [0.0] * buckets
        for b, s, f in self._q(
            f"SELECT CAST((c.started_at - ?) / ? AS INTEGER) AS b, coalesce(sum(c.cost_usd),0), sum(c.status) {base} GROUP BY b",
            (start, width, *p),
        ):
            if 0 <= b < buckets:
                spark[b] = s
                err_spark[b] = f or 0

        # Burn rate: now (last 5 minutes), window average, and the same hour over the last 7 days.
        recent = min(300.0, window)
        r = self._q(
            f"SELECT coalesce(sum(c.cost_usd),0), count(*) FROM calls c WHERE c.started_at >= ? AND c.started_at < ? AND {where}",
            (now - recent, now, *params),
        )[0]
        base_sum, days_with_data = 0.0, 0
        first = self._q("SELECT min(started_at) FROM calls")[0][0]
        for d in range(1, 8):
            s0 = now - d * 86400 - 3600
            if first is None or first > s0:
                continue
            base_sum += self.spend_between(s0, now - d * 86400, clauses)
            days_with_data += 1
        local = datetime.fromtimestamp(now)
        day0 = local.replace(hour=0, minute=0, second=0, microsecond=0)
        month0 = day0.replace(day=1)
        next_month = (month0 + timedelta(days=32)).replace(day=1)
        today = self.spend_between(day0.timestamp(), now, clauses)
        month = self.spend_between(month0.timestamp(), now, clauses)
        elapsed = now - month0.timestamp()
        span = next_month.timestamp() - month0.timestamp()
        burn = Burn(
            per_hour_now=r[0] * 3600.0 / recent,
            per_hour_window=totals.spend * 3600.0 / window,
            per_hour_baseline=base_sum / days_with_data if days_with_data else None,
            today=today,
            month=month,
            month_projection=month * span / elapsed if elapsed > 0 else month,
            requests_per_min=r[1] * 60.0 / recent,
            spark=tuple(spark),
        )

        # Prompt-cache savings: cached reads priced at the full input rate minus what they cost.
        saved_prompt = 0.0
        rows = self._q(
            f"SELECT c.price_key, sum(c.cache_read_tokens) {base} AND c.cache_hit=0 AND c.cache_read_tokens>0 GROUP BY c.price_key",
            p,
        )
        if rows:
            from llmtop.pricing import catalogue

            cat = catalogue()
            names = self._strings({k for k, _ in rows})
            for k, n in rows:
                name = names.get(k)
                if not name:
                    continue
                full = cat.cost(name, input_tokens=n, output_tokens=0, price_key=name)
                cached = cat.cost(
                    name, input_tokens=n, output_tokens=0, cache_read_tokens=n, price_key=name
                )
                if full.total_usd is not None and cached.total_usd is not None:
                    saved_prompt += full.total_usd - cached.total_usd
        cache = CacheStats(
            hit_rate=_rate(cached_reqs, eligible),
            read_share=_rate(totals.cache_read_tokens, totals.input_tokens),
            saved_prompt_cache=saved_prompt,
            saved_response_cache=totals.saved_response_cache,
            response_cache_hits=totals.response_cache_hits,
        )

        by_class: dict[str, int] = {}
        for ec, code, n in self._q(
            f"SELECT (SELECT value FROM strings WHERE id=c.error_class), (SELECT value FROM strings WHERE id=c.error_code), count(*) {base} AND c.status=1 GROUP BY c.error_class, c.error_code",
            p,
        ):
            k = classify_error(ec, code)
            by_class[k] = by_class.get(k, 0) + n
        errors = ErrorStats(
            error_rate=_rate(totals.failures, totals.requests),
            retry_rate=_rate(totals.retries, totals.requests),
            fallback_rate=_rate(totals.fallbacks, totals.requests),
            by_class=tuple(sorted(by_class.items(), key=lambda kv: -kv[1])),
            failed_spend=totals.failed_spend,
            retry_spend=totals.retry_spend,
            spark=tuple(err_spark),
        )

        ins, outs, lats, ttfts = [], [], [], []
        for i, o, lat, tt, ch, st in self._q(
            f"SELECT c.input_tokens, c.output_tokens, (c.ended_at - c.started_at) * 1000.0, c.ttft_ms, c.cache_hit, c.status {base}",
            p,
        ):
            if st == 0 and not ch:
                ins.append(i)
                outs.append(o)
            if lat is not None:
                lats.append(lat)
            if tt is not None:
                ttfts.append(tt)
        ins.sort()
        outs.sort()
        lats.sort()
        ttfts.sort()
        tokens = TokenStats(
            input_p50=quantile(ins, 0.5),
            input_p90=quantile(ins, 0.9),
            output_p50=quantile(outs, 0.5),
            output_p90=quantile(outs, 0.9),
            out_in_ratio=_rate(sum(outs), sum(ins)),
            latency_p50=quantile(lats, 0.5),
            latency_p95=quantile(lats, 0.95),
            latency_p99=quantile(lats, 0.99),
            ttft_p50=quantile(ttfts, 0.5),
            ttft_p95=quantile(ttfts, 0.95),
        )
        groups = self.groups(
            now=now, window=window, group_by=group_by, clauses=clauses, total=totals.spend
        )
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
            groups=groups,
            dropped=self.dropped(),
            max_id=self.max_id(),
            dimensions=self.dimensions(),
        )

    def groups(
        self,
        *,
        now: float,
        window: float,
        group_by: str,
        clauses: Sequence[Clause] = (),
        total: float | None = None,
    ) -> tuple[GroupRow, ...]:
        expr, interned = _dim_expr(group_by)
        where, params = _where(clauses)
        start = now - window
        sql = f"""SELECT {expr} AS k, coalesce(sum(c.cost_usd),0), count(*),
            coalesce(sum(CASE WHEN c.cache_hit=0 THEN c.input_tokens + c.output_tokens END),0),
            coalesce(sum(CASE WHEN c.cache_hit=0 AND c.status=0 AND c.input_tokens>0 THEN 1 END),0),
            coalesce(sum(CASE WHEN c.cache_hit=0 AND c.status=0 AND c.cache_read_tokens>0 THEN 1 END),0),
            sum(c.is_retry), sum(c.status), sum(c.unpriced)
            FROM calls c WHERE c.started_at >= ? AND c.started_at < ? AND {where} GROUP BY k"""
        cur = self._q(sql, (start, now, *params))
        prev = dict(
            self._q(
                f"SELECT {expr} AS k, coalesce(sum(c.cost_usd),0) FROM calls c WHERE c.started_at >= ? AND c.started_at < ? AND {where} GROUP BY k",
                (start - window, start, *params),
            )
        )
        lat: dict[Any, list[float]] = {}
        for k, v in self._q(
            f"SELECT {expr} AS k, (c.ended_at - c.started_at) * 1000.0 FROM calls c WHERE c.started_at >= ? AND c.started_at < ? AND {where} AND c.ended_at IS NOT NULL",
            (start, now, *params),
        ):
            lat.setdefault(k, []).append(v)
        names = self._strings({r[0] for r in cur}) if interned else {}
        if total is None:
            total = sum(r[1] for r in cur)
        out = []
        for k, spend, n, toks, elig, cached, retries, fails, unpriced in cur:
            label = names.get(k) if interned else k
            pv = prev.get(k)
            ls = sorted(lat.get(k, ()))
            out.append(
                GroupRow(
                    key=None if label is None else str(label),
                    spend=spend,
                    share=spend / total if total else 0.0,
                    delta=(spend - pv) / pv if pv else None,
                    requests=n,
                    cost_per_request=spend / n if n else 0.0,
                    cost_per_1k=spend * 1000.0 / n if n else 0.0,
                    tokens_per_request=toks / n if n else 0.0,
                    cache_hit=cached / elig if elig else 0.0,
                    retry=(retries or 0) / n if n else 0.0,
                    error=(fails or 0) / n if n else 0.0,
                    p95_latency_ms=quantile(ls, 0.95),
                    unpriced=unpriced or 0,
                )
            )
        out.sort(key=lambda g: (-g.spend, -g.requests, g.key or ""))
        return tuple(out)

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
                trace_id=r[12],
                unpriced=bool(r[13]),
                unmetered=bool(r[14]),
            )
            for r in rs
        )

    def detail(self, row_id: int) -> RequestDetail | None:
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
                (d["started_at"] - 3600, d["started_at"] + 3600, d["trace_id"]),
            )
            attempts = self._request_rows(rs)
        return RequestDetail(fields=fields, attempts=attempts)
