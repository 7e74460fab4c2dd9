"""The `alerts` table's writes on a shared PostgreSQL store (store/alert_state.py's twin).

Why it matters more here than in a file: on a fleet, five dashboards and a cron job evaluate the
same rules against the same rows. alerts.state.sync decides what pages inside
`AlertStore.transaction()`, reading the rows and marking what it pages in one transaction; here
that transaction takes one advisory lock first (SQLite's BEGIN IMMEDIATE), so evaluators on any
number of hosts run it one at a time and each sees what the previous one paged: an incident
pages once. An ack or snooze on any dashboard is the shared row's state, seen by every other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llmtop.store.alert_state import ALERT_COLUMNS, AlertStore
from llmtop.store.db import DatabaseError
from llmtop.store.pg_db import PgUrl, connect, driver, one_line
from llmtop.store.pg_schema import LOCK_ALERTS, LOCK_NS, migrate


class PgAlertStore(AlertStore):
    """Read-write access to the alert rows of a PostgreSQL store."""

    def __init__(self, path: str | PgUrl) -> None:
        self.path = path if isinstance(path, PgUrl) else PgUrl(str(path))
        self._psycopg = driver()
        self.conn = connect(self.path, autocommit=True)
        self._tx = 0
        try:
            migrate(self.conn, self.path)
        except self._psycopg.Error as exc:
            self.conn.close()
            raise DatabaseError(one_line(self.path, exc)) from None

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

    def rows(self) -> list[dict[str, Any]]:
        rows = self._run(f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts").fetchall()
        return [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in rows]

    def insert(self, row: dict[str, Any]) -> None:
        self._run(
            f"INSERT INTO alerts ({', '.join(ALERT_COLUMNS)})"
            f" VALUES ({', '.join(['%s'] * len(ALERT_COLUMNS))})",
            [row.get(c) for c in ALERT_COLUMNS],
        )

    def update(self, fingerprint: str, **values: Any) -> int:
        cols = [c for c in values if c in ALERT_COLUMNS and c != "fingerprint"]
        if not cols:
            return 0
        cur = self._run(
            f"UPDATE alerts SET {', '.join(f'{c} = %s' for c in cols)} WHERE fingerprint = %s",
            [*(values[c] for c in cols), fingerprint],
        )
        return int(cur.rowcount)

    def set_state(self, fingerprint: str, state: str, snoozed_until: float | None) -> int:
        """As AlertStore.set_state: the alert and those filed under it (details_json's parent;
        read in Python, as PostgreSQL 15 has no json_valid to skip a malformed one)."""
        with self.transaction():
            n = int(
                self._run(
                    "UPDATE alerts SET state = %s, snoozed_until = %s"
                    " WHERE fingerprint = %s AND state != 'resolved'",
                    (state, snoozed_until, fingerprint),
                ).rowcount
            )
            if n:
                children = []
                for fp, details in self._run(
                    "SELECT fingerprint, details_json FROM alerts WHERE state != 'resolved'"
                    " AND details_json LIKE %s",
                    (f"%{fingerprint}%",),
                ).fetchall():
                    try:
                        d = json.loads(details)
                    except (ValueError, TypeError):
                        continue
                    if isinstance(d, dict) and d.get("parent") == fingerprint:
                        children.append(fp)
                if children:
                    self._run(
                        "UPDATE alerts SET state = %s, snoozed_until = %s"
                        " WHERE fingerprint = ANY(%s)",
                        (state, snoozed_until, children),
                    )
        return n
