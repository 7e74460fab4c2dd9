"""One writer per process per database, and what happens to them at fork, exit and SIGTERM."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from llmtop.collector.writer import Writer
from llmtop.store.db import resolve_db_path

_writers: dict[Path, Writer] = {}
_writers_lock = threading.Lock()
#: This process was forked from one that had imported the collector (its writers write
#: in-process and eagerly: get_writer).
_forked = False


def get_writer(db: str | os.PathLike[str] | None = None) -> Writer:
    """The process-wide writer for a database path (one thread per file, shared by collectors)."""
    path = resolve_db_path(db)
    w = _writers.get(path)
    if w is not None and w.pid == os.getpid():
        return w
    with _writers_lock:
        w = _writers.get(path)
        if w is None or w.pid != os.getpid():
            # A forked worker writes in-process (unless LLMTOP_WRITER says otherwise) and as
            # each event comes: its parent may stop it as soon as its task returns, sooner than
            # a writer process of its own starts (~0.2 s), and its last calls were lost.
            sink = "thread" if _forked and not os.environ.get("LLMTOP_WRITER") else None
            w = _writers[path] = Writer(path, sink=sink)
            w.eager = _forked
        return w


def _after_fork_in_child() -> None:
    # The parent's thread does not exist here and its queue would be written twice: start clean.
    # The inherited connections are abandoned, not closed (SQLite forbids using them after fork);
    # the pipes to the parent's sidecar are closed here, or they would keep it alive.
    global _writers, _writers_lock, _forked
    _forked = True
    _writers_lock = threading.Lock()  # a fork while another thread held it must not deadlock
    for w in _writers.values():
        try:
            w.abandon()
        except Exception:
            pass
    _abandoned.extend(_writers.values())
    _writers = {}
    try:
        if signal.getsignal(signal.SIGTERM) is _flush_and_die:
            # A child's SIGTERM is its parent's way to stop it now (Pool.terminate, which a
            # `with Pool(...)` block ends in): a Python handler only runs when the main thread
            # gets back to Python, and a pool worker waiting on the task queue's lock never did,
            # so the pool's exit hung for good. The child dies of it at once, as without llmtop.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):
        pass
    mp = sys.modules.get("multiprocessing.util")
    if mp is not None:
        # A multiprocessing worker (fork) ends in os._exit, past atexit: its last batch (up to
        # 250 ms of calls, all of a short task's) was lost and counted nowhere. Its exit runs
        # the Finalize callbacks first, but the worker clears that registry after this hook,
        # so the Finalize is registered from its after-fork registry, which runs later.
        mp.register_after_fork(_AFTER_FORK_KEY, _finalize_at_worker_exit)


class _Key:
    """A weak-referenceable key for multiprocessing's after-fork registry."""


_AFTER_FORK_KEY = _Key()
_finalized_pid = 0

#: Bound on the wait for LiteLLM's logging pool at a worker's exit.
DRAIN_WAIT = 2.0


def _finalize_at_worker_exit(_key: object) -> None:
    global _finalized_pid
    if _finalized_pid == os.getpid():
        return
    _finalized_pid = os.getpid()
    import multiprocessing.util

    multiprocessing.util.Finalize(None, _drain_and_close, exitpriority=100)


def _drain_and_close() -> None:
    """At a multiprocessing worker's exit: let LiteLLM's logging pool run the success callbacks
    it still holds (multiprocessing joins threads only after its exit hooks), bounded, then
    close the writers."""
    utils = sys.modules.get("litellm.utils")
    pool = getattr(utils, "executor", None)
    if pool is not None and hasattr(pool, "shutdown"):
        t = threading.Thread(target=pool.shutdown, kwargs={"wait": True}, daemon=True)
        t.start()
        t.join(DRAIN_WAIT)
    _close_all()


_abandoned: list[Writer] = []


def _close_all() -> None:
    for w in list(_writers.values()):
        try:
            w.close()
        except Exception:
            pass


#: Bound on the flush a SIGTERM waits for before the process dies of it.
SIGTERM_FLUSH = 1.0


def _flush_and_die(signum: int, frame: Any) -> None:
    """SIGTERM with the default disposition: flush (bounded), then die of the same signal."""
    deadline = time.monotonic() + SIGTERM_FLUSH
    try:
        for w in list(_writers.values()):
            if w.pid == os.getpid():
                w.close(max(0.05, deadline - time.monotonic()))
    finally:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def install_sigterm_flush() -> bool:
    """Flush on SIGTERM, but only where SIGTERM would otherwise kill the process outright.

    A plain script or a container's main process dies of SIGTERM without running atexit, losing
    the last batch. An app that installed its own handler (uvicorn, gunicorn) shuts down
    cleanly and runs atexit itself: its handler is never replaced. Signal handlers can only be
    set from the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False
        signal.signal(signal.SIGTERM, _flush_and_die)
    except (ValueError, OSError):
        return False
    return True


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all)
