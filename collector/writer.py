"""The background writer: one thread per process per database, batching rows into a sink.

Why a thread and a deque: the hooks run on the caller's thread (failures) or event loop (async
successes), where any lock wait or disk write would be added to the app's latency. `deque.append`
is atomic under the GIL, so the hot path takes no lock at all. The thread wakes every
FLUSH_INTERVAL (or early when a batch is full), maps and prices what is queued, and hands it to
the sink: by default a sidecar process that does the SQLite I/O (store/sidecar.py says why), or
SQLite in this process (`LLMTOP_WRITER=thread`). When writing fails (read-only file, full disk,
a lock held too long, a deleted file) rows wait in a bounded buffer and are retried; what
overflows is counted, and the count is written to `drops` as soon as the database accepts writes
again. A row the database refuses is isolated and repaired or dropped with a reason, so it can
never stop the rows behind it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmtop.collector.attempts import Attempts, HiddenAttempts
from llmtop.collector.clean import env_tags
from llmtop.collector.mapping import Captured, from_proxy, to_record
from llmtop.collector.pricing_step import price_record
from llmtop.store.db import resolve_db_path
from llmtop.store.records import SURROGATE, CallRecord, repaired
from llmtop.store.sidecar import SidecarSink, sidecar_usable
from llmtop.store.sink import RowsRefused, SqliteSink, StorageError

log = logging.getLogger("llmtop.collector")

FLUSH_INTERVAL = 0.25
BATCH_SIZE = 5_000
MAX_QUEUE = 100_000
RETRY_INTERVAL = 1.0
#: Of close()'s time, what is kept for stopping the thread once the flush has given up.
STOP_GRACE = 0.2


class _Flush:
    """A marker put in the queue; set once everything enqueued before it has been handled."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


