"""The llmtop Textual app.

Data flow: a worker thread reads a Snapshot through llmtop.store.queries and posts SnapshotLoaded;
the handler only assigns a reactive; widgets render in their watch methods. watchfiles tells us
when the database or its WAL changed, so a committed row shows within the debounce (~0.1 s) plus
one read, with no polling of SQLite; a slow timer keeps sliding windows moving when nothing is
written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from llmtop.pricing import cache_read_saving
from llmtop.store.alert_state import AlertStore
from llmtop.store.db import DatabaseError
from llmtop.store.filters import (
    WINDOWS,
    Clause,
    format_filter,
    format_window,
    parse_filter,
    parse_window,
)
from llmtop.store.reader import MultiReader, Reader
from llmtop.store.views import RequestRow, Snapshot
from llmtop.tui import state
from llmtop.tui.format import clock, count, money, safe
from llmtop.tui.messages import (
    AlertPassEnded,
    AlertsEvaluated,
    AlertStateChanged,
    DataChanged,
    DetailLoaded,
    LoadFailed,
    RequestsLoaded,
    SnapshotLoaded,
)
from llmtop.tui.widgets.alerts_panel import AlertsPanel, group_states, related_text
from llmtop.tui.widgets.burn_panel import BurnPanel
from llmtop.tui.widgets.cache_panel import CachePanel
from llmtop.tui.widgets.errors_panel import ErrorsPanel
from llmtop.tui.widgets.requests_table import RequestsTable, parse_row_key
from llmtop.tui.widgets.tokens_panel import TokensPanel
from llmtop.tui.widgets.top_table import TopTable
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.reactive import reactive
from textual.widgets import ContentSwitcher, Footer, Static

DRILL_ORDER: tuple[str, ...] = ("feature", "model", "customer", "user")
WINDOW_KEYS: tuple[str, ...] = ("5m", "1h", "6h", "24h", "7d", "30d")
TICK_SECONDS = 5.0
ALERT_SECONDS = 10.0
ALERT_MIN_GAP = 2.0
#: Seconds of likely-cause analysis per alert pass before the rest wait for the next pass.
EXPLAIN_BUDGET = 3.0


@dataclass(frozen=True)
class View:
    """Where the user is: a drill path, a grouping, and whether requests are listed."""

    path: tuple[Clause, ...] = ()
    group_by: str = "feature"
    requests: bool = False


class LlmtopApp(App[None]):
    CSS_PATH = "llmtop.tcss"
    TITLE = "llmtop"

    BINDINGS = [
        Binding("q", "quit", "Quit"),
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
        *(
            Binding(str(i + 1), f"window('{w}')", f"{w}", show=False)
            for i, w in enumerate(WINDOW_KEYS)
        ),
    ]

    snapshot: reactive[Snapshot | None] = reactive(None)
    view: reactive[View] = reactive(View, init=False)
    window: reactive[float] = reactive(3600.0, init=False)
    range_end: reactive[float | None] = reactive(None, init=False)
    paused_at: reactive[float | None] = reactive(None, init=False)
    filter_clauses: reactive[tuple[Clause, ...]] = reactive((), init=False)
    error: reactive[str | None] = reactive(None)
    alert_states: reactive[list[Any]] = reactive(list)

    def __init__(
        self,
        db_path: str | Path,
        *,
        window: str = "1h",
        clock: Callable[[], float] = time.time,
        watch: bool = True,
        alerts: bool = True,
        rules_path: Path | None = None,
        exit_after: float | None = None,
        more_dbs: Sequence[str | Path] = (),
    ) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        #: Several files (hosts, services) merge into one read-only view with a `source` dimension.
        self.db_paths = [self.db_path, *(Path(p) for p in more_dbs)]
        if len(self.db_paths) > 1:
            alerts = False  # alert state lives in a database, and a merged view writes none
        self.clock = clock
        self.watch_files = watch
        self.alerts_enabled = alerts
        self.rules_path = rules_path
        self.exit_after = exit_after
        self._lock = threading.Lock()
        # Alerts read (and write alert state) on their own connection: a slow evaluation over a
        # big file must never hold up the dashboard's refresh.
        self._alert_lock = threading.Lock()
        self._alert_reader: Reader | None = None
        self._alert_store: AlertStore | None = None
        self._alert_cache: Any = None  # alerts.cache.AlertCache, imported with the first pass
        self._reader: Reader | MultiReader | None = None
        self._history: list[View] = []
        self._rules: Any = None
        self._last_alert_eval = 0.0
        self._alerts_busy = False
        self._alerts_again = False
        self._loading = False
        self._reload_pending = False
        self._stop_watching: threading.Event | None = None
        self.set_reactive(LlmtopApp.window, parse_window(window))
        remembered = state.load().get("group_by")
        if isinstance(remembered, str) and remembered:
            self.set_reactive(LlmtopApp.view, View(group_by=remembered))

    # --- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        with Grid(id="panels"):
            yield BurnPanel(id="burn")
            yield CachePanel(id="cache")
            yield ErrorsPanel(id="errors")
            yield TokensPanel(id="tokens")
        yield AlertsPanel(id="alerts")
        yield Static(id="crumbs")
        with ContentSwitcher(initial="groups", id="tables"):
            yield TopTable(id="groups")
            yield RequestsTable(id="requests")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.render_topbar()
        self.render_crumbs()
        self.query_one(TopTable).set_dimension(self.view.group_by)
        self.query_one(TopTable).focus()
        self.refresh_data()
        self.set_interval(TICK_SECONDS, self.refresh_data)
        if self.alerts_enabled:
            # The first evaluation waits for the first screen (on_snapshot_loaded): both read
            # the same file on two cores' worth of threads, and the dashboard comes first.
            self.set_interval(ALERT_SECONDS, self.evaluate_alerts)
        if self.watch_files:
            self.watch_database()
        if self.exit_after is not None:
            self.set_timer(self.exit_after, self.exit)

    def on_resize(self) -> None:
        self.set_class(self.size.width < 120, "-narrow")
        self.set_class(self.size.height < 34, "-short")

    # --- reading (workers) ----------------------------------------------------------------------
    def now(self) -> float:
        if self.paused_at is not None:
            return self.paused_at
        if self.range_end is not None:
            return self.range_end
        return self.clock()

    def reader(self) -> Reader | MultiReader:
        if self._reader is None:
            if len(self.db_paths) > 1:
                self._reader = MultiReader(self.db_paths, savings=cache_read_saving)
            else:
                self._reader = Reader(self.db_path, savings=cache_read_saving)
        return self._reader

    def alert_reader(self) -> Reader:
        if self._alert_reader is None:
            self._alert_reader = Reader(self.db_path)
        return self._alert_reader

    def refresh_data(self) -> None:
        """Read again, at most one read at a time.

        A read that is still running is never cancelled (its result would be thrown away, and a
        database slow enough to outlast the tick would never paint): the request is remembered and
        served with the latest view as soon as the running read posts its result.
        """
        if self.paused_at is not None and self.snapshot is not None:
            return
        if self._loading:
            self._reload_pending = True
            return
        self._loading = True
        self._reload_pending = False
        self.load_snapshot(self.now(), self.window, self.view, self.filter_clauses)

    def _read_done(self) -> None:
        self._loading = False
        if self._reload_pending:
            self.refresh_data()

    @work(thread=True, group="snapshot")
    def load_snapshot(
        self, now: float, window: float, view: View, filters: tuple[Clause, ...]
    ) -> None:
        clauses = (*filters, *view.path)
        try:
            with self._lock:
                snap = self.reader().snapshot(
                    now=now, window=window, group_by=view.group_by, clauses=clauses
                )
                rows: tuple[RequestRow, ...] | None = None
                if view.requests:
                    rows = self.reader().requests(now=now, window=window, clauses=clauses)
        except (DatabaseError, ValueError) as exc:
            self.post_message(LoadFailed(str(exc), snapshot=True))
            return
        if rows is not None:
            self.post_message(RequestsLoaded(rows))
        self.post_message(SnapshotLoaded(snap))

    @work(thread=True, exclusive=True, group="detail")
    def load_detail(self, row_id: int, source: str = "") -> None:
        try:
            with self._lock:
                detail = self.reader().detail(row_id, source)
        except DatabaseError as exc:
            self.post_message(LoadFailed(str(exc)))
            return
        self.post_message(DetailLoaded(detail))

    def evaluate_alerts(self) -> None:
        """Start an alert pass, unless one is running: then one more runs right after it.

        During an incident a pass over a big file takes seconds (the likely causes), while new
        rows ask for a pass every ALERT_MIN_GAP; starting each would queue threads on the lock.
        """
        if self._alerts_busy:
            self._alerts_again = True
            return
        self._alerts_busy, self._alerts_again = True, False
        self._evaluate_alerts()

    def on_alert_pass_ended(self, _message: AlertPassEnded) -> None:
        self._alerts_busy = False
        if self._alerts_again:
            self.evaluate_alerts()

    @work(thread=True, exclusive=True, group="alerts")
    def _evaluate_alerts(self) -> None:
        try:
            self._alert_pass()
        finally:
            # A message, not call_from_thread: that would block this thread forever if the app
            # is quitting, and the app waits for its threads.
            self.post_message(AlertPassEnded())

    def _alert_pass(self) -> None:
        self._last_alert_eval = time.monotonic()
        if self.paused_at is not None:
            return
        try:
            from llmtop.alerts.cache import AlertCache
            from llmtop.alerts.evaluate import evaluate
            from llmtop.alerts.rules import default_rules_path, load_rules
            from llmtop.alerts.state import sync

            if self._rules is None:
                self._rules = load_rules(self.rules_path or default_rules_path(self.db_path))
            now = self.now()
            with self._alert_lock:
                reader = self.alert_reader()
                if self._alert_cache is None:
                    self._alert_cache = AlertCache()
                fired = evaluate(
                    reader,
                    self._rules,
                    now,
                    explain_budget=EXPLAIN_BUDGET,
                    cache=self._alert_cache,
                )
                if self._alert_store is None:
                    self._alert_store = AlertStore(self.db_path)
                new, states = sync(self._alert_store, fired, now)
        except Exception as exc:  # an alerting problem must not take the dashboard down
            self.post_message(LoadFailed(f"alerts: {exc}"))
            return
        self.post_message(AlertsEvaluated(new, states))

    def watch_database(self) -> None:
        """Post DataChanged whenever the database or its WAL is written.

        A plain daemon thread rather than a worker: watchfiles blocks in native code that task
        cancellation cannot interrupt, and app shutdown must never wait on it. The stop event is
        checked every rust_timeout.
        """
        from watchfiles import watch

        files = {str(p.resolve()) for d in self.db_paths for p in (d, Path(f"{d}-wal"))}
        dirs = sorted({str(d.resolve().parent) for d in self.db_paths})
        stop = self._stop_watching = threading.Event()

        def run() -> None:
            try:
                for _changes in watch(
                    *dirs,
                    watch_filter=lambda _c, p: str(Path(p).resolve()) in files,
                    debounce=100,
                    step=50,
                    recursive=False,
                    stop_event=stop,
                    rust_timeout=300,
                    yield_on_timeout=False,
                    raise_interrupt=False,
                ):
                    if stop.is_set():
                        return
                    self.post_message(DataChanged())
            except Exception as exc:  # no watcher: the periodic tick still refreshes
                self.post_message(LoadFailed(f"file watching stopped: {exc}"))

        threading.Thread(target=run, name="llmtop-watch", daemon=True).start()

    # --- message handlers: assign reactives only --------------------------------------------------
    def on_snapshot_loaded(self, message: SnapshotLoaded) -> None:
        first = self.snapshot is None
        self.error = None
        self.snapshot = message.snapshot
        self._read_done()
        if first and self.alerts_enabled and not self._last_alert_eval:
            self.call_after_refresh(self.evaluate_alerts)

    def on_requests_loaded(self, message: RequestsLoaded) -> None:
        self.query_one(RequestsTable).show(message.rows)

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        from llmtop.tui.screens.detail import DetailScreen

        if message.detail is not None:
            self.push_screen(DetailScreen(message.detail))

    def on_load_failed(self, message: LoadFailed) -> None:
        self.error = message.error
        if message.snapshot:
            self._read_done()

    def on_data_changed(self, _message: DataChanged) -> None:
        if self.range_end is None:
            self.refresh_data()
            # New rows can start an incident: judge them now rather than at the next tick,
            # but not more often than every ALERT_MIN_GAP seconds under a busy writer.
            if self.alerts_enabled and time.monotonic() - self._last_alert_eval >= ALERT_MIN_GAP:
                self.evaluate_alerts()

    def on_alerts_evaluated(self, message: AlertsEvaluated) -> None:
        self.alert_states = message.states
        live = [s for s in message.states if s.state != "resolved"]
        under = {root.fingerprint: children for root, children in group_states(live)}
        for a in message.new:
            related = related_text(a, under.get(a.fingerprint, []))
            # Plain text with markup off: alert text quotes tag values, which must stay inert.
            self.notify(
                safe(
                    f"{a.title}\ncause: {a.cause}\nowner: {a.owner or '—'}"
                    + (f"\n{related}" if related else "")
                ).plain,
                title=f"{a.severity.upper()}: {a.scope or 'all'}",
                severity="error" if a.severity == "critical" else "warning",
                timeout=10,
                markup=False,
            )
            self.bell()

    # --- watchers: render ------------------------------------------------------------------------
    def watch_snapshot(self, snap: Snapshot | None) -> None:
        if snap is None:
            return
        for panel in ("#burn", "#cache", "#errors", "#tokens"):
            self.query_one(panel).snapshot = snap  # type: ignore[attr-defined]
        self.query_one(TopTable).show(snap.groups)
        self.render_crumbs()
        self.render_status()
        self.render_topbar()

    def watch_view(self, old: View, new: View) -> None:
        if not self.is_mounted:
            return
        self.query_one(TopTable).set_dimension(new.group_by)
        switcher = self.query_one(ContentSwitcher)
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
        t = safe("llmtop ", "bold")
        if len(self.db_paths) > 1:
            t.append_text(safe(f"{len(self.db_paths)} databases, merged, read-only", "dim"))
        else:
            t.append_text(safe(str(self.db_path), "dim"))
        t.append("  window ")
        if self.range_end is not None:
            t.append(f"{format_window(self.window)} to {clock(self.range_end)}", style="bold")
        else:
            t.append(format_window(self.window), style="bold")
        snap = self.snapshot
        if snap is None or abs((snap.end - snap.start) - self.window) > 1:
            # A cold read of a long window on a big file takes a second or two: say so rather
            # than show the previous window's numbers under the new window's name.
            t.append(f"  ⟳ reading {format_window(self.window)}…", style="italic")
        if self.paused_at is not None:
            t.append(f"  ⏸ PAUSED at {clock(self.paused_at)}", style="bold yellow")
        else:
            t.append("  ● live", style="bold green")
            t.append(f"  {clock(self.now())}")
        self.query_one("#topbar", Static).update(t)

    def render_crumbs(self) -> None:
        v = self.view
        t = safe("all", "bold")
        for c in v.path:
            t.append(" › ")
            t.append_text(safe(f"{c.key}={c.value if c.value is not None else '(none)'}", "bold"))
        t.append("  ·  ")
        t.append("requests, newest first" if v.requests else f"grouped by {v.group_by}")
        snap = self.snapshot
        if not v.requests and snap is not None and snap.groups_total > len(snap.groups):
            t.append_text(
                safe(
                    f"  ·  top {len(snap.groups):,} of {snap.groups_total:,} by spend"
                    f" ({money(snap.rest_spend)} in the rest: filter to narrow)",
                    "yellow",
                )
            )
        if self.filter_clauses:
            t.append("  ·  filter ")
            t.append_text(safe(format_filter(self.filter_clauses), "italic"))
        self.query_one("#crumbs", Static).update(t)

    def render_status(self) -> None:
        t = safe("")
        if self.error:
            t.append_text(safe(f"✗ {self.error}", "bold red"))
            self.query_one("#status", Static).update(t)
            return
        s = self.snapshot
        if s is None:
            t.append("loading…")
        else:
            tot = s.totals
            t.append(f"{count(tot.requests)} requests · ")
            t.append(f"{money(tot.spend)} spent", style="bold")
            t.append(" · ")
            t.append(f"{tot.unpriced} unpriced", style="bold yellow" if tot.unpriced else "dim")
            t.append(" · ")
            t.append(f"{tot.unmetered} unmetered", style="bold yellow" if tot.unmetered else "dim")
            t.append(" · ")
            t.append(f"{s.dropped} dropped", style="bold red" if s.dropped else "dim")
        self.query_one("#status", Static).update(t)

    # --- actions ---------------------------------------------------------------------------------
    def go(self, view: View) -> None:
        self._history.append(self.view)
        self.view = view

    @on(TopTable.RowSelected, "#groups")
    def drill(self, event: TopTable.RowSelected) -> None:
        table = self.query_one(TopTable)
        key = event.row_key.value
        g = table.groups.get(key or "")
        if g is None:
            return
        v = self.view
        path = (*v.path, Clause(v.group_by, "=", g.key))
        used = {c.key for c in path} | {c.key for c in self.filter_clauses if c.op == "="}
        nxt = next((d for d in DRILL_ORDER if d not in used), None)
        self.go(View(path=path, group_by=nxt or v.group_by, requests=nxt is None))

    @on(RequestsTable.RowSelected, "#requests")
    def open_request(self, event: RequestsTable.RowSelected) -> None:
        if event.row_key.value:
            source, row_id = parse_row_key(event.row_key.value)
            self.load_detail(row_id, source)

    def action_back(self) -> None:
        if self.screen is not self.screen_stack[0]:
            self.pop_screen()
            return
        if self._history:
            self.view = self._history.pop()

    def action_list_requests(self) -> None:
        if not self.view.requests:
            self.go(replace(self.view, requests=True))

    def action_window(self, name: str) -> None:
        self.range_end = None
        self.window = WINDOWS[name]

    def action_pause(self) -> None:
        self.paused_at = None if self.paused_at is not None else self.clock()

    def action_reload(self) -> None:
        self._rules = None
        self.refresh_data()

    def action_sort(self) -> None:
        self.query_one(TopTable).cycle_sort()

    def action_reverse_sort(self) -> None:
        t = self.query_one(TopTable)
        t.sort_by(t.sort_column)

    def action_help(self) -> None:
        from llmtop.tui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    def action_group(self) -> None:
        from llmtop.tui.screens.group_picker import GroupPicker

        dims = self.snapshot.dimensions if self.snapshot else ()

        def chosen(dim: str | None) -> None:
            if dim:
                state.save(group_by=dim)
                self.go(View(path=self.view.path, group_by=dim))

        self.push_screen(GroupPicker(dims, self.view.group_by), chosen)

    def action_filter(self) -> None:
        from llmtop.tui.screens.prompt import PromptScreen

        def chosen(clauses: tuple[Clause, ...] | None) -> None:
            if clauses is not None:
                self.filter_clauses = clauses

        self.push_screen(
            PromptScreen(
                "Filter (key=value key!=value key~glob*; empty clears)",
                format_filter(self.filter_clauses),
                parse_filter,
            ),
            chosen,
        )

    def action_custom_window(self) -> None:
        from llmtop.tui.screens.prompt import PromptScreen, parse_range

        def chosen(value: tuple[float, float | None] | None) -> None:
            if value is not None:
                self.window, self.range_end = value

        self.push_screen(
            PromptScreen(
                "Window: a length (90m, 3h, 2d) or a range (2026-11-20 10:00 .. 2026-11-20 12:00)",
                format_window(self.window),
                parse_range,
            ),
            chosen,
        )

    def action_alerts(self) -> None:
        self.query_one(AlertsPanel).focus_list()

    @work(thread=True, group="alert-state")
    def change_alert(self, fingerprint: str, what: str, until: float | None = None) -> None:
        from llmtop.alerts import state as alert_state

        # Its own short-lived connection, not the alert pass's: a pass over a big file can take
        # many seconds during an incident, and an ack must not wait for it to show.
        try:
            store = AlertStore(self.db_path)
            try:
                if what == "ack":
                    alert_state.ack(store, fingerprint)
                else:
                    alert_state.snooze(store, fingerprint, until or self.clock())
                states = alert_state.states(store, self.now())
            finally:
                store.close()
        except Exception as exc:
            self.post_message(LoadFailed(f"alerts: {exc}"))
            return
        self.post_message(AlertsEvaluated([], states))
        self.post_message(AlertStateChanged())

    def on_alert_state_changed(self, _message: AlertStateChanged) -> None:
        self.evaluate_alerts()

    def jump_to(self, filter_text: str, group_by: str) -> None:
        """From an alert straight to the drill-down that explains it."""
        try:
            clauses = parse_filter(filter_text)
        except ValueError:
            clauses = ()
        self.filter_clauses = ()
        self.go(View(path=clauses, group_by=group_by))
        self.query_one(TopTable).focus()

    def on_unmount(self) -> None:
        if self._stop_watching is not None:
            self._stop_watching.set()
        if self._reader is not None:
            with self._lock:
                self._reader.close()
        if self._alert_reader is not None:
            with self._alert_lock:
                self._alert_reader.close()
                if self._alert_store is not None:
                    self._alert_store.close()


def run_tui(
    db_paths: list[Path] | list[str],
    window: str = "1h",
    *,
    exit_after: float | None = None,
    rules_path: Path | None = None,
) -> int:
    """Entry point used by the CLI and `llmtop demo`."""
    app = LlmtopApp(
        db_paths[0],
        window=window,
        exit_after=exit_after,
        rules_path=rules_path,
        more_dbs=db_paths[1:],
    )
    app.run()
    return 0
