"""`llmtop prune` and `llmtop vacuum`: bounded disk without blocking the writers.

Pruning deletes in small batches, each its own short transaction, so a collector writing at the
same time waits at most one batch (a few ms) for the lock.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time

from llmtop.store.db import DatabaseError, explain, resolve_db_path
from llmtop.store.filters import parse_window
from llmtop.store.pg_db import is_pg_url
from llmtop.store.schema import open_db

from llmtop.args import Parser

DEFAULT_RETENTION = "90d"
DEFAULT_ROLLUP_RETENTION = "400d"
#: Minute rollups (cube 0 only) serve the short windows; hours and days serve everything older.
MINUTE_ROLLUP_KEEP = 8 * 86400.0
BATCH = 2000


def parse_retention(text: str) -> float | None:
    """A retention: a window like 90d, or 'off' (None: keep forever)."""
    text = text.strip().lower()
    if text in ("off", "0", "never", "forever"):
        return None
    return parse_window(text)


def retention_from_env(name: str, default: str) -> float | None:
    """LLMTOP_RETENTION / LLMTOP_ROLLUP_RETENTION: a window like 90d, or 'off' to keep forever."""
    try:
        return parse_retention(os.environ.get(name, default))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


_RAW_DELETE = "DELETE FROM calls WHERE id IN (SELECT id FROM calls WHERE started_at < ? LIMIT ?)"
#: Outcomes go with the raw rows they judge: a task's calls pruned, its outcome means nothing.
_OUTCOMES_DELETE = "DELETE FROM outcomes WHERE id IN (SELECT id FROM outcomes WHERE at < ? LIMIT ?)"


def _rollup_delete(cube: int, res: int) -> str:
    return (
        "DELETE FROM rollups WHERE (cube, res, bucket, combo) IN (SELECT cube, res, bucket, combo"
        f" FROM rollups WHERE cube = {cube} AND res = {res} AND bucket < ? LIMIT ?)"
    )


def _delete(conn: sqlite3.Connection, sql: str, params: tuple[float | int, ...]) -> int:
    """One bounded DELETE in its own short IMMEDIATE transaction; how many rows went."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        cur = conn.execute(sql, params)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(cur.rowcount, 0)


def prune_step(
    conn: sqlite3.Connection,
    *,
    now: float,
    raw_keep: float | None,
    rollup_keep: float | None,
    batch: int = BATCH,
) -> int:
    """Delete at most `batch` expired raw rows and `batch` expired rollup rows per table part, each
    in its own short IMMEDIATE transaction, so a writer waits at most a few ms; returns how many
    rows went (0 means nothing is left to prune)."""
    jobs: list[tuple[str, tuple[float | int, ...]]] = []
    if raw_keep is not None:
        jobs.append((_RAW_DELETE, (now - raw_keep, batch)))
        jobs.append((_OUTCOMES_DELETE, (now - raw_keep, batch)))
    if rollup_keep is not None:
        jobs.append((_rollup_delete(0, 60), (now - min(MINUTE_ROLLUP_KEEP, rollup_keep), batch)))
        for cube in (0, 1, 2):
            for res in (3600, 86400):
                jobs.append((_rollup_delete(cube, res), (now - rollup_keep, batch)))
    return sum(_delete(conn, sql, params) for sql, params in jobs)


def prune(
    path: object,
    *,
    older_than: float | None,
    now: float | None = None,
    batch: int = BATCH,
    rollups_older_than: float | None = 400 * 86400.0,
) -> int:
    """Delete raw rows started before now - older_than (and rollups past theirs); returns how many
    raw rows were deleted. Rollups of pruned rows stay: totals over long windows survive."""
    if is_pg_url(path):  # a shared PostgreSQL store: store/pg_maintenance.py
        from llmtop.store.pg_maintenance import prune as pg_prune

        return pg_prune(
            path,  # type: ignore[arg-type]
            older_than=older_than,
            now=now,
            batch=batch,
            rollups_older_than=rollups_older_than,
        )
    now = time.time() if now is None else now
    conn = open_db(str(path))
    deleted = 0
    try:
        if older_than is not None:
            while True:
                n = _delete(conn, _RAW_DELETE, (now - older_than, batch))
                deleted += n
                if n < batch:
                    break
            while _delete(conn, _OUTCOMES_DELETE, (now - older_than, batch)) >= batch:
                pass
        while prune_step(conn, now=now, raw_keep=None, rollup_keep=rollups_older_than, batch=batch):
            pass
        return deleted
    finally:
        conn.close()


def vacuum(path: object) -> tuple[int, int]:
    from pathlib import Path

    if is_pg_url(path):
        from llmtop.store.pg_maintenance import vacuum as pg_vacuum

        return pg_vacuum(path)  # type: ignore[arg-type]

    p = Path(str(path))
    before = p.stat().st_size
    conn = open_db(p)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
    finally:
        conn.close()
    return before, p.stat().st_size


def main(argv: list[str]) -> int:
    cmd, rest = argv[0], argv[1:]
    ap = Parser(prog=f"llmtop {cmd}")
    ap.add_argument("--db", help="database file (default: $LLMTOP_DB or the per-user data dir)")
    if cmd == "prune":
        ap.add_argument(
            "--older-than",
            default=os.environ.get("LLMTOP_RETENTION", DEFAULT_RETENTION),
            help="raw-row retention, e.g. 90d (default: $LLMTOP_RETENTION or 90d)",
        )
        ap.add_argument(
            "--rollups-older-than",
            default=os.environ.get("LLMTOP_ROLLUP_RETENTION", DEFAULT_ROLLUP_RETENTION),
            help="rollup retention (default: $LLMTOP_ROLLUP_RETENTION or 400d)",
        )
    ns = ap.parse_args(rest)
    try:
        path = resolve_db_path(ns.db)
    except DatabaseError as exc:
        print(f"llmtop {cmd}: {exc}", file=sys.stderr)
        return 2
    if not path.exists():
        print(f"llmtop {cmd}: {path}: no such database", file=sys.stderr)
        return 2
    try:
        if cmd == "prune":
            n = prune(
                path,
                older_than=parse_retention(ns.older_than),
                rollups_older_than=parse_retention(ns.rollups_older_than),
            )
            print(
                f"pruned {n} rows older than {ns.older_than} from {path}"
                f" (rollups kept for {ns.rollups_older_than})"
            )
        else:
            before, after = vacuum(path)
            print(f"vacuumed {path}: {before:,} → {after:,} bytes")
    except ValueError as exc:  # a bad window: the command line's fault
        print(f"llmtop {cmd}: {exc}", file=sys.stderr)
        return 2
    except DatabaseError as exc:  # the file's fault (corrupt, foreign, read-only): exit 3
        print(f"llmtop {cmd}: {exc}", file=sys.stderr)
        return 3
    except sqlite3.Error as exc:
        print(f"llmtop {cmd}: {explain(path, exc)}", file=sys.stderr)
        return 3
    return 0