class Writer:
    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_queue: int = MAX_QUEUE,
        flush_interval: float = FLUSH_INTERVAL,
        batch_size: int = BATCH_SIZE,
        sink: str | None = None,
    ) -> None:
        self.path: Path = resolve_db_path(path)
        self.max_queue = max_queue
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.pid = os.getpid()
        #: Write each event as it comes instead of every `flush_interval`: a forked worker's
        #: parent may kill it the moment its task returns (Pool.terminate, the end of a `with
        #: Pool(...)` block), and a batch held for 250 ms was all of a short task's calls.
        self.eager = False
        self._q: deque[Any] = deque()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._sink = make_sink(self.path, sink)
        self._pending: list[CallRecord] = []
        self._drops: Counter[str] = Counter()  # the writer thread's own; callers use the inbox
        self._drop_inbox: deque[tuple[str, int]] = deque()
        self._attempts = Attempts()
        self._last_error: str | None = None
        self._last_report: str | None = None
        self._locked_out = False  # the last failure is worth retrying soon (a lock, a restart)
        self._next_retry = 0.0
        self.written = 0
        self.dropped = 0
        #: Failures of the storage so far, each logged once: (when, message).
        self.outages: list[tuple[float, str]] = []
        self._repair_kinds: set[str] = set()

    # --- caller side -------------------------------------------------------------------------
    def submit(self, item: Captured | CallRecord | HiddenAttempts) -> None:
        q = self._q
        if len(q) >= self.max_queue:
            self.drop(1, "queue full")
            return
        q.append(item)
        if self._thread is None:
            try:
                self._start()
            except RuntimeError:  # no thread to be had now (a pids limit): the next call retries
                pass
        if self.eager or len(q) >= self.batch_size:
            self._wake.set()

    def drop(self, n: int, reason: str) -> None:
        # Any thread: an append is atomic, and only the writer thread folds the inbox into the
        # counts it writes (a shared Counter could count one drop twice, or lose one).
        self._drop_inbox.append((clean_reason(reason), n))
        self.dropped += n

    def _fold_drops(self) -> None:
        inbox = self._drop_inbox
        while inbox:
            reason, n = inbox.popleft()
            self._drops[reason] += n

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything enqueued so far is written (True) or `timeout` passes (False).

        Failed writes are retried until then (another process holding the write lock, a writer
        process restarting, a file moved back): a closing process must not leave rows behind
        that a moment's wait would have written.
        """
        deadline = time.monotonic() + timeout
        while True:
            ok = self._flush_once(max(0.0, deadline - time.monotonic()))
            if ok or time.monotonic() >= deadline:
                return ok
            wait = min(self._next_retry - time.monotonic(), deadline - time.monotonic(), 0.5)
            time.sleep(max(0.01, wait))

    def _flush_once(self, timeout: float) -> bool:
        if self._thread is None:
            if not self._q:
                return not self._pending and not self._drops and not self._drop_inbox
            # A hook on another thread may have appended but not yet started the thread:
            # start it here rather than report a spurious failure.
            self._start()
        marker = _Flush()
        self._q.append(marker)
        self._wake.set()
        marker.done.wait(timeout)
        return marker.ok

    def close(self, timeout: float = 5.0) -> None:
        """Write what is left, stop the thread, and count what is lost; all within `timeout`.

        If the thread is still inside a write when time is up (a lock held by another process,
        a disk that hangs), it is left alone: its rows and sink are its own until it returns,
        and what it still holds is reported in a log line instead.
        """
        if self.pid != os.getpid():
            return
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        thread = self._thread
        if thread is not None:
            if self._last_error is not None and not self._locked_out:
                # A lasting failure (full disk, a foreign file at the path): one more try, not
                # `timeout` seconds of a process that is trying to exit.
                deadline = min(deadline, time.monotonic() + RETRY_INTERVAL + 0.5)
            self.flush(max(0.0, left() - STOP_GRACE))
            self._stopping = True
            self._wake.set()
            thread.join(max(left(), STOP_GRACE))  # an idle thread stops in a few ms
            if thread.is_alive():
                lost = self._unwritten()
                log.error(
                    "llmtop: exiting while a write to %s is still running; %d calls may be lost"
                    " (%s)",
                    self.path,
                    lost,
                    self._last_error or "the write did not finish in time",
                )
                return
            self._thread = None
        lost = self._unwritten()
        if lost:
            reason = self._last_error or "not written before exit"
            self.drop(lost, f"lost at exit: {reason}")
            self._pending = []
            log.error(
                "llmtop: %d calls could not be written to %s before exit (%s)",
                lost,
                self.path,
                reason,
            )
        for item in self._q:  # flush markers left behind: nobody waits on them any more
            if isinstance(item, _Flush):
                item.done.set()
        self._q.clear()
        self._fold_drops()
        if self._drops and left() > 0.05:
            # Last chance to record the counts where the dashboard shows them.
            try:
                self._sink.write([], [(n, r) for r, n in self._drops.items()], timeout=left())
                self._drops.clear()
            except (StorageError, RowsRefused):
                pass
        self._sink.close(left())

    def _unwritten(self) -> int:
        """Calls still in memory: queued (flush markers are not calls) and pending."""
        queued = sum(1 for item in self._q if not isinstance(item, _Flush))
        return queued + len(self._pending)

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
            woke = self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self._drain()
                if not woke and not self._q and not self._pending:
                    self._sink.idle()
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
                if isinstance(item, HiddenAttempts):
                    batch.extend(self._attempts.hidden(item.trace_id, item.attempts, None))
                    continue
                rec = self._map(item, env)
                if rec is not None:
                    if item is not rec and from_proxy(item):  # the proxy hides attempts
                        batch.extend(self._attempts.hidden(rec.trace_id, rec.attempt - 1, rec))
                    batch.append(rec)
            ok = self._write(batch)
            for m in markers:
                m.ok = ok
                m.done.set()
            if not q:
                return

    def _map(self, item: Captured | CallRecord, env: dict[str, str]) -> CallRecord | None:
        try:
            rec = item if isinstance(item, CallRecord) else to_record(item, env)
            self._attempts.number(rec)
        except Exception as exc:
            self.drop(1, "malformed payload")
            self._report(
                f"llmtop: skipped a malformed LiteLLM payload ({type(exc).__name__}: {exc})"
            )
            return None
        try:
            price_record(rec)
        except Exception as exc:  # a broken price file is no reason to lose the call
            rec.unpriced = True
            rec.unpriced_reason = f"pricing unavailable ({type(exc).__name__})"
            self._report(f"llmtop: storing calls unpriced: pricing failed ({exc})")
        return rec

    def _write(self, batch: Sequence[CallRecord]) -> bool:
        if batch:
            self._pending.extend(batch)
        overflow = len(self._pending) - self.max_queue
        if overflow > 0:
            del self._pending[:overflow]
            self.drop(overflow, self._last_error or "write buffer full")
        self._fold_drops()
        if not self._pending and not self._drops:
            return True
        now = time.monotonic()
        if now < self._next_retry:
            return False
        try:
            self._store()
        except StorageError as exc:
            self._fail(exc)
            return False
        if self._last_error is not None:
            log.warning("llmtop: writing to %s works again", self.path)
            self._last_error = None
            self._last_report = None  # the next outage is a new story: log it too
            self._locked_out = False
        return True

    def _store(self) -> None:
        """Write the pending rows, isolating any the database refuses.

        A refused batch is split in halves until the refused rows are alone; each is repaired
        (its values made storable, the row marked invalid) or, failing that, dropped and counted.
        So one bad value costs a few extra transactions, never the writer. Rows are written in
        order; on a storage failure the ones already written leave the buffer, the rest wait.
        """
        rows = self._pending
        done = 0  # rows[:done] are written or dropped
        spans: list[tuple[int, int]] = [(0, len(rows))] if rows else []
        attach = True  # drop counts ride with the first batch, unless that gets one refused
        try:
            while spans or self._drops:
                lo, hi = spans.pop() if spans else (0, 0)
                drops = [(n, r) for r, n in self._drops.items()] if attach or hi <= lo else []
                try:
                    self._sink.write(rows[lo:hi], drops)
                except RowsRefused as exc:
                    if drops and hi <= lo:  # the drop counts alone were refused
                        log.error("llmtop: could not record drop counts (%s): %s", exc, drops)
                        self._drops.clear()
                        continue
                    if drops:  # not the rows' fault yet: retry them alone, the counts after
                        attach = False
                        spans.append((lo, hi))
                        continue
                    if hi - lo > 1:
                        mid = (lo + hi) // 2
                        spans += [(mid, hi), (lo, mid)]
                        continue
                    if not self._repair(rows, lo, str(exc)):
                        self.drop(1, f"invalid row ({str(exc).split(':')[0]})")
                        done = hi
                    else:
                        spans.append((lo, hi))
                    continue
                for n, reason in drops:
                    self._drops[reason] -= n
                    if self._drops[reason] <= 0:
                        del self._drops[reason]
                self.written += hi - lo
                done = max(done, hi)
        finally:
            del rows[:done]

    def _repair(self, rows: list[CallRecord], i: int, why: str) -> bool:
        """Replace rows[i] by a storable copy, once; False if it was repaired already."""
        rec = rows[i]
        if rec.invalid and "repaired" in rec.invalid:
            return False
        rows[i] = repaired(rec, why)
        kind = why.split(":")[0]
        if kind not in self._repair_kinds:  # one line per kind of problem, not one per row
            self._repair_kinds.add(kind)
            log.warning(
                "llmtop: storing calls with values the database refused, repaired (%s)", why
            )
        return True

    def _fail(self, exc: StorageError) -> None:
        msg = str(exc)
        if self._last_error is None:
            self.outages.append((time.time(), msg))
        self._report(
            f"llmtop: cannot write to the database: {msg}; keeping rows in memory and retrying"
        )
        self._last_error = msg
        self._locked_out = exc.transient
        self._next_retry = time.monotonic() + RETRY_INTERVAL

    def _report(self, message: str) -> None:
        if message != self._last_report:
            self._last_report = message
            log.error(message)

    def abandon(self) -> None:
        """In a forked child: forget the parent's sink without closing what the parent uses."""
        abandon = getattr(self._sink, "abandon", None)
        if abandon is not None:
            abandon()


