"""Writing batches to a shared PostgreSQL store: the third sink (store/sink.py's interface).

The collector's Writer cannot tell this sink from SQLite's: `write(records, drops)` either
commits the batch (rows, rollups and drop counts in one transaction), raises `StorageError`
(server down, unreachable, restarting: the Writer keeps the rows in its bounded buffer and
retries, counting what overflows), or raises `RowsRefused` (a value the server will not store:
the Writer splits the batch until the bad row is alone, then repairs or drops it, counted).

Many hosts write at once, so each step is built not to collide with another host's:
- strings and rollup combinations are interned in short transactions of their own with
  `INSERT ... ON CONFLICT DO NOTHING RETURNING` (values sorted, so two hosts adding the same
  values wait on each other in one order, never deadlock), then the ids that did not return are
  selected. An orphan string from a batch that later fails costs nothing.
- rows go in through `COPY` (about 3x executemany's rows/s for our 48 columns).
- rollups: the histogram merge reads the current rollup rows, adds in Python (the same
  `merge_hist_blobs` SQLite runs inside its upsert) and writes them back, which is only correct
  if no other writer changes those rows meanwhile. Every batch touches the same hot rows (this
  minute's, hour's and day's totals), so one lock over them made writers queue: 8 processes
  wrote 4.6k rows/s where 1 wrote 14.6k (on 2 cores the lock holder is itself descheduled among
  the others, stretching the section). Rollup rows are therefore kept per *shard*
  (store/pg_schema.py p004): a batch merges into the first shard whose transaction-level
  advisory lock is free, so concurrent writers take different shards and never wait; a lone
  writer always gets shard 0, so rows multiply only with actual concurrency. Readers already
  add rollup rows up per key. Keys are still upserted sorted.
- the batch's commit sequence is taken under one more advisory lock held to the commit, so
  `seq` is in commit order (store/pg_schema.py): one statement (lock, seq, NOTIFY) and the
  COMMIT. With the merge under it as well, plus four statements, 8 writers' backends spent
  38-47% of their samples waiting on it; with shards and one statement, 8-9%, then less.
- `NOTIFY llmtop, '<seq>'` is sent in the transaction, so it is delivered at commit: dashboards
  on other hosts LISTEN and refresh at once.

One connection per sink, so per process (the Writer is one thread per database per process);
it is re-made after any failure, with a backoff (0.5 s doubling to 10 s) so a dead server costs a
connection attempt now and then, not one per batch.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

from llmtop.store.db import DatabaseError
from llmtop.store.histblob import merge_hist_blobs
from llmtop.store.pg_db import PgUrl, connect, driver, env_number, one_line
from llmtop.store.pg_schema import (
    LOCK_COMMIT,
    LOCK_NS,
    LOCK_SHARD0,
    REAL_FIELDS,
    SHARDS,
    migrate,
    q,
)
from llmtop.store.records import CallRecord, unpack_id
from llmtop.store.rollup import CUBE_DIMS_OF, FIELDS, combo_key
from llmtop.store.rollup import upsert_rows as rollup_upserts
from llmtop.store.sink import RowsRefused, StorageError
from llmtop.store.write import INSERT_COLUMNS, Interner

log = logging.getLogger("llmtop.collector")

_ID_COLUMNS = (INSERT_COLUMNS.index("trace_id"), INSERT_COLUMNS.index("litellm_call_id"))
COPY_SQL = f"COPY calls (batch, {', '.join(q(c) for c in INSERT_COLUMNS)}) FROM STDIN"
_KEY = ("cube", "res", "bucket", "combo")
_ROLLUP_COLS = (*_KEY, *FIELDS, "hist", "hist2", "shard")
_ARRAY_TYPES = (
    "int4", "int4", "int8", "int4",
    *("float8" if f in REAL_FIELDS else "int8" for f in FIELDS),
    "bytea", "bytea", "int2",
)  # fmt: skip
UPSERT_SQL = (
    f"INSERT INTO rollups ({', '.join(_ROLLUP_COLS)}) SELECT * FROM unnest("
    + ", ".join(f"%s::{t}[]" for t in _ARRAY_TYPES)
    + ") ON CONFLICT (cube, res, bucket, combo, shard) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*FIELDS, "hist", "hist2"))
)
EXISTING_SQL = (
    f"SELECT {', '.join(_ROLLUP_COLS)} FROM rollups WHERE shard = %s AND (cube, res, bucket, combo)"
    " IN (SELECT * FROM unnest(%s::int4[], %s::int4[], %s::int8[], %s::int4[]))"
)
#: The commit section: lock, the batch's commit sequence, NOTIFY (each step reads the one before,
#: so they run in this order).
COMMIT_SQL = (
    "WITH l AS MATERIALIZED (SELECT pg_advisory_xact_lock(%s, %s)),"
    " b AS (INSERT INTO batches (batch, seq, at, rows)"
    " SELECT %s, nextval('llmtop_commit'), %s, %s FROM l RETURNING seq)"
    " SELECT pg_notify('llmtop', seq::text) FROM b"
)
#: The first free shard (generate_series is read in order and stops at the first lock taken).
SHARD_SQL = (
    "SELECT k FROM generate_series(0, %s) k WHERE pg_try_advisory_xact_lock(%s, %s + k) LIMIT 1"
)


def shard_count() -> int:
    """`LLMTOP_PG_ROLLUP_SHARDS` (default 8; 1 is the single lock every writer queues for, kept
    for benchmarks/fleet.py's before/after figures)."""
    return max(1, min(64, int(env_number("LLMTOP_PG_ROLLUP_SHARDS", SHARDS))))


BACKOFF_MAX = 10.0
_ABANDONED: list[Any] = []


def _storage(target: PgUrl, exc: BaseException) -> StorageError:
    err = StorageError(one_line(target, exc) if not isinstance(exc, DatabaseError) else str(exc))
    psycopg = driver()
    # A deadlock, a serialization failure or a lock wait past its timeout: retry soon.
    err.transient = isinstance(
        exc, (psycopg.errors.TransactionRollback, psycopg.errors.LockNotAvailable)
    )
    return err


def merge_into_shard(conn: Any, upserts: list[tuple[Any, ...]], shard: int) -> None:
    """Add rollup rows (key, FIELDS sums, hist, hist2) to what `shard` holds, histograms merged in
    Python; the caller holds the shard's lock."""
    keys = [list(c) for c in zip(*(u[:4] for u in upserts), strict=True)]
    old = {r[:4]: r for r in conn.execute(EXISTING_SQL, [shard, *keys]).fetchall()}
    nf = len(FIELDS)
    merged = []
    for u in upserts:
        o = old.get(u[:4])
        if o is None:
            merged.append((*u, shard))
            continue
        sums = [a + b for a, b in zip(o[4 : 4 + nf], u[4 : 4 + nf], strict=True)]
        merged.append(
            (
                *u[:4],
                *sums,
                merge_hist_blobs(o[4 + nf], u[4 + nf]),
                merge_hist_blobs(o[5 + nf], u[5 + nf]),
                shard,
            )
        )
    cols = [list(c) for c in zip(*merged, strict=True)]
    conn.execute(UPSERT_SQL, cols)


class PgInterner(Interner):
    """The `strings` cache of store.write, filled from PostgreSQL."""

    def ids_for(self, db: Any, values: Any) -> None:
        missing = sorted(self.missing(values))
        if not missing:
            return
        with db.transaction():
            got = db.execute(
                "INSERT INTO strings (value) SELECT * FROM unnest(%s::text[])"
                " ON CONFLICT (value) DO NOTHING RETURNING id, value",
                (missing,),
            ).fetchall()
        self.learn(got)
        rest = sorted(set(missing) - {v for _, v in got})
        if rest:
            self.learn(
                db.execute(
                    "SELECT id, value FROM strings WHERE value = ANY(%s::text[])", (rest,)
                ).fetchall()
            )


class PostgresSink:
    """Writes batches into a PostgreSQL database shared by many hosts."""

    def __init__(self, target: PgUrl) -> None:
        self.path = target
        self._conn: Any = None
        self._interner = PgInterner()
        self._combos: dict[tuple[int, tuple[Any, ...]], int] = {}
        self._next_connect = 0.0
        self._backoff = 0.5
        self._last_error: StorageError | None = None
        self.host = socket.gethostname()
        self.batches = 0
        self.shards = shard_count()

    # --- connection ---------------------------------------------------------------------------
    def _connection(self) -> Any:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        now = time.monotonic()
        if now < self._next_connect and self._last_error is not None:
            raise StorageError(str(self._last_error))
        try:
            conn = connect(self.path, autocommit=True)
            migrate(conn, self.path)
        except (DatabaseError, driver().Error) as exc:
            self._next_connect = now + self._backoff
            self._backoff = min(BACKOFF_MAX, self._backoff * 2)
            self._last_error = _storage(self.path, exc)
            raise self._last_error from None
        self._backoff = 0.5
        self._last_error = None
        self._conn = conn
        # Ids learnt from a server that may have been restored or replaced: learn them anew.
        self._interner.forget()
        self._combos.clear()
        return conn

    # --- writing ------------------------------------------------------------------------------
    def write(
        self,
        records: Sequence[CallRecord],
        drops: Sequence[tuple[int, str]] = (),
        timeout: float | None = None,
    ) -> None:
        """Write the batch and the pending drop counts in one transaction, or raise.

        `timeout`: the longest to wait for another writer's locks (lock_timeout); past it the
        batch is a transient StorageError, retried as SQLite's `database is locked` is."""
        psycopg = driver()
        conn = self._connection()
        try:
            for _ in self.steps(conn, records, drops, timeout):
                pass
        except psycopg.errors.DataError as exc:  # a value out of range, a NUL in a string...
            raise RowsRefused(f"{type(exc).__name__}: {one_line('row', exc)}") from exc
        except psycopg.errors.IntegrityError as exc:
            raise RowsRefused(f"{type(exc).__name__}: {one_line('row', exc)}") from exc
        except (psycopg.Error, DatabaseError, OSError) as exc:
            self.close()
            raise _storage(self.path, exc) from exc
        except (ValueError, TypeError, OverflowError, UnicodeError) as exc:
            raise RowsRefused(f"{type(exc).__name__}: {exc}") from exc
        self.batches += 1

    def connection(self) -> Any:
        """The sink's connection, (re)made as write() would (for steps())."""
        return self._connection()

    def steps(
        self,
        conn: Any,
        records: Sequence[CallRecord],
        drops: Sequence[tuple[int, str]] = (),
        timeout: float | None = None,
    ) -> Iterator[None]:
        """The batch's transaction, pausing once: after the rows are copied in, before the
        commit section. write() runs it straight through; the property test of interleaved
        writers (tests/test_postgres_read.py) runs several at once in any order, which is how
        a row with a smaller id comes to commit after one with a larger id."""
        rows = self._interner.rows(conn, records) if records else []
        upserts = rollup_upserts(rows, INSERT_COLUMNS, lambda c, k: self._combo_ids(conn, c, k))
        upserts.sort(key=lambda u: u[:4])
        with conn.transaction():
            if timeout is not None:
                conn.execute(f"SET LOCAL lock_timeout = {max(1, int(timeout * 1000))}")
            if rows:
                (batch,) = conn.execute("SELECT nextval('llmtop_batch')").fetchone()
                with conn.cursor().copy(COPY_SQL) as copy:
                    for r in rows:
                        r = list(r)
                        for i in _ID_COLUMNS:
                            r[i] = unpack_id(r[i])
                        copy.write_row((batch, *r))
            yield
            if upserts:
                self._upsert(conn, upserts, self._shard(conn))
            if drops:
                now, pid = time.time(), os.getpid()
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO drops (at, count, reason, pid, host) VALUES (%s,%s,%s,%s,%s)",
                        [(now, n, reason, pid, self.host) for n, reason in drops],
                    )
            if rows:
                # From here to the commit: one writer at a time (see the module docstring), in
                # one statement, so the lock is held for the server's work and the COMMIT's
                # round trip, not for a client process that the CPU scheduler may pause.
                conn.execute(COMMIT_SQL, (LOCK_NS, LOCK_COMMIT, batch, time.time(), len(rows)))
            else:
                conn.execute("SELECT pg_notify('llmtop', '0')")

    def _shard(self, conn: Any) -> int:
        """Lock a rollup shard for this transaction: the first free one, else wait for this
        process's own (every shard busy: more writers than shards)."""
        row = conn.execute(SHARD_SQL, (self.shards - 1, LOCK_NS, LOCK_SHARD0)).fetchone()
        if row is not None:
            return int(row[0])
        k = os.getpid() % self.shards
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NS, LOCK_SHARD0 + k))
        return k

    def _upsert(self, conn: Any, upserts: list[tuple[Any, ...]], shard: int) -> None:
        merge_into_shard(conn, upserts, shard)

    def _combo_ids(self, conn: Any, cube: int, keys: list[tuple[Any, ...]]) -> list[int]:
        known = self._combos
        missing = sorted({k for k in keys if (cube, k) not in known}, key=combo_key)
        if missing:
            if len(known) + len(missing) > 500_000:
                known.clear()
                missing = sorted(set(keys), key=combo_key)
            dims = CUBE_DIMS_OF[cube]
            texts = [combo_key(k) for k in missing]
            by_text = dict(zip(texts, missing, strict=True))
            cols = ", ".join(("cube", "key", *(q(d) for d in dims)))
            arrays = ", ".join(["%s::text[]", *("%s::int4[]" for _ in dims)])
            params: list[Any] = [texts, *([k[i] for k in missing] for i in range(len(dims)))]
            with conn.transaction():
                got = conn.execute(
                    f"INSERT INTO combos ({cols}) SELECT {cube}, * FROM unnest({arrays})"
                    " ON CONFLICT (cube, key) DO NOTHING RETURNING id, key",
                    params,
                ).fetchall()
            for cid, text in got:
                known[(cube, by_text[text])] = cid
            rest = [t for t in texts if (cube, by_text[t]) not in known]
            if rest:
                for cid, text in conn.execute(
                    "SELECT id, key FROM combos WHERE cube = %s AND key = ANY(%s::text[])",
                    (cube, rest),
                ):
                    known[(cube, by_text[text])] = cid
        return [known[(cube, k)] for k in keys]

    # --- between batches ----------------------------------------------------------------------
    def idle(self) -> None:
        """Nothing to checkpoint: PostgreSQL manages its own WAL. Retention is `llmtop prune`'s
        job on a shared server (one cron job, not every host)."""

    def wal_bytes(self) -> int:
        return 0

    def abandon(self) -> None:
        """In a forked child: forget the parent's connection without closing it (closing would
        end the parent's session on the shared socket); the child connects anew."""
        if self._conn is not None:
            _ABANDONED.append(self._conn)  # never collected, so never closed from here
            self._conn = None

    def close(self, timeout: float | None = None) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a dead connection may fail to close: it is gone either way
                pass
            self._conn = None
