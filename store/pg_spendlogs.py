"""LiteLLM proxy's own database as a read-only llmtop source: `llmtop --db postgresql://…/litellm`.

Every proxy fleet already logs each request to `"LiteLLM_SpendLogs"`; pointed at that database
(detected: the table is there and llmtop's are not), the dashboard, `llmtop check` and the
exports read it through the same Reader methods and engine as our own store, with no callback
installed and nothing written (store/pg_spendlogs_map.py maps the columns and rewrites the SQL).

What differs from reading our own tables, and why:
- no rollups: a window's first read aggregates raw rows (through the proxy's `startTime`
  index); refreshes then slide as usual;
- rows arrive late: the proxy writes spend logs in batches (about every 10 s) after a request
  ends, so a refresh must also find rows committed since the previous one whose start is
  already inside the window. There is no commit-ordered column, but PostgreSQL knows what a
  snapshot could not see: a row whose inserting transaction (`xmin`) is at or past the
  snapshot's xmax, or was in progress then. The marker (`max_id`) names a snapshot; "rows after
  the marker" are those. The search is bounded to rows started in the last LATE_HORIZON s (a
  request the proxy logs later than that is counted at the next full read: another window or
  a restart);
- string ids are 52-bit hashes of the text (the read side's filters and the alert engine's numpy
  reads compare ids); this reader turns ids back into text from the rows themselves;
- what the proxy does not record (our own price, unpriced and unmetered rows, attempt rows,
  drops, caller tags other than spend_logs_metadata) is named in `unavailable`, so a screen can
  say "unavailable" rather than 0;
- alert state cannot be kept here (nothing is written): store/pg_alert_state.py refuses this
  database with the way to get it (the callback writing to a store of llmtop's own).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

from llmtop.store.db import DatabaseError
from llmtop.store.engine import Source
from llmtop.store.filters import DIMENSIONS, Clause, dim_expr, where_sql
from llmtop.store.pg_db import PgUrl, connect, driver, one_line
from llmtop.store.pg_reader import PgReader
from llmtop.store.pg_spendlogs_map import (
    TABLE,
    TEXT_COLUMNS,
    UNAVAILABLE,
    hashed,
    is_proxy_db,
    mapping,
    missing_columns,
    params_for,
    table_info,
    table_sql,
)
from llmtop.store.reader import Reader
from llmtop.store.snapshot import Savings
from llmtop.store.views import RequestDetail, RequestRow

#: Late rows are searched among rows started this long before now (see the module docstring).
LATE_HORIZON = 3600.0
_MARKERS_KEPT = 4096
DIMENSIONS_TTL = 30.0
_PRAGMA = re.compile(r"^\s*PRAGMA table_x?info\((\w+)\)\s*$", re.I)
_NAMED = tuple(n for n, e in TEXT_COLUMNS.items() if e != "NULL::text")


def reader_class(path: str | PgUrl) -> type[Reader]:
    """PgReader for llmtop's own tables, SpendLogsReader for a proxy's database (one short
    connection to look; a failure is left to PgReader, which reports it in one line)."""
    target = path if isinstance(path, PgUrl) else PgUrl(str(path))
    try:
        conn = connect(target, autocommit=True)
    except DatabaseError:
        return PgReader
    try:
        return SpendLogsReader if is_proxy_db(conn) else PgReader
    except driver().Error:
        return PgReader
    finally:
        conn.close()


def dim_sql(dim: str) -> tuple[str, bool]:
    """The dashboard's groupings read text, not ids: no name lookups at all."""
    if dim in TEXT_COLUMNS:
        return f"c.{dim}_t", False
    return dim_expr(dim)


