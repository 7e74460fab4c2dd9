"""The background writer: one thread per process per database, batching rows into SQLite.

Why a thread and a deque: the hooks run on the caller's thread (failures) or event loop (async
successes), where any lock wait or disk write would be added to the app's latency. `deque.append`
is atomic under the GIL, so the hot path takes no lock at all. The thread wakes every
FLUSH_INTERVAL (or early when a batch is full), maps and prices what is queued, and writes it in
one IMMEDIATE transaction. When writing fails (read-only file, full disk, a lock held too long)
rows wait in a bounded buffer and are retried; what overflows is counted, and the count is written
to `drops` as soon as the database accepts writes again.
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmtop.collector.mapping import Captured, env_tags, to_record
from llmtop.pricing import catalogue
from llmtop.store.db import DatabaseError, explain, resolve_db_path
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

FLUSH_INTERVAL = 0.25
BATCH_SIZE = 5_000
MAX_QUEUE = 100_000
PRUNE_INTERVAL = 60.0
PRUNE_BATCH = 500
RETRY_INTERVAL = 1.0
_TRACE_MEMORY = 50_000


class _Flush:
    """A marker put in the queue; set once everything enqueued before it has been handled."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


def price_record(rec: CallRecord) -> None:
    """Fill our cost from llmtop.pricing; a row's cost is never guessed."""
    cat = catalogue()
    rec.price_version = cat.version
    if rec.unmetered:
        return
    if rec.status == "failure" and rec.input_tokens == 0 and rec.output_tokens == 0:
        rec.cost_usd = rec.input_usd = rec.output_usd = 0.0
        rec.cache_read_usd = rec.cache_write_usd = 0.0
        return
    c = cat.cost(
        rec.model or "",
        input_tokens=rec.input_tokens,
        output_tokens=rec.output_tokens,
        cache_read_tokens=rec.cache_read_tokens,
        cache_write_tokens=rec.cache_write_tokens,
        reasoning_tokens=min(rec.reasoning_tokens, rec.output_tokens),
        audio_input_tokens=min(rec.audio_input_tokens, rec.input_tokens),
        audio_output_tokens=min(rec.audio_output_tokens, rec.output_tokens),
        batch=rec.batch,
        service_tier=rec.service_tier,
        provider=rec.provider,
        price_key=rec.price_key,
    )
    if c.total_usd is None:
        rec.unpriced = True
        rec.unpriced_reason = c.reason
        return
    if c.price_key:
        rec.price_key = c.price_key
    if rec.cache_hit:
        # LiteLLM's response cache answered: nothing was billed, the replayed usage was saved.
        if rec.saved_usd is None:
            rec.saved_usd = c.total_usd
        rec.cost_usd = rec.input_usd = rec.output_usd = 0.0
        rec.cache_read_usd = rec.cache_write_usd = 0.0
        return
    rec.cost_usd = c.total_usd
    rec.input_usd = c.input_usd + (c.audio_usd or 0.0) if c.input_usd is not None else None
    rec.cache_read_usd = c.cache_read_usd
    rec.cache_write_usd = c.cache_write_usd
    rec.output_usd = c.output_usd


