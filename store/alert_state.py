"""The `alerts` table's writes (paging state), on a connection of their own.

Why not the reader's connection: reads and writes have different lives. The alert pass reads
for seconds on a read connection, while an ack or snooze must commit at once; a writer-side
connection here (read-write, migrated, `BEGIN IMMEDIATE`) keeps the read side free of writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmtop.store.db import DatabaseError, connect, explain
from llmtop.store.pg_db import is_pg_url
from llmtop.store.schema import migrate

ALERT_COLUMNS = (
    "fingerprint",
    "rule",
    "severity",
    "scope",
    "title",
    "cause",
    "owner",
    "first_seen",
    "last_seen",
    "state",
    "snoozed_until",
    "details_json",
    "incident",
)
#: The `alert_incidents` table (m009): the incident an ack or snooze attaches to.
INCIDENT_COLUMNS = (
    "id",
    "root",
    "severity",
    "state",
    "snoozed_until",
    "opened",
    "last_seen",
    "since",
    "paged",
    "escalated",
    "resolved_at",
    "details_json",
)
_KEYS = {"alerts": ("fingerprint", ALERT_COLUMNS), "alert_incidents": ("id", INCIDENT_COLUMNS)}


def dumps(details: dict[str, Any]) -> str:
    return json.dumps(details, separators=(",", ":"), sort_keys=True)


class AlertStore:
    """Read-write access to the alert rows of one database file."""

    def __new__(cls, path: Any = None, *args: Any, **kwargs: Any) -> AlertStore:
        # A postgresql:// URL: the shared store's twin (store/pg_alert_state.py).
        if cls is AlertStore and is_pg_url(path):
            from llmtop.store.pg_alert_state import PgAlertStore

            return super().__new__(PgAlertStore)
        return super().__new__(cls)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.conn = connect(self.path, check_same_thread=False)
            migrate(self.conn, self.path)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(explain(self.path, exc)) from exc

    @classmethod
    def reading(cls, path: Any) -> AlertStore:
        """The alert state for reading only, with no migration and no write: for a file this
        process may not write, or that another process keeps locked (`llmtop check` still
        honours the acks recorded there). A PostgreSQL URL opens as usual."""
        if is_pg_url(path):
            return cls(path)
        store = object.__new__(AlertStore)
        store.path = Path(path)
        try:
            store.conn = connect(store.path, readonly=True, check_same_thread=False)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(explain(store.path, exc)) from exc
        return store

    def close(self) -> None:
        self.conn.close()

    def _run(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(explain(self.path, exc)) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """IMMEDIATE so two processes syncing at once serialize instead of double-paging.
        Nested use joins the open transaction."""
        if self.conn.in_transaction:
            yield
            return
        self._run("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self._run("COMMIT")

    #: The driver's parameter marker.
    MARK = "?"

    def _select(self, table: str, where: str = "", params: Any = ()) -> list[dict[str, Any]]:
        cols = _KEYS[table][1]
        rows = self._run(f"SELECT {', '.join(cols)} FROM {table}{where}", params).fetchall()
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        cols = _KEYS[table][1]
        self._run(
            f"INSERT INTO {table} ({', '.join(cols)})"
            f" VALUES ({', '.join([self.MARK] * len(cols))})",
            [row.get(c) for c in cols],
        )

    def _update(self, table: str, key: str, values: dict[str, Any]) -> int:
        kcol, allowed = _KEYS[table]
        cols = [c for c in values if c in allowed and c != kcol]
        if not cols:
            return 0
        cur = self._run(
            f"UPDATE {table} SET {', '.join(f'{c} = {self.MARK}' for c in cols)}"
            f" WHERE {kcol} = {self.MARK}",
            [*(values[c] for c in cols), key],
        )
        return int(cur.rowcount)

    def rows(self) -> list[dict[str, Any]]:
        return self._select("alerts")

    def insert(self, row: dict[str, Any]) -> None:
        self._insert("alerts", row)

    def update(self, fingerprint: str, **values: Any) -> int:
        return self._update("alerts", fingerprint, values)

    def incident_rows(self, active_only: bool = False) -> list[dict[str, Any]]:
        """Incidents (all, or those not resolved): alerts.state decides what they mean."""
        return self._select("alert_incidents", " WHERE state != 'resolved'" if active_only else "")

    def insert_incident(self, row: dict[str, Any]) -> None:
        self._insert("alert_incidents", row)

    def update_incident(self, incident: str, **values: Any) -> int:
        return self._update("alert_incidents", incident, values)
