"""The dashboard's reads: its connection, the thread workers that read through it, what is kept
in memory between reads, and the watcher that says when to read again.

Why thread workers over sqlite3 (not async workers over aiosqlite): a refresh is mostly Python
work after SQLite returns (sliding the window trackers, merging histograms, assembling the
snapshot: 92-98% of a live refresh at 1M rows, benchmarks/read_split.py); on Textual's event
loop that work would stall keys and painting, in a thread it does not. One read at a time: a read
still running is never cancelled (a database slow enough to outlast the tick would never paint),
the next one is remembered and served as soon as it ends.

Why a key paints before its read: every snapshot read is kept per view (window, grouping,
filter), and while nothing else is asked for the views a key is likely to open next are read
ahead: the drill into the row under the cursor, the other windows of the view on screen, the
drills into the biggest spenders and the other groupings (the screen says which: `likely`). So
a window key, `back`, a drill or a grouping paints from memory at once and the read that follows
only refines it (benchmarks/latency.py measures key → painted). The cursor's drill moves to the
front whenever the cursor moves (`prefer`), as a browser prefetches the link under the pointer.

Why the watcher stats the files instead of using inotify: a stat of the file and its WAL every
POLL_SECONDS costs microseconds, sees every commit on every platform within that interval, and
needs no debounce (watchfiles' 50 ms step and 100 ms debounce were most of call → screen). On a
PostgreSQL store the watcher LISTENs instead (Reader.wait_for_change), so a commit on any host
wakes the dashboard.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from llmtop.pricing import cache_read_saving
from llmtop.store.db import DatabaseError
from llmtop.store.filters import WINDOWS, Clause
from llmtop.store.pg_db import is_pg_url
from llmtop.store.reader import MultiReader, Reader
from llmtop.store.views import RequestRow, Snapshot
from llmtop.tui.messages import (
    DataChanged,
    DetailLoaded,
    LoadFailed,
    RequestsLoaded,
    SnapshotLoaded,
)
from textual.dom import DOMNode
from textual.worker import get_current_worker

#: The watcher's worker group (tests waiting for "all workers" leave it out: it never ends).
WATCH_GROUP = "watch-files"
#: How often the watcher stats the database and its WAL (a commit shows within this plus a read).
POLL_SECONDS = 0.015
#: How long one LISTEN wait lasts on PostgreSQL before the watcher checks it should stop.
LISTEN_SECONDS = 0.5
#: Quiet seconds (no read asked for) before the next view is read ahead.
AHEAD_AFTER = 0.5
#: Snapshots kept per view for painting a key at once (a few views' worth of small dataclasses:
#: each view plans up to 5 windows, 3 drills and MAX_REGROUPS groupings ahead).
KEEP_SNAPSHOTS = 48
#: Windows this long or longer are read ahead last (a cold 7d or 30d read at 10M rows takes
#: seconds; a drill or grouping of the window on screen a fraction of that).
LONG_WINDOW = 7 * 86400
#: At most this many views wait to be read ahead (the cursor can pass many rows).
MAX_AHEAD = 24
#: The screen's first frame waits this long at most for the first snapshot (`settle`).
FIRST_READ_WAIT = 0.4

#: LLMTOP_TRACE_LATENCY=path appends one JSON line per step of a refresh (benchmarks/latency.py
#: reads them); unset, `trace` returns at its first line.
TRACE_PATH = os.environ.get("LLMTOP_TRACE_LATENCY") or None
_trace_lock = threading.Lock()

#: What a snapshot answers: (window, group_by, clauses).
ViewKey = tuple[float, str, tuple[Clause, ...]]


def trace(event: str, **fields: Any) -> None:
    """Append `{"e": event, "t": wall clock, ...}` to LLMTOP_TRACE_LATENCY's file, if set."""
    if TRACE_PATH is None:
        return
    line = json.dumps({"e": event, "t": time.time(), **fields}) + "\n"
    with _trace_lock, open(TRACE_PATH, "a") as f:
        f.write(line)


