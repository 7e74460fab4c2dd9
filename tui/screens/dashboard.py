"""The dashboard: panels, alerts, the drill-down table, and the keys that move around them.

Data flow: a worker thread reads a Snapshot (tui/reading.py) and posts SnapshotLoaded; the
handler only assigns a reactive; widgets render in their watch methods. The file watcher posts
DataChanged when the database is written; a slow timer keeps sliding windows moving when
nothing is. Alert passes are scheduled by tui/alerting.py; the alerts panel posts AckRequested,
SnoozeRequested and JumpRequested, handled in dashboard_alerts.py (a mixin of this screen).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmtop.store.filters import (
    WINDOWS,
    Clause,
    parse_filter,
    parse_window,
)
from llmtop.store.views import Snapshot
from llmtop.tui import bars
from llmtop.tui.alerting import AlertScheduler
from llmtop.tui.messages import (
    DataChanged,
    DetailLoaded,
    ExportWritten,
    LoadFailed,
    RequestsLoaded,
    SnapshotLoaded,
)
from llmtop.tui.navigation import View, drill_view, likely_views, read_key
from llmtop.tui.reading import FIRST_READ_WAIT, DashboardReads, ViewKey
from llmtop.tui.screens.dashboard_alerts import AlertHandlers
from llmtop.tui.triage import BaselineLoaded, TableTriage
from llmtop.tui.widgets.alerts_panel import AlertsPanel
from llmtop.tui.widgets.burn_panel import BurnPanel
from llmtop.tui.widgets.cache_panel import CachePanel
from llmtop.tui.widgets.cell import cursor_key
from llmtop.tui.widgets.errors_panel import ErrorsPanel
from llmtop.tui.widgets.requests_table import RequestsTable, parse_row_key
from llmtop.tui.widgets.review_row import ReviewRow
from llmtop.tui.widgets.tokens_panel import TokensPanel
from llmtop.tui.widgets.top_table import TopTable
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Static

WINDOW_KEYS: tuple[str, ...] = ("5m", "1h", "6h", "24h", "7d", "30d")
TICK_SECONDS = 5.0
#: The `d` comparison: the same window a week before (tui.triage).
WEEK = 7 * 86400.0
ALERT_SECONDS = 10.0
ALERT_MIN_GAP = 2.0
#: After the first snapshot, the heap is frozen this much later: after its frame (at 10M rows
#: drawn ~0.15 s after the snapshot arrives), before the read-ahead (reading.AHEAD_AFTER). Run
#: with call_after_refresh, the collection came before the frame and delayed it by ~30 ms.
FREEZE_AFTER = 0.25


def freeze_heap() -> None:
    """Once, after the first screen: what exists by now (modules, widgets, the first view's
    trackers) lives as long as the app, so the garbage collector stops scanning it. At 10M rows
    a full collection of that heap took 64 ms (median; 112 max, 24 in a minute of keys), in
    whichever thread ran it, and the GIL held the paint for as long: most of key → painted's
    p95 outliers (benchmarks/latency.py). Cyclic garbage made before this point and freed later
    waits until the screen unmounts (gc.unfreeze); nothing made after it is affected."""
    gc.collect()
    gc.freeze()


class DashboardScreen(AlertHandlers, Screen[None]):
    BINDINGS = [
        Binding("q", "app.quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("g", "group", "Group"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("p", "pause", "Pause"),
        Binding("w", "custom_window", "Window"),
        Binding("l", "list_requests", "Requests"),
        Binding("a", "alerts", "Alerts"),
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("s", "sort", "Sort", show=False),
        Binding("S", "reverse_sort", "Reverse sort", show=False),
        Binding("r", "reload", "Reload", show=False),
        Binding("e", "export", "Export", show=False),
        Binding("y", "copy_id", "Copy id", show=False),
        Binding("c", "chart", "Chart", show=False),
        Binding("d", "compare", "Δ prev/week", show=False),
        *(
            Binding(str(i + 1), f"window('{w}')", f"{w}", show=False)
            for i, w in enumerate(WINDOW_KEYS)
        ),
    ]

    # repaint=False: the watchers update the widgets that show each value, and those repaint
    # themselves; a screen repaint would render every widget again (~100 ms a snapshot).
    snapshot: reactive[Snapshot | None] = reactive(None, repaint=False)
    view: reactive[View] = reactive(View, init=False, repaint=False)
    window: reactive[float] = reactive(3600.0, init=False, repaint=False)
    range_end: reactive[float | None] = reactive(None, init=False, repaint=False)
    paused_at: reactive[float | None] = reactive(None, init=False, repaint=False)
    filter_clauses: reactive[tuple[Clause, ...]] = reactive((), init=False, repaint=False)
    error: reactive[str | None] = reactive(None, repaint=False)
    alert_states: reactive[list[Any]] = reactive(list, repaint=False)

    def __init__(
        self,
        db_paths: list[Path],
        *,
        window: str | None,
        clock: Callable[[], float],
        watch: bool,
        alerts: bool,
        rules_path: Path | None,
    ) -> None:
        super().__init__()
        self.db_path = db_paths[0]
        #: Several files (hosts, services) merge into one read-only view with a `source` dimension.
        self.db_paths = db_paths
        self.clock = clock
        self.watch_files = watch
        #: Alert state lives in a database, and a merged view writes none.
        self.alerts_enabled = alerts and len(db_paths) == 1
        self.reads = DashboardReads(
            self,
            db_paths,
            now=self.now,
            live=lambda: self.range_end is None and self.paused_at is None,
            likely=self.likely_views,
        )
        #: New rows asked for an alert pass; it starts once their snapshot is painted.
        self._alerts_due = False
        self.alerts = AlertScheduler(
            self,
            self.db_path,
            rules_path,
            clock=clock,
        )
        #: Holds the app's frames back until the first snapshot is shown (on_mount).
        self._first_frame = ExitStack()
        self._history: list[View] = []
        #: Beside each view in _history: the row the cursor was on and the sort, for `esc`.
        self._marks: list[tuple[str | None, str, bool]] = []
        #: Prompts, export, copy, chart, compare and the preferences kept per database.
        self.triage = TableTriage(self)
        kept = self.triage.remembered()
        self.set_reactive(DashboardScreen.window, parse_window(window or kept.get("window", "1h")))
        self.set_reactive(DashboardScreen.view, View(group_by=kept.get("group_by", "feature")))
        self.kept_sort = (kept.get("sort", "spend"), kept.get("reverse", True))

    # --- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        with Grid(id="panels"):
            yield BurnPanel(id="burn")
            yield CachePanel(id="cache")
            yield ErrorsPanel(id="errors")
            yield TokensPanel(id="tokens")
        yield ReviewRow(self.db_paths, self.alerts.rules_path, id="review")
        yield AlertsPanel(id="alerts")
        yield Static(id="crumbs")
        with ContentSwitcher(initial="groups", id="tables"):
            yield TopTable(id="groups")
            yield RequestsTable(id="requests")
        yield Static(id="status")
        yield Footer()

    async def on_mount(self) -> None:
        self.render_topbar()
        self.render_crumbs()
        self.query_one(TopTable).set_dimension(self.view.group_by)
        self.query_one(TopTable).set_sort(*self.kept_sort)
        self.query_one(TopTable).focus()
        self.refresh_data()
        self.set_interval(TICK_SECONDS, self.tick)
        if self.alerts_enabled:
            # The first evaluation waits for the first screen (on_snapshot_loaded): both read
            # the same file on two cores' worth of threads, and the dashboard comes first.
            self.set_interval(ALERT_SECONDS, self.alerts.evaluate)
        if self.watch_files:
            self.reads.watch()
        # The first frame is drawn with data when the read is quick (DashboardReads.settle):
        # no frame until the first snapshot is on the widgets (a batch, ended in `first_shown`),
        # and this screen's messages (the resize's layouts) wait for the read.
        self._first_frame.enter_context(self.app.batch_update())
        if not await self.reads.settle():
            self.first_shown()  # a slow read: the empty screen and "reading…" meanwhile
        else:  # its snapshot is on the way (on_snapshot_loaded); frames again in any case
            self.set_timer(FIRST_READ_WAIT, self.first_shown)

    def first_shown(self) -> None:
        """The first snapshot is on the widgets, its read failed, or it is slow: frames again."""
        self._first_frame.close()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 120, "-narrow")
        self.set_class(self.size.height < 34, "-short")

    def on_unmount(self) -> None:
        self.first_shown()
        self.reads.close()
        self.alerts.close()
        # What freeze_heap froze may be garbage once the screen is gone (an app run again in the
        # same process, as tests and benchmarks do): collectable again.
        gc.unfreeze()

    # --- reading --------------------------------------------------------------------------------
    def now(self) -> float:
        if self.paused_at is not None:
            return self.paused_at
        if self.range_end is not None:
            return self.range_end
        return self.clock()

    def tick(self) -> None:
        """The timer and the file watcher: while paused the screen stays as it is."""
        if self.paused_at is None:
            self.refresh_data()

    def refresh_data(self) -> None:
        """Read again (at most one read at a time: see DashboardReads.start). While paused,
        a drill, filter, grouping or window change reads at the paused instant (`now`), so
        every panel and row on screen is for the one range the top bar names."""
        v = self.view
        self.reads.start(
            self.now(), self.window, v.group_by, v.clauses(self.filter_clauses), v.requests
        )

    def _read_done(self, snap: Snapshot | None = None, ahead: bool = False) -> None:
        if self.reads.done(snap, ahead):
            self.refresh_data()

    def shows(self, snap: Snapshot) -> bool:
        """Whether `snap` answers the view on screen (not one the user has already left)."""
        v = self.view
        return (
            snap.group_by == v.group_by
            and tuple(snap.clauses) == v.clauses(self.filter_clauses)
            and abs(snap.end - snap.start - self.window) < 1
        )

    # --- message handlers: assign reactives only --------------------------------------------------
    def on_snapshot_loaded(self, message: SnapshotLoaded) -> None:
        snap = message.snapshot
        if not message.cached:
            self._read_done(snap, message.ahead)
        if message.ahead or not self.shows(snap):
            self.first_shown()  # the view changed meanwhile: its own snapshot is on the way
            return
        first = self.snapshot is None
        self.error = None
        self.snapshot = snap
        self.triage.snapshot_loaded(snap)
        self.reads.shown(snap)
        if first:
            self.first_shown()
            self.set_timer(FREEZE_AFTER, freeze_heap)
        # Alert passes start after the frame: a pass beside a read halves it (one GIL).
        if not self.alerts_enabled or message.cached:
            return
        gap = time.monotonic() - self.alerts.last_pass >= ALERT_MIN_GAP
        if (first and not self.alerts.last_pass) or (self._alerts_due and gap):
            self._alerts_due = False
            self.call_after_refresh(self.alerts.evaluate)

    def on_requests_loaded(self, message: RequestsLoaded) -> None:
        self.query_one(RequestsTable).show(message.rows)

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        from llmtop.tui.screens.detail import DetailScreen

        if message.detail is not None:
            self.app.push_screen(DetailScreen(message.detail))

    def on_export_written(self, message: ExportWritten) -> None:
        self.triage.export_written(message)

    def on_load_failed(self, message: LoadFailed) -> None:
        self.error = message.error
        if self.is_mounted:
            self.render_topbar()  # the numbers on screen are getting older: it says so
        self.first_shown()
        if message.snapshot:
            self._read_done()

    def on_baseline_loaded(self, message: BaselineLoaded) -> None:
        self.triage.baseline_loaded(message)

    def on_top_table_sort_changed(self, message: TopTable.SortChanged) -> None:
        self.triage.remember(sort=message.column, reverse=message.reverse)

    def on_data_changed(self, _message: DataChanged) -> None:
        if self.range_end is None:
            self.tick()
            # New rows can start an incident: judge them right after their snapshot is painted
            # rather than at the next tick, not more often than every ALERT_MIN_GAP seconds.
            self._alerts_due = True

    def jump(self, filter_text: str, group_by: str) -> None:
        """From an alert straight to the drill-down that explains it."""
        try:
            clauses = parse_filter(filter_text)
        except ValueError:
            clauses = ()
        self.filter_clauses = ()
        self.go(View(path=clauses, group_by=group_by))
        self.query_one(TopTable).focus()

    # --- watchers: render ------------------------------------------------------------------------
    def watch_snapshot(self, snap: Snapshot | None) -> None:
        if snap is None:
            return
        live = self.range_end is None and self.paused_at is None
        self.query_one(BurnPanel).at = None if live else snap.end
        for panel in ("#burn", "#cache", "#errors", "#tokens"):
            self.query_one(panel).snapshot = snap  # type: ignore[attr-defined]
        first = snap.first_row
        self.query_one(TopTable).show(
            snap.groups,
            # The compared window whole: one the file covers only in part (a 24h window on a
            # 34h-old file) showed +300% on every row.
            {
                "prev": first is not None and first <= snap.start - (snap.end - snap.start),
                "week": first is not None and first <= snap.start - WEEK,
            },
        )
        self.render_crumbs()
        self.render_status()
        self.render_topbar()

    def watch_view(self, old: View, new: View) -> None:
        if not self.is_mounted:
            return
        self.query_one(TopTable).set_dimension(new.group_by)
        switcher = self.query_one(ContentSwitcher)
        if new.requests and new != old:
            # Rows listed for another view, or minutes ago, are not shown under a live bar
            # while this view's are read.
            self.query_one(RequestsTable).show(())
        switcher.current = "requests" if new.requests else "groups"
        (self.query_one(RequestsTable) if new.requests else self.query_one(TopTable)).focus()
        self.render_crumbs()
        self.refresh_data()

    def watch_window(self) -> None:
        if self.is_mounted:
            self.render_topbar()
            self.refresh_data()

    def watch_range_end(self) -> None:
        self.watch_window()

    def watch_filter_clauses(self) -> None:
        if self.is_mounted:
            self.render_crumbs()
            self.refresh_data()

    def watch_paused_at(self) -> None:
        if self.is_mounted:
            self.render_topbar()
            self.refresh_data()

    def watch_error(self) -> None:
        if self.is_mounted:
            self.render_status()

    def watch_alert_states(self, states: list[Any]) -> None:
        if self.is_mounted:
            self.query_one(AlertsPanel).states = states

    def render_topbar(self) -> None:
        text = bars.topbar(
            self.db_paths, self.window, self.range_end, self.paused_at, self.now(), self.snapshot
        )
        bars.put(self.query_one("#topbar", Static), text)

    def render_crumbs(self) -> None:
        v = self.view
        text = bars.crumbs(v.path, v.group_by, v.requests, self.filter_clauses, self.snapshot)
        bars.put(self.query_one("#crumbs", Static), text)

    def render_status(self) -> None:
        bars.put(self.query_one("#status", Static), bars.status(self.error, self.snapshot))

    # --- actions ---------------------------------------------------------------------------------
    def go(self, view: View) -> None:
        t = self.query_one(TopTable)
        self._history.append(self.view)
        self._marks.append((cursor_key(t), t.sort_column, t.sort_reverse))
        self.view = view

    def regroup(self, dim: str) -> None:
        self.go(View(path=self.view.path, group_by=dim))

    def likely_views(self, snap: Snapshot) -> list[ViewKey]:
        """DashboardReads' guesses (tui/navigation.py), for the view and cursor on screen."""
        if not self.shows(snap):
            return []
        table = self.query_one(TopTable)
        under = table.groups.get(cursor_key(table) or "")
        dims = self.triage.known_dimensions(snap)
        return likely_views(
            self.view, self.filter_clauses, self.window, snap, under and under.key, dims
        )

    @on(TopTable.RowSelected, "#groups")
    def drill(self, event: TopTable.RowSelected) -> None:
        g = self.query_one(TopTable).groups.get(event.row_key.value or "")
        if g is not None:
            self.go(drill_view(self.view, self.filter_clauses, g.key))

    @on(TopTable.RowHighlighted, "#groups")
    def cursor_moved(self, event: TopTable.RowHighlighted) -> None:
        """Read the drill under the cursor ahead of `enter` (see DashboardReads.prefer)."""
        g = self.query_one(TopTable).groups.get(event.row_key.value or "")
        if g is not None and not self.view.requests:
            drill = drill_view(self.view, self.filter_clauses, g.key)
            self.reads.prefer(read_key(drill, self.filter_clauses, self.window))

    @on(RequestsTable.RowSelected, "#requests")
    def open_request(self, event: RequestsTable.RowSelected) -> None:
        if event.row_key.value:
            source, row_id = parse_row_key(event.row_key.value)
            self.reads.detail(row_id, source)

    def action_back(self) -> None:
        """Up one level, with the cursor back on the row drilled into and the sort as it was."""
        if self._history:
            row, column, reverse = self._marks.pop()
            self.view = self._history.pop()
            t = self.query_one(TopTable)
            t.set_sort(column, reverse)
            t.pending_cursor = row

    def action_list_requests(self) -> None:
        if not self.view.requests:
            self.go(replace(self.view, requests=True))

    def action_window(self, name: str) -> None:
        self.range_end = None
        self.window = WINDOWS[name]
        self.triage.remember(window=name)

    def action_pause(self) -> None:
        self.paused_at = None if self.paused_at is not None else self.clock()

    def action_reload(self) -> None:
        self.alerts.reload_rules()
        self.refresh_data()

    def action_sort(self) -> None:
        self.query_one(TopTable).cycle_sort()

    def action_reverse_sort(self) -> None:
        t = self.query_one(TopTable)
        t.sort_by(t.sort_column)

    def action_help(self) -> None:
        from llmtop.tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen())

    def action_group(self) -> None:
        self.triage.group_picker()

    def action_filter(self) -> None:
        self.triage.filter_prompt()

    def action_custom_window(self) -> None:
        self.triage.window_prompt()

    def action_export(self) -> None:
        self.triage.export_prompt()

    def action_copy_id(self) -> None:
        self.triage.copy_id()

    def action_chart(self) -> None:
        self.triage.chart()

    def action_compare(self) -> None:
        self.triage.toggle_compare()

    def action_alerts(self) -> None:
        self.query_one(AlertsPanel).focus_list()
