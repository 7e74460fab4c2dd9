"""The `alerts` table's writes on a shared PostgreSQL store (store/alert_state.py's twin).

Why it matters more here than in a file: on a fleet, five dashboards and a cron job evaluate the
same rules against the same rows. alerts.state.sync decides what pages inside
`AlertStore.transaction()`, reading the rows and marking what it pages in one transaction; here
that transaction takes one advisory lock first (SQLite's BEGIN IMMEDIATE), so evaluators on any
number of hosts run it one at a time and each sees what the previous one paged: an incident
pages once. An ack or snooze on any dashboard is the shared row's state, seen by every other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llmtop.store.alert_state import AlertStore
from llmtop.store.db import DatabaseError
from llmtop.store.pg_db import PgUrl, connect, driver, one_line
from llmtop.store.pg_schema import LOCK_ALERTS, LOCK_NS, migrate
from llmtop.store.pg_spendlogs_map import refuse_writes


class PgAlertStore(AlertStore):
    """Read-write access to the alert rows of a PostgreSQL store."""

    MARK = "%s"

    def __init__(self, path: str | PgUrl) -> None:
        self.path = path if isinstance(path, PgUrl) else PgUrl(str(path))
        self._psycopg = driver()
        self.conn = connect(self.path, autocommit=True)
        self._tx = 0
        try:
            refuse_writes(self.conn, self.path, "alert state (ack, snooze, paging)")
            migrate(self.conn, self.path)
        except self._psycopg.Error as exc:
            self.conn.close()
            raise DatabaseError(one_line(self.path, exc)) from None
        except DatabaseError:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    def _run(self, sql: str, params: Any = ()) -> Any:
        try:
            return self.conn.execute(sql, params)
        except self._psycopg.Error as exc:
            raise DatabaseError(one_line(self.path, exc)) from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One evaluator at a time across every host (see the module docstring)."""
        if self._tx:
            yield
            return
        try:
            tx = self.conn.transaction()
            tx.__enter__()
        except self._psycopg.Error as exc:
            raise DatabaseError(one_line(self.path, exc)) from None
        self._tx += 1
        try:
            self._run("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NS, LOCK_ALERTS))
            yield
        except BaseException as exc:
            self._tx -= 1
            try:
                tx.__exit__(type(exc), exc, exc.__traceback__)
            except self._psycopg.Error:
                pass
            raise
        self._tx -= 1
        try:
            tx.__exit__(None, None, None)
        except self._psycopg.Error as exc:
            raise DatabaseError(one_line(self.path, exc)) from None
