"""`llmtop prune` and `llmtop vacuum`: bounded disk without blocking the writers.

Pruning deletes in small batches, each its own short transaction, so a collector writing at the
same time waits at most one batch (a few ms) for the lock.
"""

from __future__ import annotations

import argparse
import sys
import time

from llmtop.store.db import DatabaseError, resolve_db_path
from llmtop.store.queries import parse_window
from llmtop.store.schema import open_db

DEFAULT_RETENTION = "90d"
BATCH = 2000


def prune(path: object, *, older_than: float, now: float | None = None, batch: int = BATCH) -> int:
    """Delete raw rows started before now - older_than; returns how many were deleted."""
    now = time.time() if now is None else now
    cutoff = now - older_than
    conn = open_db(str(path))
    deleted = 0
    try:
        while True:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                "DELETE FROM calls WHERE id IN (SELECT id FROM calls WHERE started_at < ? LIMIT ?)",
                (cutoff, batch),
            )
            conn.execute("COMMIT")
            deleted += cur.rowcount
            if cur.rowcount < batch:
                return deleted
    finally:
        conn.close()


def vacuum(path: object) -> tuple[int, int]:
    from pathlib import Path

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
    ap = argparse.ArgumentParser(prog=f"llmtop {cmd}")
    ap.add_argument("--db", help="database file (default: $LLMTOP_DB or the per-user data dir)")
    if cmd == "prune":
        ap.add_argument(
            "--older-than", default=DEFAULT_RETENTION, help="retention, e.g. 90d (default)"
        )
    ns = ap.parse_args(rest)
    path = resolve_db_path(ns.db)
    if not path.exists():
        print(f"llmtop {cmd}: {path}: no such database", file=sys.stderr)
        return 2
    try:
        if cmd == "prune":
            n = prune(path, older_than=parse_window(ns.older_than))
            print(f"pruned {n} rows older than {ns.older_than} from {path}")
        else:
            before, after = vacuum(path)
            print(f"vacuumed {path}: {before:,} → {after:,} bytes")
    except (DatabaseError, ValueError) as exc:
        print(f"llmtop {cmd}: {exc}", file=sys.stderr)
        return 2
    return 0
