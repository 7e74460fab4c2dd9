"""The dashboard's fast paths (issue 22, and #18's live PostgreSQL): what wakes a read, what a key
paints before its read ends, and that the faster paths show the same screen.

Behaviour only: reads are held back by taking the reader's lock, never by timing; the periodic
refresh is pushed out of reach so a row can only arrive through the watcher under test.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from llmtop.store.filters import Clause
from llmtop.store.views import GroupRow
from llmtop.tui import reading
from llmtop.tui.app import LlmtopApp
from llmtop.tui.screens import dashboard
from llmtop.tui.widgets.cell import cursor_key
from llmtop.tui.widgets.top_table import TopTable
from textual.app import App, ComposeResult
from textual.screen import Screen

from tests.builders import payload, write
from tests.tui_fixtures import NOW, build, make_app, settle

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 5 s refresh out of reach: only the watcher can bring a new row."""
    monkeypatch.setattr(dashboard, "TICK_SECONDS", 3600.0)


async def wait_until(pilot: Any, ok: Any, ceiling: float = 30.0) -> None:
    deadline = time.monotonic() + ceiling
    while not ok() and time.monotonic() < deadline:
        await pilot.pause(0.05)


def window_of(app: LlmtopApp) -> float:
    snap = app.dashboard.snapshot
    assert snap is not None
    return snap.end - snap.start