#: Snapshots shown whose frame has not been written yet (tracing only).
_painting: list[int] = []


def trace_frames(app: Any) -> None:
    """Tracing only: trace "painted" when the next frame is written to the terminal. Textual
    has no public hook for a written frame, so this wraps the app's (private) `_display` once;
    it is never installed unless LLMTOP_TRACE_LATENCY is set."""
    if getattr(app, "_llmtop_traced", False):
        return
    app._llmtop_traced = True
    display = app._display

    def traced(screen: Any, renderable: Any) -> None:
        display(screen, renderable)
        if renderable is not None and _painting:
            for max_id in _painting:
                trace("painted", max_id=max_id)
            _painting.clear()

    app._display = traced


def view_key(snap: Snapshot) -> ViewKey:
    return (round(snap.end - snap.start), snap.group_by, tuple(snap.clauses))


class DashboardReads:
    """One read connection (or a MultiReader over several files) and the reads that use it.

    `now()` is the screen's clock; `live()` says whether reading ahead makes sense (not paused,
    not looking at a fixed range).
    """

    def __init__(
        self,
        host: DOMNode,
        paths: Sequence[Path],
        *,
        now: Callable[[], float] = time.time,
        live: Callable[[], bool] = lambda: True,
        likely: Callable[[Snapshot], list[ViewKey]] = lambda snap: [],
    ) -> None:
        self.host = host
        self.paths = list(paths)
        self.now = now
        self.live = live
        self.likely = likely
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self._reader: Reader | MultiReader | None = None
        self.loading = False
        self.pending = False
        #: The last snapshot read per view, newest last (see the module docstring).
        self.snapshots: OrderedDict[ViewKey, Snapshot] = OrderedDict()
        #: Views to read ahead when nothing else is asked for, and the view they were planned for.
        self.ahead: list[ViewKey] = []
        self._planned: tuple[str, tuple[Clause, ...]] | None = None
        self._asked: ViewKey | None = None
        self._seq = 0
        self._asks = 0  # reads asked for (a read-ahead waits for a quiet AHEAD_AFTER)
        #: Set when a snapshot read ends (posted, or failed): what `settle` waits on.
        self._ended = threading.Event()

    def reader(self) -> Reader | MultiReader:
        if self._reader is None:
            if len(self.paths) > 1:
                self._reader = MultiReader(self.paths, savings=cache_read_saving)
            else:
                self._reader = Reader(self.paths[0], savings=cache_read_saving)
        return self._reader

    # --- snapshots ---------------------------------------------------------------------------
    def start(
        self, now: float, window: float, group_by: str, clauses: tuple[Clause, ...], rows: bool
    ) -> None:
        """Read a snapshot (and the request rows when listed), unless a read is running: then
        one more is due when it ends (see `done`). A view read before is posted from memory
        first (SnapshotLoaded with cached=True), so the key that asked for it paints now."""
        self._asks += 1
        key: ViewKey = (round(window), group_by, tuple(clauses))
        kept = None
        if key != self._asked:
            self._asked = key
            kept = self.snapshots.get(key) if self.live() else None
            if kept is not None:
                self.host.post_message(SnapshotLoaded(kept, cached=True))
        if self.loading:
            self.pending = True
            return
        self.loading, self.pending = True, False
        if kept is not None:
            # The read refining a painted view starts after its frame: a read beside the paint
            # takes half the GIL from it.
            self.host.call_after_refresh(
                self._run, now, window, group_by, clauses, rows, ahead=False
            )
        else:
            self._run(now, window, group_by, clauses, rows, ahead=False)

    def _run(
        self,
        now: float,
        window: float,
        group_by: str,
        clauses: tuple[Clause, ...],
        rows: bool,
        *,
        ahead: bool,
        warm: bool = True,
    ) -> None:
        self._seq += 1
        self.host.run_worker(
            partial(self._snapshot, self._seq, now, window, group_by, clauses, rows, ahead, warm),
            thread=True,
            group="snapshot",
        )

    async def settle(self) -> bool:
        """Until the running read has posted its snapshot, FIRST_READ_WAIT at most: whether it
        did. The screen awaits this before its first frame (DashboardScreen.on_mount), as a
        frame painted beside the first read costs twice: the read runs 2-4× slower (each row
        SQLite hands back takes the GIL from a main thread busy laying out and painting the
        empty screen: a 1h read at 10M rows took 240-280 ms instead of 90-110), and the empty
        frame is painted again with the data anyway. A read longer than that (a cold 30d window)
        paints the empty screen first, as before."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._ended.wait, FIRST_READ_WAIT)

    def done(self, snap: Snapshot | None = None, ahead: bool = False) -> bool:
        """The running read posted its result (`snap`, if it read one); whether another was
        asked for meanwhile. With nothing asked for, the next read-ahead starts. A snapshot
        read for the view on screen plans what to read ahead from it; one read ahead does not
        (its own guesses would replace the plan of the view the user is looking at)."""
        self.loading = False
        if snap is not None:
            self.keep(snap)
            if not ahead:
                self.plan_ahead(snap)
        if self.pending:
            return True
        if self.ahead:
            # Not at once: keys come in runs (drill, drill, back), and a read-ahead under way
            # (up to a cold 30d read) would hold up the read the next key asks for.
            self.host.set_timer(AHEAD_AFTER, partial(self._read_ahead, self._asks))
        return False

    def _read_ahead(self, asks: int) -> None:
        """The next read-ahead, if the reader is still idle and nothing was asked since."""
        if self.loading or asks != self._asks or not self.ahead or not self.live():
            return
        window, group_by, clauses = self.ahead.pop(0)
        self.loading = True
        # A guess (a drill, another grouping) is read without keeping its trackers warm: the
        # windows of the view on screen stay warm for its refreshes (Reader.partial).
        warm = (group_by, clauses) == self._planned
        self._run(self.now(), float(window), group_by, clauses, False, ahead=True, warm=warm)

    def keep(self, snap: Snapshot) -> None:
        """Keep a live snapshot for its view (a paused or fixed-range one answers another
        instant than the next visit's)."""
        if not self.live():
            return
        key = view_key(snap)
        self.snapshots.pop(key, None)
        self.snapshots[key] = snap
        while len(self.snapshots) > KEEP_SNAPSHOTS:
            self.snapshots.popitem(last=False)

    def plan_ahead(self, snap: Snapshot) -> None:
        """Once per grouping and filter shown, the views to read while idle: the screen's first
        guess (the drill under the cursor), the shorter windows (shortest first), its other
        guesses, then the 7d and 30d windows. Their keys then paint from memory, and the
        windows' trackers are warm."""
        view = (snap.group_by, tuple(snap.clauses))
        if view == self._planned or not self.live():
            return
        self._planned = view
        mine = round(snap.end - snap.start)
        windows = [(round(w), *view) for w in sorted(WINDOWS.values()) if round(w) != mine]
        guesses = self.likely(snap)
        order = [
            *guesses[:1],
            *(k for k in windows if k[0] < LONG_WINDOW),
            *guesses[1:],
            *(k for k in windows if k[0] >= LONG_WINDOW),
        ]
        self.ahead = [k for k in dict.fromkeys(order) if k not in self.snapshots][:MAX_AHEAD]

    def prefer(self, key: ViewKey) -> None:
        """The cursor moved: the drill it would open is read ahead next, once the reader has
        been idle for AHEAD_AFTER."""
        if not self.live() or key in self.snapshots:
            return
        if key in self.ahead:
            self.ahead.remove(key)
        self.ahead = [key, *self.ahead][:MAX_AHEAD]
        if not self.loading:
            self.host.set_timer(AHEAD_AFTER, partial(self._read_ahead, self._asks))

    def shown(self, snap: Snapshot) -> None:
        """The screen assigned `snap` and its widgets rendered (traced with the frame after)."""
        if TRACE_PATH is not None:
            trace("widgets", max_id=snap.max_id)
            trace_frames(self.host.app)
            _painting.append(snap.max_id)

    def _snapshot(
        self,
        seq: int,
        now: float,
        window: float,
        group_by: str,
        clauses: tuple[Clause, ...],
        rows: bool,
        ahead: bool,
        warm: bool = True,
    ) -> None:
        trace("read_start", seq=seq, ahead=ahead)
        try:
            try:
                with self.lock:
                    snap = self.reader().snapshot(
                        now=now, window=window, group_by=group_by, clauses=clauses, warm=warm
                    )
                    listed: tuple[RequestRow, ...] | None = None
                    if rows:
                        listed = self.reader().requests(now=now, window=window, clauses=clauses)
            except (DatabaseError, ValueError) as exc:
                self.host.post_message(LoadFailed(str(exc), snapshot=True))
                return
            trace("read_done", seq=seq, max_id=snap.max_id, ahead=ahead)
            if listed is not None:
                self.host.post_message(RequestsLoaded(listed))
            self.host.post_message(SnapshotLoaded(snap, ahead=ahead))
        finally:
            self._ended.set()

    # --- one request ---------------------------------------------------------------------------
    def detail(self, row_id: int, source: str = "") -> None:
        self.host.run_worker(
            partial(self._detail, row_id, source), thread=True, exclusive=True, group="detail"
        )

    def _detail(self, row_id: int, source: str) -> None:
        try:
            with self.lock:
                detail = self.reader().detail(row_id, source)
        except DatabaseError as exc:
            self.host.post_message(LoadFailed(str(exc)))
            return
        self.host.post_message(DetailLoaded(detail))

    # --- when to read again --------------------------------------------------------------------
    def watch(self) -> None:
        """Post DataChanged whenever the store is written (a thread worker for the host's
        lifetime: it ends when the worker is cancelled or `close` is called)."""
        if len(self.paths) == 1 and is_pg_url(self.paths[0]):
            work: Callable[[], None] = self._listen
        else:
            work = partial(watch_files, self.host, self.paths, self.stop)
        self.host.run_worker(work, thread=True, group=WATCH_GROUP, exclusive=True)

    def _listen(self) -> None:
        """PostgreSQL: LISTEN llmtop (on the reader's own listening connection), no polling."""
        worker = get_current_worker()
        try:
            with self.lock:
                reader = self.reader()
        except DatabaseError as exc:
            self.host.post_message(LoadFailed(f"live updates stopped: {exc}"))
            return
        while not (self.stop.is_set() or worker.is_cancelled):
            if reader.wait_for_change(LISTEN_SECONDS) and not self.stop.is_set():
                trace("watch")
                self.host.post_message(DataChanged())

    def close(self) -> None:
        self.stop.set()
        if self._reader is not None:
            with self.lock:
                self._reader.close()


def file_state(paths: Sequence[Path]) -> tuple[tuple[int, int, int] | None, ...]:
    """What changes when a row is committed: each file's and WAL's (inode, size, mtime)."""
    out: list[tuple[int, int, int] | None] = []
    for d in paths:
        for p in (str(d), f"{d}-wal"):
            try:
                st = os.stat(p)
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append(None)
    return tuple(out)


def watch_files(host: DOMNode, paths: Sequence[Path], stop: threading.Event) -> None:
    """Stat the database files and their WALs every POLL_SECONDS; post DataChanged on any
    change. Runs in a thread worker (see the module docstring for why not inotify)."""
    worker = get_current_worker()
    last = file_state(paths)
    while not stop.wait(POLL_SECONDS) and not worker.is_cancelled:
        now = file_state(paths)
        if now != last:
            last = now
            trace("watch")
            host.post_message(DataChanged())
