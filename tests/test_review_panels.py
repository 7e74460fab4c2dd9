"""The dashboard's tasks and margin panels (tui/widgets/review_row.py), in the real app under
Pilot, against figures computed by hand from the fixture's own calls."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path
from typing import Any

import pytest
from llmtop.collector import record_outcome
from llmtop.store.filters import Clause
from llmtop.store.reader import Reader
from llmtop.store.views import Snapshot
from llmtop.tui.app import LlmtopApp
from llmtop.tui.widgets.margin_panel import MarginPanel
from llmtop.tui.widgets.review_row import ReviewRow
from llmtop.tui.widgets.tasks_panel import TasksPanel
from textual.app import App, ComposeResult
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Static

from tests.builders import payload, write
from tests.test_snapshots import SnapCompare, keys_then_settle
from tests.tui_fixtures import NOW, expected_cost, make_app, settle

MONTH0 = 1_793_491_200.0  # 2026-11-01 00:00 UTC, the month NOW (2026-11-18) is in
MONTH_END = 1_796_083_200.0  # 2026-12-01


def call(i: int, cid: str | None, feature: str, customer: str, **kw: Any) -> dict[str, Any]:
    spec: dict[str, Any] = dict(
        start=NOW - 1800 + i * 60,
        model="gpt-4o-mini",
        input_tokens=1000 + 100 * i,
        output_tokens=100 + 10 * i,
        cached=0,
        feature=feature,
        customer=customer,
    )
    if cid is not None:
        spec["correlation_id"] = cid
    spec.update(kw)
    return spec


#: Five tasks over two features, outcomes from each source, and calls outside any task.
SPECS: list[dict[str, Any]] = [
    # A (chat): a rate-limited try, then a success; the app records success.
    call(0, "A", "chat", "acme", status="failure", error_class="RateLimitError", error_code="429"),
    call(1, "A", "chat", "acme"),
    # B (chat): one call that worked, but the app records that the task failed.
    call(2, "B", "chat", "acme"),
    # C (summarize): the proxy's way: the final call tagged outcome=success.
    call(3, "C", "summarize", "globex", llmtop={"outcome": "success"}),
    # D (summarize): the last call failed, nothing recorded: inferred failure.
    call(4, "D", "summarize", "globex"),
    call(5, "D", "summarize", "globex", status="failure", error_class="Timeout", error_code="408"),
    # E (chat): one successful call, nothing recorded: inferred success.
    call(6, "E", "chat", "acme"),
    # not tasks: no correlation_id
    call(7, None, "chat", "acme"),
    call(8, None, "summarize", "initech"),
]


def cost(*idx: int) -> float:
    return sum(expected_cost(SPECS[i]) for i in idx)


@pytest.fixture
def tasks_db(llmtop_db: Path) -> Path:
    write(llmtop_db, [payload(**s) for s in SPECS])
    assert record_outcome("A", True) and record_outcome("B", False)
    return llmtop_db


def plans(db: Path, text: str) -> None:
    (db.parent / "llmtop-rules.toml").write_text(text, encoding="utf-8")


def body(app: Any, selector: str) -> str:
    return str(app.screen.query_one(f"{selector} .panel-body", Static).render())


async def test_tasks_and_margin_equal_a_hand_computation(tasks_db: Path) -> None:
    acme_mtd = cost(0, 1, 2, 6, 7)
    # acme's plan puts its month to date at 75% (past the 60% warning); globex far below.
    plans(tasks_db, f'[plans]\nacme = {acme_mtd / 0.75!r}\nglobex = 1000\n"no-calls" = 20\n')
    app = make_app(tasks_db)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        row = app.screen.query_one(ReviewRow)
        assert row.has_class("-shown") and row.display
        board = app.screen.query_one(TasksPanel).board
        assert board is not None and (board.start, board.end) == (NOW - 3600, NOW)
        t = board.total
        # A ok (recorded), B failed (recorded), C ok (tagged), D failed (inferred), E ok
        assert (t.tasks, t.succeeded, t.failed, t.recorded, t.calls) == (5, 3, 2, 3, 7)
        spend = cost(0, 1, 2, 3, 4, 5, 6)
        assert t.spend == pytest.approx(spend, rel=1e-9)
        assert t.cost_per_success == pytest.approx(spend / 3, rel=1e-9)
        assert t.failed_spend == pytest.approx(cost(2, 4, 5), rel=1e-9)
        feats = {s.key: s for s in board.features}
        assert (feats["chat"].tasks, feats["chat"].succeeded) == (3, 2)
        assert feats["chat"].cost_per_success == pytest.approx(cost(0, 1, 2, 6) / 2, rel=1e-9)
        assert (feats["summarize"].tasks, feats["summarize"].succeeded) == (2, 1)
        text = body(app, "#tasks")
        assert "5 tasks · succeeded 60.0% · per successful task" in text
        assert "outcomes recorded 60%" in text and "chat" in text and "summarize" in text

        margins = app.screen.query_one(MarginPanel).board
        assert margins is not None and margins.month_start == MONTH0
        by = {m.customer: m for m in margins.customers}
        assert set(by) == {"acme", "globex", "no-calls"}  # plans only: initech has none
        assert by["acme"].month_to_date == pytest.approx(acme_mtd, rel=1e-9)
        assert by["acme"].share == pytest.approx(0.75, rel=1e-9)
        scale = (MONTH_END - MONTH0) / (NOW - MONTH0)
        assert by["acme"].projected == pytest.approx(acme_mtd * scale, rel=1e-9)
        assert by["globex"].month_to_date == pytest.approx(cost(3, 4, 5), rel=1e-9)
        assert by["no-calls"].month_to_date == 0.0
        assert [m.customer for m in margins.customers][0] == "acme"  # worst first
        text = body(app, "#margin")
        assert "3 customers with a plan · 1 past 60% of their plan" in text
        assert "acme" in text and "75%" in text


async def test_hidden_with_nothing_to_show(tasks_db: Path, llmtop_db: Path) -> None:
    """No plans: the margin panel is hidden; a window with no task hides the row."""
    app = make_app(tasks_db)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        row = app.screen.query_one(ReviewRow)
        assert row.display and app.screen.query_one(TasksPanel).display
        assert not app.screen.query_one(MarginPanel).display
        app.dashboard.filter_clauses = (Clause("customer", "=", "initech"),)
        await settle(app, pilot)
        board = app.screen.query_one(TasksPanel).board
        assert board is not None and board.total.tasks == 0 and board.clauses
        assert not row.has_class("-shown") and not row.display


async def test_follows_the_window_and_hides_on_a_short_terminal(tasks_db: Path) -> None:
    app = make_app(tasks_db)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        await pilot.press("1")  # 5m: no call at all
        await settle(app, pilot)
        board = app.screen.query_one(TasksPanel).board
        assert board is not None and board.end - board.start == 300
        await pilot.press("5")  # 7d: every task again
        await settle(app, pilot)
        board = app.screen.query_one(TasksPanel).board
        assert board is not None and board.end - board.start == 7 * 86400
        assert board.total.tasks == 5
        row = app.screen.query_one(ReviewRow)
        assert row.display
        await pilot.resize_terminal(80, 24)
        await settle(app, pilot)
        assert row.has_class("-shown") and not row.display  # the table keeps its rows


async def test_a_bad_rules_file_is_one_status_line(tasks_db: Path) -> None:
    plans(tasks_db, "[plans]\nacme = -5\n")
    app = make_app(tasks_db)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        status = str(app.screen.query_one("#status", Static).render())
        assert "tasks and margin:" in status and "llmtop-rules.toml:2" in status
        assert not app.screen.query_one(MarginPanel).display


async def test_quitting_never_waits_for_a_read(tasks_db: Path) -> None:
    """A read holding the row's connection (a month at 10M rows takes many seconds) must not
    hold up quitting: the row interrupts it and leaves the closing to it."""
    events: list[str] = []
    app = make_app(tasks_db)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        row = app.screen.query_one(ReviewRow)
        row.lock.acquire()  # a read in progress
        # Had quitting waited for it, the release below would come first (a failure, not a hang).
        watchdog = threading.Timer(20.0, lambda: (events.append("released"), row.lock.release()))
        watchdog.start()
    events.append("quit")
    watchdog.cancel()
    if events == ["quit"]:  # the watchdog did not fire: the lock is still the test's
        row.lock.release()
    assert events == ["quit"]


class RowHost(App[None]):
    """Just the review row, under a screen that carries a real snapshot as the dashboard does:
    the picture shows these two panels only, so other widgets' changes never redraw it."""

    CSS_PATH = Path(inspect.getfile(LlmtopApp)).parent / LlmtopApp.CSS_PATH

    def __init__(self, db: Path) -> None:
        super().__init__()
        self.db = db

    def get_default_screen(self) -> Screen[None]:
        return SnapshotScreen(self.db)


class SnapshotScreen(Screen[None]):
    snapshot: reactive[Snapshot | None] = reactive(None)

    def __init__(self, db: Path) -> None:
        super().__init__()
        self.db = db

    def compose(self) -> ComposeResult:
        yield ReviewRow([self.db], None, id="review")

    def on_mount(self) -> None:
        r = Reader(self.db, readonly=True)
        try:
            self.snapshot = r.snapshot(now=NOW, window=3600.0)
        finally:
            r.close()


def test_snapshot_with_tasks_and_plans(snap_compare: SnapCompare, tasks_db: Path) -> None:
    plans(tasks_db, '[plans]\nacme = 0.0015\nglobex = 0.0005\n"no-calls" = 20\n"cust-4" = 9\n')
    assert snap_compare(RowHost(tasks_db), terminal_size=(160, 12), run_before=keys_then_settle())
