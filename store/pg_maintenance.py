"""`llmtop prune` and `llmtop vacuum` on a shared PostgreSQL store (store/maintenance.py's twin).

The same bounded deletes (raw rows by started_at, then rollups past their retention), each in a
short transaction of its own so the fleet's writers never wait on a long one. On a shared server
retention is one cron job's work (`llmtop prune --db postgresql://...`), not every host's: the
Postgres sink does not prune in the background.
"""

from __future__ import annotations

import time
from typing import Any

from llmtop.store.db import DatabaseError
from llmtop.store.histblob import merge_hist_blobs
from llmtop.store.maintenance import BATCH, MINUTE_ROLLUP_KEEP
from llmtop.store.pg_db import PgUrl, connect, driver, one_line
from llmtop.store.pg_schema import LOCK_NS, LOCK_SHARD0, check_ours, migrate
from llmtop.store.pg_sink import merge_into_shard
from llmtop.store.pg_spendlogs_map import refuse_writes
from llmtop.store.rollup import FIELDS

_RAW = "DELETE FROM calls WHERE id IN (SELECT id FROM calls WHERE started_at < %s LIMIT %s)"
_BATCHES = "DELETE FROM batches WHERE batch IN (SELECT batch FROM batches WHERE at < %s LIMIT %s)"
_OUTCOMES = "DELETE FROM outcomes WHERE id IN (SELECT id FROM outcomes WHERE at < %s LIMIT %s)"


def _rollups(cube: int, res: int) -> str:
    return (
        "DELETE FROM rollups WHERE (cube, res, bucket, combo) IN (SELECT cube, res, bucket, combo"
        f" FROM rollups WHERE cube = {cube} AND res = {res} AND bucket < %s LIMIT %s)"
    )


def require_tables(conn: Any, target: PgUrl) -> None:
    """Maintenance never creates the schema: pruning an empty database (the server's default
    `postgres` one, a typo'd name) would add llmtop's tables to it and report success."""
    if conn.execute("SELECT to_regclass('_llmtop_migrations')").fetchone()[0] is None:
        check_ours(conn, target)
        raise DatabaseError(
            f"{target}: no llmtop tables in this database (is the collector writing somewhere"
            " else?)"
        )


def prune(
    target: PgUrl,
    *,
    older_than: float | None,
    now: float | None = None,
    batch: int = BATCH,
    rollups_older_than: float | None = 400 * 86400.0,
) -> int:
    """As store.maintenance.prune; returns how many raw rows were deleted."""
    now = time.time() if now is None else now
    conn = connect(target, autocommit=True)
    try:
        refuse_writes(conn, target, "prune")
        require_tables(conn, target)
        migrate(conn, target)
        jobs: list[tuple[str, float]] = []
        if older_than is not None:
            jobs += [
                (_RAW, now - older_than),
                (_BATCHES, now - older_than),
                (_OUTCOMES, now - older_than),
            ]
        if rollups_older_than is not None:
            jobs.append((_rollups(0, 60), now - min(MINUTE_ROLLUP_KEEP, rollups_older_than)))
            jobs += [
                (_rollups(cube, res), now - rollups_older_than)
                for cube in (0, 1, 2)
                for res in (3600, 86400)
            ]
        deleted = 0
        for sql, cutoff in jobs:
            while True:
                n = max(conn.execute(sql, (cutoff, batch)).rowcount, 0)
                if sql is _RAW:
                    deleted += n
                if n < batch:
                    break
        return deleted
    except driver().Error as exc:
        raise DatabaseError(one_line(target, exc)) from None
    finally:
        conn.close()


#: Shards a writer may use (LLMTOP_PG_ROLLUP_SHARDS is capped at 64): all locked while folding.
_ALL_SHARDS = 64
_FOLD_CHUNK = 20_000
_NF = len(FIELDS)


def fold_shards(conn: Any, before: float) -> int:
    """Fold the rollup rows of shards > 0 (written while several writers were busy,
    store/pg_sink.py) into shard 0 for buckets before `before`, so reads of older windows add
    up one row per key again; returns how many rows were folded.

    Each chunk holds every shard's lock: a writer merging into a row being folded would
    otherwise write back a sum the fold already moved. Writers wait for a chunk at most."""
    cols = ", ".join(("cube", "res", "bucket", "combo", *FIELDS, "hist", "hist2", "shard"))
    folded = 0
    while True:
        with conn.transaction():
            conn.execute(
                "SELECT count(pg_advisory_xact_lock(%s, %s + k)) FROM generate_series(0, %s) k",
                (LOCK_NS, LOCK_SHARD0, _ALL_SHARDS - 1),
            )
            rows = conn.execute(
                f"DELETE FROM rollups WHERE (cube, res, bucket, combo, shard) IN"
                f" (SELECT cube, res, bucket, combo, shard FROM rollups WHERE shard > 0"
                f" AND bucket < %s LIMIT %s) RETURNING {cols}",
                (before, _FOLD_CHUNK),
            ).fetchall()
            if not rows:
                return folded
            by_key: dict[tuple[Any, ...], list[Any]] = {}
            for r in rows:
                key, vals = r[:4], list(r[4 : 6 + _NF])
                got = by_key.get(key)
                if got is None:
                    by_key[key] = vals
                    continue
                for i in range(_NF):
                    got[i] += vals[i]
                got[_NF] = merge_hist_blobs(got[_NF], vals[_NF])
                got[_NF + 1] = merge_hist_blobs(got[_NF + 1], vals[_NF + 1])
            merge_into_shard(conn, [(*k, *v) for k, v in sorted(by_key.items())], 0)
            folded += len(rows)


def vacuum(target: PgUrl) -> tuple[int, int]:
    """Fold older rollup shards (fold_shards), then VACUUM (ANALYZE) the llmtop tables; the
    database's size before and after, in bytes."""
    conn = connect(target, autocommit=True)
    try:
        refuse_writes(conn, target, "vacuum")
        require_tables(conn, target)
        migrate(conn, target)
        size = "SELECT pg_database_size(current_database())"
        before = int(conn.execute(size).fetchone()[0])
        fold_shards(conn, time.time() - 3600)
        tables = ("calls", "rollups", "combos", "strings", "batches", "drops", "alerts", "outcomes")
        for table in tables:
            conn.execute(f"VACUUM (ANALYZE) {table}")
        return before, int(conn.execute(size).fetchone()[0])
    except driver().Error as exc:
        raise DatabaseError(one_line(target, exc)) from None
    finally:
        conn.close()
