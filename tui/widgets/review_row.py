"""The review row: tasks and cost per successful task, and margin per customer, live.

Why a row with reads of its own: tasks come from raw rows grouped by correlation_id (no rollup
can hold a task), which costs seconds for a long window at 10M rows, so they are not read on
every refresh. The row follows the screen's snapshot (its window, range and filter) and reads
again when those change, or when its figures are older than REFRESH seconds (longer after a
slow read: SLOW_FACTOR times what it took), in a thread worker on a connection of its own: a
long read never holds up the live refresh. Margins (the customer rollup cube, cheap) ride along.
Hidden while it has nothing to show (no task in the window, no `[plans]`).
"""

from __future__ import annotations

import threading
import time
from functools import partial
from pathlib import Path

from llmtop.store.boards import margin_board, task_board
from llmtop.store.filters import Clause
from llmtop.store.reader import MultiReader, Reader
from llmtop.store.views import MarginBoard, Snapshot, TaskBoard
from llmtop.tui.messages import LoadFailed
from llmtop.tui.widgets.margin_panel import MarginPanel
from llmtop.tui.widgets.tasks_panel import TasksPanel
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive

#: Seconds between reads while the window, range and filter stay the same.
REFRESH = 15.0
#: After a read that took s seconds, the next waits at least SLOW_FACTOR * s.
SLOW_FACTOR = 10.0


class ReviewRow(Horizontal):
    class Loaded(Message):
        """A read ended: its boards (None where it failed)."""

        bubble = False

        def __init__(self, tasks: TaskBoard | None, margins: MarginBoard | None) -> None:
            super().__init__()
            self.tasks = tasks
            self.margins = margins

    tasks: reactive[TaskBoard | None] = reactive(None)
    margins: reactive[MarginBoard | None] = reactive(None)

    def __init__(
        self, db_paths: list[Path], rules_path: Path | None, *, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.db_paths = list(db_paths)
        self.rules_path = rules_path
        self.lock = threading.Lock()
        self._reader: Reader | MultiReader | None = None
        self._busy = False
        self._again: Snapshot | None = None
        self._read_at = 0.0  # time.monotonic() when the last read started
        self._seconds = 0.0  # how long it took
        self._closing = False

    def compose(self) -> ComposeResult:
        yield TasksPanel(id="tasks")
        yield MarginPanel(id="margin")

    def on_mount(self) -> None:
        self.watch(self.screen, "snapshot", self.follow, init=True)

    def on_unmount(self) -> None:
        """Never wait for a read (a month at 10M rows takes many seconds): interrupt it, and
        whoever holds the connection last closes it."""
        self._closing = True
        reader = self._reader
        if reader is not None and self._busy:
            for r in reader.readers if isinstance(reader, MultiReader) else [reader]:
                r.interrupt()  # returns at once (PostgreSQL cancels from a thread of its own)
        if self.lock.acquire(blocking=False):
            try:
                self._close()
            finally:
                self.lock.release()

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # --- when to read ---------------------------------------------------------------------------
    def due(self, snap: Snapshot) -> bool:
        """Whether `snap` asks for figures other than the last read's."""
        last = self.tasks
        age = time.monotonic() - self._read_at
        if last is None:  # none yet, or the last read failed: try again, but not on every refresh
            return self._read_at == 0.0 or age >= REFRESH
        if (snap.end - snap.start, snap.clauses) != (last.end - last.start, last.clauses):
            return True  # another window or filter
        if not 0.0 <= snap.end - last.end <= age + 5.0:
            return True  # a jump: a custom range, or back to live from one
        return snap.end != last.end and age >= max(REFRESH, SLOW_FACTOR * self._seconds)

    def follow(self, snap: Snapshot | None) -> None:
        if snap is None or not self.due(snap):
            return
        if self._busy:
            self._again = snap
            return
        self._busy, self._again = True, None
        self._read_at = time.monotonic()
        self.run_worker(
            partial(self._read, snap.start, snap.end, snap.clauses, snap.now),
            thread=True,
            group="review",
        )

    # --- the read (a worker thread) -------------------------------------------------------------
    def _open(self) -> Reader | MultiReader:
        if self._reader is None:
            if len(self.db_paths) > 1:
                self._reader = MultiReader(self.db_paths)
            else:
                self._reader = Reader(self.db_paths[0], readonly=True)
        return self._reader

    def _read(self, start: float, end: float, clauses: tuple[Clause, ...], now: float) -> None:
        from llmtop.alerts.budgets import period_bounds
        from llmtop.alerts.rules import default_rules_path, load_rules

        tasks: TaskBoard | None = None
        margins: MarginBoard | None = None
        try:
            with self.lock:
                try:
                    reader = self._open()
                    tasks = task_board(reader, start, end, clauses)
                    rules = load_rules(self.rules_path or default_rules_path(self.db_paths[0]))
                    margins = margin_board(
                        reader,
                        rules.plans,
                        period_bounds(now, "month"),
                        now,
                        share_pct=rules.margin.share_pct,
                        critical_pct=rules.margin.critical_pct,
                    )
                finally:
                    if self._closing:  # unmounted meanwhile: this read holds the last use
                        self._close()
        except Exception as exc:  # a bad rules file or a read error: said, never fatal
            if self._closing:
                return
            self.post_message(LoadFailed(f"tasks and margin: {exc}"))
        self.post_message(self.Loaded(tasks, margins))

    # --- handlers assign reactives; watchers render ---------------------------------------------
    def on_review_row_loaded(self, message: Loaded) -> None:
        self._busy = False
        if message.tasks is not None:
            self._seconds = message.tasks.seconds
        self.tasks = message.tasks
        self.margins = message.margins
        if self._again is not None:
            self.follow(self._again)

    def watch_tasks(self, board: TaskBoard | None) -> None:
        panel = self.query_one(TasksPanel)
        panel.display = board is not None and board.total.tasks > 0
        panel.board = board
        self._show()

    def watch_margins(self, board: MarginBoard | None) -> None:
        panel = self.query_one(MarginPanel)
        panel.display = board is not None and bool(board.customers)
        panel.board = board
        self._show()

    def _show(self) -> None:
        shown = self.query_one(TasksPanel).display or self.query_one(MarginPanel).display
        self.set_class(shown, "-shown")  # a class, so a short terminal's rule can still hide it
