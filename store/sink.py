"""Where batches of CallRecords land: one SQLite file, guarded against what happens to it.

The collector's writer hands a batch to a sink and learns one of three things: it was written,
the storage cannot take writes now (`StorageError`: retry later, rows kept), or the batch holds a
row the database refuses (`RowsRefused`: a data problem, which the writer isolates by splitting
the batch). Keeping that distinction here is what lets one malformed value never stop recording.

The sink also keeps the file honest: before and after each batch it checks that the path still
names the file it has open (device + inode), so a database deleted or replaced while the app runs
is re-created (0600) or refused with one line instead of being written into an unlinked inode.
When idle it checkpoints the WAL with TRUNCATE (so `-wal` stays small) and prunes a little.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from llmtop.store.db import DatabaseError, busy_timeout_ms, explain
from llmtop.store.maintenance import (
    DEFAULT_RETENTION,
    DEFAULT_ROLLUP_RETENTION,
    prune_step,
    retention_from_env,
)
from llmtop.store.records import CallRecord
from llmtop.store.rollup import Rollup
from llmtop.store.schema import open_db
from llmtop.store.write import Interner, insert_batch

log = logging.getLogger("llmtop.collector")

#: Seconds without a write before the WAL is checkpointed and truncated.
IDLE_CHECKPOINT = 1.0
PRUNE_INTERVAL = 60.0
PRUNE_BATCH = 500


class StorageError(Exception):
    """The database cannot take writes now (disk, permissions, lock, a replaced file): retry."""

    #: True when a retry in a moment is likely to work (another process holds the write lock,
    #: or the writer process died and a new one is starting): flush() keeps retrying then.
    transient = False


class RowsRefused(Exception):
    """A row of the batch cannot be stored as it is (the data's fault, not the disk's)."""


#: Exceptions that mean the storage failed, whatever the rows held.
STORAGE_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.OperationalError,
    sqlite3.DatabaseError,
    DatabaseError,
    OSError,
    MemoryError,
)
#: sqlite3 errors that do name the data (a value it cannot bind, a constraint).
_DATA_SQLITE_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.InterfaceError,
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
)


def storage_error(path: Path, exc: BaseException) -> StorageError:
    msg = str(exc) if isinstance(exc, DatabaseError) else explain(path, exc)
    err = StorageError(msg)
    low = str(exc).lower()
    err.transient = "locked" in low or "busy" in low
    return err


def prune_interval_from_env() -> float | None:
    raw = os.environ.get("LLMTOP_PRUNE_INTERVAL", "").strip().lower()
    if raw in ("off", "never"):
        return None
    try:
        value = float(raw) if raw else PRUNE_INTERVAL
    except ValueError:
        log.error("llmtop: LLMTOP_PRUNE_INTERVAL=%s: expected seconds or 'off'", raw)
        return PRUNE_INTERVAL
    return value if value >= 0 and value == value else PRUNE_INTERVAL


def _ident(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class SqliteSink:
    """Writes batches into one SQLite file (one connection, one thread or process at a time)."""

    def __init__(self, path: str | os.PathLike[str], pid: int | None = None) -> None:
        self.path = Path(path)
        #: The process a drop is filed under: the host app's, also when a sidecar writes.
        self.pid = pid
        self._conn: sqlite3.Connection | None = None
        self._ident: tuple[int, int] | None = None
        self._interner = Interner()
        self._rollup = Rollup()
        self._last_write = 0.0
        self._checkpointed = True
        self._next_checkpoint = 0.0
        self._next_prune = time.monotonic() + 5.0
        #: Seconds between background prune steps (LLMTOP_PRUNE_INTERVAL; 'off': never).
        self.prune_interval = prune_interval_from_env()
        if self.prune_interval == 0.0:
            self._next_prune = 0.0
        self.pruned = 0

    # --- writing ------------------------------------------------------------------------------
    def write(
        self,
        records: Sequence[CallRecord],
        drops: Sequence[tuple[int, str]] = (),
        timeout: float | None = None,
    ) -> None:
        """Write the batch and the pending drop counts in one transaction, or raise.

        `timeout`: the longest to wait for another process's lock (default: busy_timeout_ms()).
        """
        conn = self._connection()
        if timeout is not None:
            conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        try:
            insert_batch(conn, self._interner, records, drops, self._rollup, self.pid)
        except STORAGE_ERRORS as exc:
            if isinstance(exc, _DATA_SQLITE_ERRORS):
                raise RowsRefused(f"{type(exc).__name__}: {exc}") from exc
            self.close()
            raise storage_error(self.path, exc) from exc
        except Exception as exc:  # UnicodeEncodeError, OverflowError, ValueError, TypeError...
            raise RowsRefused(f"{type(exc).__name__}: {exc}") from exc
        finally:
            if timeout is not None and self._conn is not None:
                self._conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms()}")
        self._last_write = time.monotonic()
        self._checkpointed = False
        if _ident(self.path) != self._ident:
            # The file was deleted or replaced while this batch was being written: the rows went
            # into an unlinked inode. Say so, so the caller writes them again to the new file.
            self.close()
            raise StorageError(f"{self.path}: the database file was removed or replaced while open")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            ident = _ident(self.path)
            if ident != self._ident:
                what = "removed" if ident is None else "replaced by another file"
                log.warning("llmtop: %s was %s while open; opening it anew", self.path, what)
                self.close()
        if self._conn is None:
            if not self.path.exists() and not self.path.is_symlink():
                # A `-wal` without its database belongs to the deleted file: SQLite would replay
                # it into the new one.
                for suffix in ("-wal", "-shm"):
                    try:
                        os.unlink(f"{self.path}{suffix}")
                    except FileNotFoundError:
                        pass
                    except OSError:
                        pass
            try:
                self._conn = open_db(self.path, check_same_thread=False)
            except STORAGE_ERRORS as exc:
                raise storage_error(self.path, exc) from exc
            self._ident = _ident(self.path)
            self._interner = Interner()
            self._rollup = Rollup()
        return self._conn

    # --- between batches ----------------------------------------------------------------------
    def idle(self) -> None:
        """Housekeeping when no batch is waiting: truncate the WAL, prune a little."""
        if self._conn is None:
            return
        now = time.monotonic()
        if (
            not self._checkpointed
            and now - self._last_write >= IDLE_CHECKPOINT
            and now >= self._next_checkpoint
        ):
            self._next_checkpoint = now + IDLE_CHECKPOINT
            # Never wait: TRUNCATE waits for readers through the busy handler while holding the
            # write lock, which would stall every writer behind one long read (an export, a
            # sqlite shell). Busy now means: try again in the next idle second.
            try:
                self._conn.execute("PRAGMA busy_timeout=0")
                busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                self._checkpointed = not busy
            except sqlite3.Error as exc:
                log.debug("llmtop: WAL checkpoint skipped: %s", exc)
            finally:
                try:
                    self._conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms()}")
                except sqlite3.Error:
                    pass
        self._maybe_prune(now)

    def _maybe_prune(self, now: float) -> None:
        """Retention without a cron job: LLMTOP_RETENTION (raw rows, default 90d) and
        LLMTOP_ROLLUP_RETENTION (default 400d); 'off' keeps forever. Batches are tiny, so no
        writer of another process waits on the lock for more than a few ms."""
        if self.prune_interval is None or self._conn is None or now < self._next_prune:
            return
        self._next_prune = now + self.prune_interval
        try:
            raw = retention_from_env("LLMTOP_RETENTION", DEFAULT_RETENTION)
            rollups = retention_from_env("LLMTOP_ROLLUP_RETENTION", DEFAULT_ROLLUP_RETENTION)
        except ValueError as exc:
            log.error("llmtop: not pruning: %s", exc)
            self.prune_interval = None
            return
        try:
            self.pruned += prune_step(
                self._conn, now=time.time(), raw_keep=raw, rollup_keep=rollups, batch=PRUNE_BATCH
            )
        except sqlite3.Error as exc:  # busy or read-only: try again next interval
            log.debug("llmtop: background prune skipped: %s", exc)

    def wal_bytes(self) -> int:
        try:
            return os.path.getsize(f"{self.path}-wal")
        except OSError:
            return 0

    def close(self, timeout: float | None = None) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
            self._ident = None