async def test_a_commit_wakes_the_file_watcher(llmtop_db: Path, no_tick: None) -> None:
    before = reading.file_state([llmtop_db])
    write(llmtop_db, [payload(start=NOW - 5, feature="watched")])
    assert reading.file_state([llmtop_db]) != before

    app = make_app(llmtop_db, watch=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        assert "fresh" not in app.query_one(TopTable).groups
        write(llmtop_db, [payload(start=NOW - 4, feature="fresh")])
        await wait_until(pilot, lambda: "fresh" in app.query_one(TopTable).groups)
        assert "fresh" in app.query_one(TopTable).groups


def record_frames(monkeypatch: pytest.MonkeyPatch, app: LlmtopApp) -> list[bool]:
    """For each frame the screen draws: whether the dashboard had a snapshot to draw."""
    frames: list[bool] = []
    draw = Screen._compositor_refresh

    def drawn(screen: Screen[Any]) -> None:
        draw(screen)
        frames.append(app.dashboard.snapshot is not None)

    monkeypatch.setattr(Screen, "_compositor_refresh", drawn)
    return frames


async def test_the_first_frame_is_drawn_with_data(
    llmtop_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Room enough for any machine's read of the fixture: the screen waits for it (settle).
    monkeypatch.setattr(reading, "FIRST_READ_WAIT", 60.0)
    app = make_app(llmtop_db)
    frames = record_frames(monkeypatch, app)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        assert frames and all(frames), frames  # no empty screen before the data


async def test_a_slow_first_read_paints_the_empty_screen_first(
    llmtop_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "FIRST_READ_WAIT", 0.05)
    app = make_app(llmtop_db)
    frames = record_frames(monkeypatch, app)
    reads = app.dashboard.reads
    reads.lock.acquire()  # the first read waits for as long as the test holds it
    held = True
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_until(pilot, lambda: bool(frames))
            assert frames and not any(frames)  # drawn without waiting for the read
            assert "reading" in str(app.query_one("#topbar").render())
            reads.lock.release()
            held = False
            await settle(app, pilot)
            assert app.dashboard.snapshot is not None and frames[-1]
    finally:
        if held:
            reads.lock.release()


async def test_a_key_paints_a_view_seen_before_while_its_read_waits(llmtop_db: Path) -> None:
    clock = {"now": NOW}
    app = make_app(llmtop_db, clock=lambda: clock["now"])
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        hour = app.dashboard.snapshot
        await pilot.press("1")
        await settle(app, pilot)
        assert window_of(app) == 300
        reads = app.dashboard.reads
        clock["now"] += 1  # the read after the key answers a later instant than the one kept
        with reads.lock:  # every read now waits
            await pilot.press("2")
            await pilot.pause()
            # The 1h view is on screen from memory, its read still waiting on the lock.
            assert app.dashboard.snapshot is hour
            assert reads.loading
            assert "reading" not in str(app.query_one("#topbar").render())
        await settle(app, pilot)
        assert window_of(app) == 3600
        assert app.dashboard.snapshot.now == NOW + 1  # refined by the read
        assert app.dashboard.snapshot.totals.requests == hour.totals.requests


async def test_other_windows_are_read_ahead_and_a_left_view_is_not_shown(
    llmtop_db: Path,
) -> None:
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        reads = app.dashboard.reads
        await wait_until(pilot, lambda: reads.snapshots and not (reads.loading or reads.ahead))
        assert {k[0] for k in reads.snapshots} == {300, 3600, 21600, 86400, 604800, 2592000}
        with reads.lock:
            await pilot.press("6")  # never shown, read ahead: painted from memory
            await pilot.pause()
            assert window_of(app) == 30 * 86400
            await pilot.press("4")
            await pilot.pause()
            assert window_of(app) == 86400
        await settle(app, pilot)
        # The 30d read that was running when the user moved on never replaced the 24h screen.
        assert window_of(app) == 86400


async def test_a_drill_and_a_regrouping_paint_from_memory_once_read_ahead(
    llmtop_db: Path,
) -> None:
    """Idle, the dashboard reads ahead the drills into the two biggest spenders and the other
    groupings; moving the cursor to another row reads its drill next. Each key then paints from
    memory while its own read still waits (held back by the reader's lock)."""
    build(llmtop_db)
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        d, reads = app.dashboard, app.dashboard.reads
        idle = lambda: reads.snapshots and not (reads.loading or reads.ahead)  # noqa: E731
        await wait_until(pilot, idle)
        hour = [k for k in reads.snapshots if k[0] == 3600]
        assert (3600, "model", ()) in hour and (3600, "customer", ()) in hour
        table = app.query_one(TopTable)
        assert table.row_count == 3  # chat, summarize, classify
        await pilot.press("down", "down")  # the smallest spender: not read ahead so far
        third = table.groups[cursor_key(table) or ""].key
        drill_key = (3600, "model", (Clause("feature", "=", third),))
        assert drill_key not in reads.snapshots
        await wait_until(pilot, lambda: drill_key in reads.snapshots and not reads.loading)
        with reads.lock:
            await pilot.press("enter")
            await pilot.pause()
            assert d.snapshot.clauses == (Clause("feature", "=", third),)
            assert d.snapshot.group_by == "model" and reads.loading  # its read still waits
        await settle(app, pilot)
        await pilot.press("escape")
        await settle(app, pilot)
        await wait_until(pilot, idle)
        with reads.lock:
            await pilot.press("g")
            await pilot.pause()
            picker: Any = app.screen
            step = picker.dimensions.index("customer") - picker.dimensions.index("feature")
            await pilot.press(*(["down"] * step), "enter")
            await pilot.pause()
            assert d.snapshot.group_by == "customer" and d.snapshot.clauses == ()
            assert reads.loading
        await settle(app, pilot)
        assert d.snapshot.group_by == "customer"


async def test_an_alert_pass_waits_for_the_new_rows_frame(llmtop_db: Path) -> None:
    app = make_app(llmtop_db, alerts=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        d = app.dashboard
        await wait_until(pilot, lambda: not d.alerts.busy and d.alerts.last_pass > 0)
        d.alerts.last_pass = 1.0  # long ago: new rows may ask for a pass at once
        with d.reads.lock:
            d.post_message(reading.DataChanged())
            await pilot.pause()
            assert d.reads.loading and not d.alerts.busy  # the read first, alone
        await settle(app, pilot)
        assert d.alerts.last_pass > 1.0  # and the pass right after its frame


class Tables(App[None]):
    """Two top tables: one updated step by step (its caches warm), one shown the end at once."""

    def compose(self) -> ComposeResult:
        yield TopTable(id="stepped")
        yield TopTable(id="direct")


def group(key: str, spend: float, requests: int) -> GroupRow:
    return GroupRow(
        key=key,
        spend=spend,
        share=spend / 10,
        delta=None,
        requests=requests,
        cost_per_request=spend / requests,
        cost_per_1k=1000 * spend / requests,
        tokens_per_request=100.0,
        cache_hit=0.0,
        retry=0.0,
        error=0.0,
        p95_latency_ms=250.0,
        unpriced=0,
    )


async def test_a_table_updated_in_place_draws_what_a_fresh_one_draws() -> None:
    """The cell and row-line caches (tui/widgets/cell.CellTable) never leave a stale cell."""
    steps = [
        [group("a", 3.0, 10), group("b", 2.0, 5), group("c", 1.0, 4)],
        [group("a", 3.5, 11), group("b", 2.0, 5), group("c", 4.0, 9)],  # c jumps to the top
        [group("b", 2.25, 6), group("c", 4.0, 9), group("d", 0.5, 1)],  # a leaves, d comes
    ]
    app = Tables()
    async with app.run_test(size=(160, 24)) as pilot:
        stepped = app.query_one("#stepped", TopTable)
        for s in steps:
            stepped.show(tuple(s))
            await pilot.pause()
        direct = app.query_one("#direct", TopTable)
        direct.show(tuple(steps[-1]))
        await pilot.pause()

        def text(t: TopTable) -> list[str]:
            width = t.size.width
            return [t.render_line(y).text for y in range(t.row_count + 1)] if width else []

        assert text(stepped)[1:] == text(direct)[1:]
        assert [stepped.get_row_at(i)[0].plain for i in range(3)] == ["c", "b", "d"]


def test_the_trace_is_off_unless_asked(tmp_path: Path) -> None:
    out = tmp_path / "trace.jsonl"
    code = "from llmtop.tui import reading; reading.trace('watch');print(reading.TRACE_PATH)"
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert off.stdout.strip() == "None" and not out.exists()
    env = {"LLMTOP_TRACE_LATENCY": str(out), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    assert '"e": "watch"' in out.read_text()


async def test_postgres_rows_from_another_process_arrive_through_listen(
    pg_url: str, tmp_path: Path, no_tick: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer in another process commits (NOTIFY llmtop); the running dashboard, LISTENing,
    reads and shows the rows. There is no file to watch and no tick within reach."""
    from llmtop.store.reader import Reader

    Reader(pg_url).close()  # the schema, as a collector's first batch would leave it
    monkeypatch.setenv("LLMTOP_STATE", str(tmp_path / "ui.json"))
    app = LlmtopApp(pg_url, window="24h", alerts=False, watch=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        assert app.dashboard.snapshot.totals.requests == 0
        reads = app.dashboard.reads
        # The watcher's LISTEN connection is up (a notification before it would be lost).
        await wait_until(pilot, lambda: getattr(reads._reader, "_listen", None) is not None)
        proc = subprocess.run(
            [sys.executable, "-m", "tests.pg_fleet", pg_url, "far", "7"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.stdout.split()[:2] == ["7", "0"], proc.stdout + proc.stderr
        await wait_until(pilot, lambda: app.dashboard.snapshot.totals.requests == 7)
        assert app.dashboard.snapshot.totals.requests == 7