class Writer:
    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_queue: int = MAX_QUEUE,
        flush_interval: float = FLUSH_INTERVAL,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.path: Path = resolve_db_path(path)
        self.max_queue = max_queue
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.pid = os.getpid()
        self._q: deque[Any] = deque()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._conn: sqlite3.Connection | None = None
        self._interner = Interner()
        self._rollup = Rollup()
        self._pending: list[CallRecord] = []
        self._drops: Counter[str] = Counter()
        self._traces: OrderedDict[str, int] = OrderedDict()
        self._last_error: str | None = None
        self._locked_out = False  # the last failure was a lock wait, worth waiting out
        self._next_retry = 0.0
        self.written = 0
        self.dropped = 0
        #: Seconds between background prune steps (None: never). Each step deletes at most a few
        #: hundred expired rows per table in its own short transaction.
        self.prune_interval: float | None = PRUNE_INTERVAL
        self._next_prune = time.monotonic() + 5.0
        self.pruned = 0

    # --- caller side -------------------------------------------------------------------------
    def submit(self, item: Captured | CallRecord) -> None:
        q = self._q
        if len(q) >= self.max_queue:
            self.drop(1, "queue full")
            return
        q.append(item)
        if self._thread is None:
            self._start()
        elif len(q) >= self.batch_size:
            self._wake.set()

    def drop(self, n: int, reason: str) -> None:
        # Counter updates can race with the writer thread; a lost increment only under-counts
        # drops, and holding a lock here would put lock waits on the caller's thread.
        self._drops[reason] += n
        self.dropped += n

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything enqueued so far is written (True) or could not be (False).

        While the only problem is another process holding the write lock (several writers
        saturating the machine can starve one for seconds), keep retrying until `timeout`: a
        closing process must not leave rows behind that a moment's wait would have written.
        """
        deadline = time.monotonic() + timeout
        while True:
            ok = self._flush_once(max(0.0, deadline - time.monotonic()))
            if ok or not self._locked_out or time.monotonic() >= deadline:
                return ok
            wait = min(self._next_retry - time.monotonic(), deadline - time.monotonic(), 0.5)
            time.sleep(max(0.01, wait))

    def _flush_once(self, timeout: float) -> bool:
        if self._thread is None:
            if not self._q:
                return not self._pending
            # A hook on another thread may have appended but not yet started the thread:
            # start it here rather than report a spurious failure.
            self._start()
        marker = _Flush()
        self._q.append(marker)
        self._wake.set()
        marker.done.wait(timeout)
        return marker.ok

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is None or self.pid != os.getpid():
            return
        self.flush(timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._stopping = False
            t = threading.Thread(
                target=self._run, name=f"llmtop-writer-{self.path.name}", daemon=True
            )
            t.start()
            self._thread = t

    # --- writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self._drain()
                self._maybe_prune()
            except Exception:  # never let the thread die: it is the only writer we have
                log.exception("llmtop writer: unexpected error")
            if self._stopping and not self._q:
                return

    def _drain(self) -> None:
        while True:
            batch: list[CallRecord] = []
            markers: list[_Flush] = []
            q = self._q
            env = env_tags()
            while q and len(batch) < self.batch_size:
                item = q.popleft()
                if isinstance(item, _Flush):
                    markers.append(item)
                    break
                rec = self._map(item, env)
                if rec is not None:
                    batch.append(rec)
            ok = self._write(batch)
            for m in markers:
                m.ok = ok
                m.done.set()
            if not q:
                return

    def _maybe_prune(self) -> None:
        """Retention without a cron job: every writer deletes a little expired data now and then.

        LLMTOP_RETENTION (raw rows, default 90d) and LLMTOP_ROLLUP_RETENTION (default 400d); 'off'
        keeps forever. With several writer processes each prunes a little; the batches are tiny
        so none holds the write lock for more than a few ms.
        """
        if self.prune_interval is None or self._conn is None or self._last_error is not None:
            return
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + self.prune_interval
        try:
            raw = retention_from_env("LLMTOP_RETENTION", DEFAULT_RETENTION)
            rollups = retention_from_env("LLMTOP_ROLLUP_RETENTION", DEFAULT_ROLLUP_RETENTION)
        except ValueError as exc:
            self._report(f"llmtop: not pruning: {exc}")
            self.prune_interval = None
            return
        try:
            self.pruned += prune_step(
                self._conn, now=time.time(), raw_keep=raw, rollup_keep=rollups, batch=PRUNE_BATCH
            )
        except sqlite3.Error as exc:  # busy or read-only: try again next interval
            log.debug("llmtop: background prune skipped: %s", exc)

    def _map(self, item: Captured | CallRecord, env: dict[str, str]) -> CallRecord | None:
        try:
            rec = item if isinstance(item, CallRecord) else to_record(item, env)
            self._number_attempt(rec)
            price_record(rec)
            return rec
        except Exception as exc:
            self.drop(1, "malformed payload")
            self._report(
                f"llmtop: skipped a malformed LiteLLM payload ({type(exc).__name__}: {exc})"
            )
            return None

    def _number_attempt(self, rec: CallRecord) -> None:
        """Attempts of one request share a trace id; number them in arrival order."""
        tid = rec.trace_id
        if not tid:
            return
        seen = self._traces.get(tid, 0) + 1
        self._traces[tid] = seen
        self._traces.move_to_end(tid)
        if len(self._traces) > _TRACE_MEMORY:
            self._traces.popitem(last=False)
        if seen > rec.attempt:
            rec.attempt = seen
            if not rec.is_fallback:
                rec.is_retry = True

    def _write(self, batch: Sequence[CallRecord]) -> bool:
        if batch:
            self._pending.extend(batch)
        overflow = len(self._pending) - self.max_queue
        if overflow > 0:
            del self._pending[:overflow]
            self.drop(overflow, self._last_error or "write buffer full")
        if not self._pending and not self._drops:
            return True
        now = time.monotonic()
        if now < self._next_retry:
            return False
        try:
            conn = self._connection()
            drops = list(self._drops.items())
            insert_batch(
                conn, self._interner, self._pending, [(n, r) for r, n in drops], self._rollup
            )
        except (sqlite3.Error, DatabaseError, OSError) as exc:
            self._fail(exc)
            return False
        for reason, n in drops:
            self._drops[reason] -= n
            if self._drops[reason] <= 0:
                del self._drops[reason]
        self.written += len(self._pending)
        self._pending = []
        if self._last_error is not None:
            log.warning("llmtop: writing to %s works again", self.path)
            self._last_error = None
            self._locked_out = False
        return True

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_db(self.path, check_same_thread=False)
            self._interner = Interner()
            self._rollup = Rollup()
        return self._conn

    def _fail(self, exc: BaseException) -> None:
        msg = str(exc) if isinstance(exc, DatabaseError) else explain(self.path, exc)
        self._report(
            f"llmtop: cannot write to the database: {msg}; keeping rows in memory and retrying"
        )
        self._last_error = msg
        self._locked_out = "locked" in str(exc).lower() or "busy" in str(exc).lower()
        self._next_retry = time.monotonic() + RETRY_INTERVAL
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    def _report(self, message: str) -> None:
        if message != getattr(self, "_last_report", None):
            self._last_report = message
            log.error(message)


_writers: dict[Path, Writer] = {}
_writers_lock = threading.Lock()


def get_writer(db: str | os.PathLike[str] | None = None) -> Writer:
    """The process-wide writer for a database path (one thread per file, shared by collectors)."""
    path = resolve_db_path(db)
    w = _writers.get(path)
    if w is not None and w.pid == os.getpid():
        return w
    with _writers_lock:
        w = _writers.get(path)
        if w is None or w.pid != os.getpid():
            w = _writers[path] = Writer(path)
        return w


def _after_fork_in_child() -> None:
    # The parent's thread does not exist here and its queue would be written twice: start clean.
    # The inherited connections are abandoned, not closed (SQLite forbids using them after fork).
    global _writers
    _abandoned.extend(_writers.values())
    _writers = {}


_abandoned: list[Writer] = []


def _close_all() -> None:
    for w in list(_writers.values()):
        try:
            w.close()
        except Exception:
            pass


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all)