def clean_reason(reason: str) -> str:
    """A drop reason as the `drops` table can store it: text, no surrogates, 200 characters."""
    return SURROGATE.sub("\ufffd", str(reason))[:200]


def make_sink(path: Path, kind: str | None = None) -> SqliteSink | SidecarSink:
    """`sidecar` (default: the SQLite I/O in a child process) or `thread` (in this process).

    LLMTOP_WRITER chooses when the caller does not; a host with no Python interpreter to start
    (an embedded one) gets `thread`, with one line saying so.
    """
    from llmtop.store.pg_db import is_pg_url

    if is_pg_url(path):  # a shared PostgreSQL store: its own sink (the server is the sidecar)
        from llmtop.store.pg_sink import PostgresSink

        return PostgresSink(path)  # type: ignore[arg-type, return-value]
    kind = (kind or os.environ.get("LLMTOP_WRITER") or "sidecar").strip().lower()
    if kind == "thread":
        return SqliteSink(path)
    if kind != "sidecar":
        log.error("llmtop: LLMTOP_WRITER=%s: expected sidecar or thread; using sidecar", kind)
    if not sidecar_usable():
        log.warning(
            "llmtop: no Python interpreter to start the writer process (%r); writing in-process",
            sys.executable,
        )
        return SqliteSink(path)
    return SidecarSink(path)
