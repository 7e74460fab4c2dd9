"""The dashboard's reads: its connection, the thread workers that read through it, and the file
watcher that says when to read again.

Why thread workers over sqlite3 (not async workers over aiosqlite): a refresh is mostly Python
work after SQLite returns (sliding the window trackers, merging histograms, assembling the
snapshot: 92-98% of a live refresh at 1M rows, benchmarks/read_split.py); on Textual's event
loop that work would stall keys and painting, in a thread it does not. One read at a time: a read still running
is never cancelled (a database slow enough to outlast the tick would never paint), the next one
is remembered and served as soon as it ends.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from llmtop.pricing import cache_read_saving
from llmtop.store.db import DatabaseError
from llmtop.store.filters import Clause
from llmtop.store.reader import MultiReader, Reader
from llmtop.store.views import RequestRow
from llmtop.tui.messages import (
    DataChanged,
    DetailLoaded,
    LoadFailed,
    RequestsLoaded,
    SnapshotLoaded,
)
from textual.dom import DOMNode

#: The file watcher's worker group (tests waiting for "all workers" leave it out: it never ends).
WATCH_GROUP = "watch-files"


class DashboardReads:
    """One read connection (or a MultiReader over several files) and the reads that use it."""

    def __init__(self, host: DOMNode, paths: Sequence[Path]) -> None:
        self.host = host
        self.paths = list(paths)
        self.lock = threading.Lock()
        self._reader: Reader | MultiReader | None = None
        self.loading = False
        self.pending = False

    def reader(self) -> Reader | MultiReader:
        if self._reader is None:
            if len(self.paths) > 1:
                self._reader = MultiReader(self.paths, savings=cache_read_saving)
            else:
                self._reader = Reader(self.paths[0], savings=cache_read_saving)
        return self._reader

    def start(
        self, now: float, window: float, group_by: str, clauses: tuple[Clause, ...], rows: bool
    ) -> None:
        """Read a snapshot (and the request rows when listed), unless a read is running: then
        one more is due when it ends (see `done`)."""
        if self.loading:
            self.pending = True
            return
        self.loading, self.pending = True, False
        self.host.run_worker(
            partial(self._snapshot, now, window, group_by, clauses, rows),
            thread=True,
            group="snapshot",
        )

    def done(self) -> bool:
        """The running read posted its result; whether another was asked for meanwhile."""
        self.loading = False
        return self.pending

    def _snapshot(
        self, now: float, window: float, group_by: str, clauses: tuple[Clause, ...], rows: bool
    ) -> None:
        try:
            with self.lock:
                snap = self.reader().snapshot(
                    now=now, window=window, group_by=group_by, clauses=clauses
                )
                listed: tuple[RequestRow, ...] | None = None
                if rows:
                    listed = self.reader().requests(now=now, window=window, clauses=clauses)
        except (DatabaseError, ValueError) as exc:
            self.host.post_message(LoadFailed(str(exc), snapshot=True))
            return
        if listed is not None:
            self.host.post_message(RequestsLoaded(listed))
        self.host.post_message(SnapshotLoaded(snap))

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

    def watch(self) -> None:
        """Post DataChanged whenever a database file or its WAL is written (a worker for the
        host's lifetime; Textual cancels it when the host goes)."""
        self.host.run_worker(watch_files(self.host, self.paths), group=WATCH_GROUP, exclusive=True)

    def close(self) -> None:
        if self._reader is not None:
            with self.lock:
                self._reader.close()


async def watch_files(host: DOMNode, paths: Sequence[Path]) -> None:
    """watchfiles' async watcher: a committed row shows within the debounce (~0.1 s) plus one
    read, with no polling of SQLite. Its native wait runs in a thread that checks for
    cancellation every `rust_timeout` ms, so quitting never waits longer than that."""
    from watchfiles import awatch

    files = {str(p.resolve()) for d in paths for p in (d, Path(f"{d}-wal"))}
    dirs = sorted({str(d.resolve().parent) for d in paths})
    try:
        async for _changes in awatch(
            *dirs,
            watch_filter=lambda _c, p: str(Path(p).resolve()) in files,
            debounce=100,
            step=50,
            recursive=False,
            rust_timeout=300,
            yield_on_timeout=False,
        ):
            host.post_message(DataChanged())
    except Exception as exc:  # no watcher: the periodic tick still refreshes
        host.post_message(LoadFailed(f"file watching stopped: {exc}"))