class SpendLogsReader(PgReader):
    """Reads a LiteLLM proxy's spend logs as an llmtop store (read-only, always)."""

    unavailable = UNAVAILABLE

    def __init__(
        self, path: str | PgUrl, *, readonly: bool = False, savings: Savings | None = None
    ) -> None:
        self.path = path if isinstance(path, PgUrl) else PgUrl(str(path))
        self.savings = savings
        self._psycopg = driver()
        self.conn = connect(self.path, autocommit=True)
        try:
            if not is_proxy_db(self.conn):
                raise DatabaseError(f"{self.path}: no {TABLE} table (not a LiteLLM proxy database)")
            #: Columns an older proxy's table lacks: read as NULL.
            self.missing = missing_columns(self.conn)
        except self._psycopg.Error as exc:
            self.conn.close()
            raise DatabaseError(one_line(self.path, exc)) from None
        except BaseException:
            self.conn.close()
            raise
        self._in_tx = False
        self._listen: Any = None
        self._src: Source | None = None
        self._view: tuple[Any, ...] | None = None
        self._trackers = {}
        self._views = {}
        self._snap_text = ""
        self._marker = 0
        self._snaps: dict[int, tuple[int, list[int]]] = {}
        self._names: dict[int, str] = {}
        self._inserts: int | None = None
        self._dims: tuple[float, tuple[str, ...]] | None = None

    # --- SQL --------------------------------------------------------------------------------
    def _late(self, marker: int) -> tuple[float, int, list[int]]:
        snap = self._snaps.get(int(marker))
        if snap is None:  # evicted (a tracker idle for hours): the oldest kept is the safe side
            snap = self._snaps[min(self._snaps)] if self._snaps else (0, [])
        return time.time() - LATE_HORIZON, snap[0], snap[1]

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        pg, ps = params_for(sql, params, self._late, self.missing)
        try:
            return self.live().execute(pg, ps)
        except self._psycopg.Error as exc:
            raise DatabaseError(one_line(self.path, exc)) from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        pragma = _PRAGMA.match(sql)
        if pragma:
            return table_info(pragma.group(1))
        cur = self._execute(sql, params)
        try:
            return cur.fetchall() if cur.description is not None else []
        except self._psycopg.Error as exc:
            raise DatabaseError(one_line(self.path, exc)) from None

    def chunks(
        self, sql: str, params: Sequence[Any] = (), size: int = 20_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        cur = self._execute(sql, params)
        try:
            while chunk := cur.fetchmany(size):
                yield chunk
        except self._psycopg.Error as exc:
            raise DatabaseError(one_line(self.path, exc)) from None

    def _raw(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """SQL written for the spend logs themselves (no translation)."""
        try:
            return self.live().execute(sql, params).fetchall()
        except self._psycopg.Error as exc:
            raise DatabaseError(one_line(self.path, exc)) from None

    # --- markers and names ------------------------------------------------------------------
    def max_id(self) -> int:
        """A number for this snapshot (see the module docstring): the same while nothing could
        have been committed, a larger one after."""
        (text,) = self._raw("SELECT pg_current_snapshot()::text")[0]
        if text != self._snap_text:
            _, xmax, xip = text.split(":")
            self._marker += 1
            self._snaps[self._marker] = (
                int(xmax) % 2**32,
                [int(x) % 2**32 for x in xip.split(",") if x],
            )
            self._snap_text = text
            while len(self._snaps) > _MARKERS_KEPT:
                self._snaps.pop(next(iter(self._snaps)))
        return self._marker

    def strings(self, ids: set[int]) -> dict[int, str]:
        """Ids (hashes) back to text: read from the rows, the last 8 days first, then all."""
        want = {int(i) for i in ids if i is not None}
        missing = want - self._names.keys()
        for since in (time.time() - 8 * 86400, None):
            if not missing:
                break
            cols = ", ".join(f"{TEXT_COLUMNS[n]}" for n in _NAMED)
            cond = "WHERE s.\"startTime\" >= ('epoch'::timestamp + %s * interval '1 second')"
            rows = self._raw(
                f"SELECT DISTINCT v, {hashed('v')} FROM (SELECT unnest(ARRAY[{cols}]) AS v"
                f" FROM {table_sql(self.missing)} {cond if since else ''}) x"
                f" WHERE v IS NOT NULL AND {hashed('v')} = ANY(%s)",
                [*([since] if since else []), list(missing)],
            )
            for v, h in rows:
                self._names[int(h)] = v
            missing -= self._names.keys()
        return {i: self._names[i] for i in want if i in self._names}

    def string(self, sid: int | None) -> str | None:
        return None if sid is None else self.strings({sid}).get(int(sid))

    def source(self) -> Source:
        if self._src is None:
            self._src = Source(self.query, self.strings, dim_sql, cubes=False)
        return self._src

    # --- what the proxy does not record -----------------------------------------------------
    def dropped(self) -> int:
        return 0

    def invalid(self, start: float, end: float, clauses: Sequence[Clause] = ()) -> int:
        return 0

    def dimensions(self) -> tuple[str, ...]:
        """Built-in dimensions and the tag keys of the newest rows, re-read at most every
        DIMENSIONS_TTL s (building 5,000 rows' tags from their JSON cost more than the rest
        of a refresh)."""
        now = time.monotonic()
        if self._dims is not None and now - self._dims[0] < DIMENSIONS_TTL:
            return self._dims[1]
        keys: set[str] = set()
        for (tags,) in self._raw(
            f"SELECT c.tags_json FROM {mapping(self.missing)} c ORDER BY c.st DESC LIMIT 5000"
        ):
            try:
                keys.update(json.loads(tags))
            except (TypeError, ValueError):
                continue
        dims = (*DIMENSIONS, *sorted(k for k in keys if k not in DIMENSIONS))
        self._dims = (now, dims)
        return dims

    # --- requests ---------------------------------------------------------------------------
    def requests(
        self, *, now: float, window: float, clauses: Sequence[Clause] = (), limit: int = 500
    ) -> tuple[RequestRow, ...]:
        where, params = where_sql(clauses)
        rs = self.query(
            f"""SELECT c.id, c.started_at, c.model_t, c.feature_t, c.status, c.error_class_t,
            c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cost_usd,
            (c.ended_at - c.started_at) * 1000.0, c.attempt, c.litellm_call_id
            FROM calls c WHERE c.started_at >= ? AND c.started_at < ? AND {where}
            ORDER BY c.st DESC, c.id DESC LIMIT ?""",
            (now - window, now, *params, limit),
        )
        return tuple(
            RequestRow(
                id=r[0],
                started_at=r[1],
                model=r[2],
                feature=r[3],
                status="success" if r[4] == 0 else "failure",
                error_class=r[5],
                input_tokens=r[6],
                output_tokens=r[7],
                cache_read_tokens=r[8],
                cost_usd=r[9],
                latency_ms=r[10],
                attempt=r[11],
                trace_id=r[12],
                unpriced=False,
                unmetered=False,
            )  # fmt: skip
            for r in rs
        )

    def detail(self, row_id: int, source: str = "") -> RequestDetail | None:
        """One spend-log row as llmtop's columns, plus the proxy's request id (a scan: the id
        is a hash of request_id, which only the primary key indexes)."""
        try:
            cur = self.live().execute(
                f"SELECT m.*, s.request_id FROM {mapping(self.missing)} m JOIN {TABLE} s"
                f" ON {hashed('s.request_id')} = m.id WHERE m.id = %s LIMIT 1",
                (row_id,),
            )
            row = cur.fetchone()
        except self._psycopg.Error as exc:
            raise DatabaseError(one_line(self.path, exc)) from None
        if row is None:
            return None
        names = [d.name for d in cur.description]
        d = dict(zip(names, row, strict=True))
        fields = [("request_id", d["request_id"])]
        for n in names:
            if n in ("xid", "st", "request_id") or (n in TEXT_COLUMNS):
                continue
            key = n[:-2] if n.endswith("_t") else n
            value = d[n]
            if key == "status":
                value = "failure" if value else "success"
            fields.append((key, value))
        return RequestDetail(fields=tuple(fields), attempts=())

    # --- live -------------------------------------------------------------------------------
    def wait_for_change(self, timeout: float) -> bool:
        """The proxy sends no NOTIFY: watch the table's insert count in the statistics (cheap,
        updated within about a second of each batch the proxy commits)."""
        deadline = time.monotonic() + timeout
        sql = "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = to_regclass(%s)"
        while True:
            n = None
            try:
                if self._listen is None or self._listen.closed:
                    self._listen = connect(self.path, autocommit=True)
                self._listen.execute("SELECT pg_stat_clear_snapshot()")
                got = self._listen.execute(sql, (TABLE,)).fetchone()
                n = int(got[0]) if got else None
            except (DatabaseError, self._psycopg.Error):
                if self._listen is not None:
                    self._listen.close()
                self._listen = None
            if self._inserts is None:
                self._inserts = n
            elif n is not None and n != self._inserts:
                self._inserts = n
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.25, left))
