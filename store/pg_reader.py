"""Reading a shared PostgreSQL store: store.reader.Reader's queries over a psycopg connection.

`Reader(url)` returns one of these for a `postgresql://` URL, so the dashboard, `llmtop check`,
the alert engine and the exports read a fleet's database through the same methods and the
same engine (store/engine.py) as one SQLite file; the SQL is translated once per statement
(store/pg_dialect.py). Only what differs is here:

- reads in one `REPEATABLE READ READ ONLY` transaction per snapshot (SQLite's read
  transaction is a snapshot too), so rows, rollups and the marker agree;
- the marker (`max_id`) is the last committed batch's commit sequence, not the largest row id:
  with several writers a smaller id can commit after a larger one, and the engine's "rows after
  the marker" must not miss it (store/pg_schema.py);
- `wait_for_change(timeout)`: LISTEN llmtop on a connection of its own, so a dashboard
  refreshes the moment any host commits a batch.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from llmtop.store.db import DatabaseError
from llmtop.store.engine import Source, Tracker
from llmtop.store.filters import DIMENSIONS, dim_expr
from llmtop.store.pg_db import PgUrl, connect, driver, one_line
from llmtop.store.pg_dialect import params_for
from llmtop.store.pg_schema import check_not_newer, migrate
from llmtop.store.reader import Reader
from llmtop.store.snapshot import Savings
from llmtop.store.views import RequestDetail, RequestRow


class PgReader(Reader):
    """One read connection to a PostgreSQL store (one worker thread at a time, like Reader)."""

    def __init__(
        self, path: str | PgUrl, *, readonly: bool = False, savings: Savings | None = None
    ) -> None:
        self.path = path if isinstance(path, PgUrl) else PgUrl(str(path))
        self.savings = savings
        self.conn = connect(self.path, autocommit=True)
        self._psycopg = driver()
        try:
            if readonly:
                check_not_newer(self.conn, self.path)
                if self.query("SELECT to_regclass('calls')")[0][0] is None:
                    raise DatabaseError(
                        f"{self.path}: no llmtop tables in this database (is the collector"
                        " writing somewhere else?)"
                    )
            else:
                migrate(self.conn, self.path)
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
        self._trackers: dict[str, Tracker] = {}
        self._views: dict[Any, dict[str, Tracker]] = {}

    def close(self) -> None:
        for c in (self.conn, self._listen):
            if c is not None:
                try:
                    c.close()
                except Exception:  # closing a broken connection: nothing left to do
                    pass

    def interrupt(self) -> None:
        """As Reader.interrupt: the server is asked to cancel the running statement. A cancel
        opens a connection of its own (slow on a slow or gone server), so it is sent from a
        daemon thread, within a second (psycopg 3.2+: cancel_safe; older: cancel)."""

        def cancel() -> None:
            try:
                safe = getattr(self.conn, "cancel_safe", None)
                if safe is not None:
                    safe(timeout=1.0)
                else:
                    self.conn.cancel()
            except Exception:  # nothing running, or the server already gone
                pass

        threading.Thread(target=cancel, name="llmtop-pg-cancel", daemon=True).start()

    def live(self) -> Any:
        """The connection, opened again if the last one was lost (a server restart, a failover,
        an idle timeout): the dashboard kept a closed one and said "● live" over a frozen screen
        until restarted. Never inside a read transaction: its snapshot went with the old one."""
        if self.conn.closed and not self._in_tx:
            self.conn = connect(self.path, autocommit=True)
        return self.conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        pg, ps = params_for(sql, params)
        try:
            # Histogram blobs in binary: a 30-day window's ~40k blobs arrive in ~60% of the
            # time hex text takes to decode (their other columns are ids, buckets: binary-safe).
            cur = self.live().execute(pg, ps, binary="r.hist" in sql)
            return cur.fetchall() if cur.description is not None else []
        except self._psycopg.Error as exc:
            raise DatabaseError(one_line(self.path, exc)) from None

    def chunks(
        self, sql: str, params: Sequence[Any] = (), size: int = 20_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        pg, ps = params_for(sql, params)
        try:
            cur = self.live().execute(pg, ps)
            while chunk := cur.fetchmany(size):
                yield chunk
        except self._psycopg.Error as exc:
            raise DatabaseError(one_line(self.path, exc)) from None

    @contextmanager
    def read_transaction(self) -> Iterator[None]:
        if self._in_tx:
            yield
            return
        self.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        self._in_tx = True
        try:
            yield
        finally:
            self._in_tx = False
            try:
                self.query("COMMIT")
            except DatabaseError:
                pass

    def max_id(self) -> int:
        """The commit sequence of the last batch this snapshot sees (see the module docstring)."""
        return int(self.query("SELECT coalesce(max(seq), 0) FROM batches")[0][0])

    def dropped(self) -> int:
        return int(self.query("SELECT coalesce(sum(count), 0) FROM drops")[0][0])

    def dimensions(self) -> tuple[str, ...]:
        keys: set[str] = set()
        for (tj,) in self.query(
            "SELECT tags_json FROM (SELECT tags_json FROM calls ORDER BY id DESC LIMIT 5000) t"
            " WHERE tags_json IS NOT NULL"
        ):
            try:
                keys.update(json.loads(tj))
            except (ValueError, TypeError):
                continue
        return (*DIMENSIONS, *sorted(k for k in keys if k not in DIMENSIONS))

    def source(self) -> Source:
        if self._src is None:
            self._src = Source(self.query, self.strings, dim_expr)
        return self._src

    def detail(self, row_id: int, source: str = "") -> RequestDetail | None:
        try:
            cur = self.live().execute("SELECT * FROM requests WHERE id = %s", (row_id,))
            row = cur.fetchone()
        except self._psycopg.Error as exc:
            raise DatabaseError(one_line(self.path, exc)) from None
        if row is None:
            return None
        fields = tuple(zip([d.name for d in cur.description], row, strict=True))
        d = dict(fields)
        attempts: tuple[RequestRow, ...] = ()
        if d.get("trace_id"):
            rs = self.query(
                """SELECT c.id, c.started_at, c.model, c.feature, c.status, c.error_class,
                c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cost_usd,
                (c.ended_at - c.started_at) * 1000.0, c.attempt, c.trace_id, c.unpriced,
                c.unmetered FROM calls c WHERE c.started_at BETWEEN ? AND ? AND c.trace_id = ?
                ORDER BY c.started_at, c.id""",
                (d["started_at"] - 3600, d["started_at"] + 3600, d["trace_id"]),
            )
            attempts = self._request_rows(rs)
        return RequestDetail(fields=fields, attempts=attempts)

    # --- live ---------------------------------------------------------------------------------
    def wait_for_change(self, timeout: float) -> bool:
        """Block up to `timeout` s for a batch committed by any host (NOTIFY llmtop); True if
        one arrived. The dashboard's periodic refresh stays the fallback: a notification lost
        with a dropped connection only delays the screen to the next tick."""
        psycopg = self._psycopg
        try:
            if self._listen is None or self._listen.closed:
                self._listen = connect(self.path, autocommit=True)
                self._listen.execute("LISTEN llmtop")
            for _ in self._listen.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except psycopg.Error:
            if self._listen is not None:
                self._listen.close()
            self._listen = None
            time.sleep(min(timeout, 1.0))
            return False
        except DatabaseError:
            time.sleep(min(timeout, 1.0))
            return False
