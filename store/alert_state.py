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
)


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

    def close(self) -> None:
        self.conn.close()

    def _run(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(explain(self.path, exc)) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """IMMEDIATE so two processes syncing at once serialize instead of double-paging."""
        self._run("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self._run("COMMIT")

    def rows(self) -> list[dict[str, Any]]:
        rows = self._run(f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts").fetchall()
        return [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in rows]

    def insert(self, row: dict[str, Any]) -> None:
        self._run(
            f"INSERT INTO alerts ({', '.join(ALERT_COLUMNS)})"
            f" VALUES ({','.join('?' * len(ALERT_COLUMNS))})",
            [row.get(c) for c in ALERT_COLUMNS],
        )

    def update(self, fingerprint: str, **values: Any) -> int:
        cols = [c for c in values if c in ALERT_COLUMNS and c != "fingerprint"]
        if not cols:
            return 0
        cur = self._run(
            f"UPDATE alerts SET {', '.join(f'{c} = ?' for c in cols)} WHERE fingerprint = ?",
            [*(values[c] for c in cols), fingerprint],
        )
        return cur.rowcount

    def set_state(self, fingerprint: str, state: str, snoozed_until: float | None) -> int:
        """Ack/snooze an alert that has not resolved (a resolved one must page when it re-fires),
        and the alerts filed under it (details_json's parent); the count is the alert's own."""
        with self.transaction():
            n = self._run(
                "UPDATE alerts SET state = ?, snoozed_until = ?"
                " WHERE fingerprint = ? AND state != 'resolved'",
                (state, snoozed_until, fingerprint),
            ).rowcount
            if n:
                self._run(
                    "UPDATE alerts SET state = ?, snoozed_until = ?"
                    " WHERE CASE WHEN json_valid(details_json)"
                    " THEN json_extract(details_json, '$.parent') END = ? AND state != 'resolved'",
                    (state, snoozed_until, fingerprint),
                )
        return n
