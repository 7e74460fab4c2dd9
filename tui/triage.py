"""The table's prompts and triage keys, for the dashboard: `/` (validated, with completion),
`g`, `w`, `e` export, `y` copy, `c` chart, `d` compare, and the preferences kept per database.

The screen owns the state (view, window, filter); this helper opens the prompts, runs the
table's extra reads (tui/table_reads.py) in worker threads and posts their results back as
past-tense messages, so DashboardScreen stays a list of keys and handlers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtop.store.filters import (
    Clause,
    check_keys,
    format_filter,
    format_window,
    parse_filter,
    parse_window,
)
from llmtop.store.reader import Reader
from llmtop.store.views import GroupRow, RequestRow
from llmtop.tui import state, table_reads
from llmtop.tui.messages import ExportWritten
from llmtop.tui.widgets.requests_table import RequestsTable
from llmtop.tui.widgets.top_table import TopTable, compare
from textual.message import Message

if TYPE_CHECKING:
    from llmtop.store.rows import Column
    from llmtop.store.views import Snapshot
    from llmtop.tui.screens.dashboard import DashboardScreen

#: Series drawn by the time chart.
CHART_SERIES = 5
EXPORT_FORMATS = (".csv", ".json")


class BaselineLoaded(Message):
    """Last week's spend per group (the Δ column under `d`), for the snapshot ending at `end`."""

    def __init__(self, baseline: dict[str | None, float], end: float, view: Any) -> None:
        super().__init__()
        self.baseline = baseline
        self.end = end
        self.view = view


def export_dir() -> Path:
    import os

    return Path(os.environ.get("LLMTOP_EXPORT_DIR") or Path.cwd())


def export_name(group_by: str, requests: bool, at: float) -> str:
    what = "requests" if requests else f"by-{group_by}"
    return f"llmtop-{what}-{datetime.fromtimestamp(at).strftime('%Y%m%d-%H%M%S')}.csv"


def write_export(
    path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str], meta: dict[str, Any]
) -> None:
    """csv (a header, then the rows) or json (the view's description and its rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    if path.suffix == ".json":
        tmp.write_text(json.dumps({**meta, "rows": list(rows)}, indent=1, default=str) + "\n")
    else:
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(columns))
            w.writeheader()
            w.writerows(rows)
    tmp.replace(path)


def write_request_export(
    path: Path,
    chunks: Iterable[Sequence[tuple[Any, ...]]],
    columns: Sequence[Column],
    meta: dict[str, Any],
) -> int:
    """Every request of a view, streamed (a request list holds the newest 500; its window can
    hold millions): csv through `llmtop export`'s writer, or json (the view's description, then
    its rows), in constant memory. Returns the rows written."""
    from llmtop.review.common import check_out
    from llmtop.review.export import write_rows  # on export, not at start-up

    check_out(path)  # the .part file is checked by write_rows; this is what it replaces
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    if path.suffix != ".json":
        n = write_rows(chunks, columns, "csv", tmp)
        tmp.replace(path)
        return n
    names, n = [c.name for c in columns], 0
    with tmp.open("w", encoding="utf-8") as f:
        head = json.dumps({**meta, "rows": []}, indent=1, default=str)
        f.write(head[: head.rindex("[") + 1])
        for chunk in chunks:
            for row in chunk:
                f.write(
                    ("\n  " if n == 0 else ",\n  ")
                    + json.dumps(dict(zip(names, row, strict=True)), default=str)
                )
                n += 1
        f.write("\n ]\n}\n" if n else "]\n}\n")
    tmp.replace(path)
    return n


def parse_export_path(text: str) -> Path:
    name = text.strip()
    if not name:
        raise ValueError("give a file name ending in .csv or .json")
    p = Path(name).expanduser()
    if p.suffix not in EXPORT_FORMATS:
        raise ValueError(f"{name}: the name must end in .csv or .json")
    return p if p.is_absolute() else export_dir() / p


class TableTriage:
    def __init__(self, screen: DashboardScreen) -> None:
        self.screen = screen
        self.compare_mode = "prev"
        #: The filter text last refused for an unknown key (see check_filter).
        self._refused: str | None = None
        #: The (grouping, clauses) the table's last-week figures are for.
        self._baseline_view: Any = None

    # --- preferences ------------------------------------------------------------------------
    def remembered(self) -> dict[str, Any]:
        """This database's kept window, grouping and sort; a value that no longer parses is
        dropped (a hand-edited file must not stop the dashboard from opening)."""
        kept = state.remembered(self.screen.db_paths)
        try:
            parse_window(kept.get("window", "1h"))
        except ValueError:
            kept.pop("window")
        if not kept.get("group_by"):
            kept.pop("group_by", None)
        return kept

    def remember(self, **values: Any) -> None:
        state.remember(self.screen.db_paths, **values)

    # --- the reads ---------------------------------------------------------------------------
    def _locked(self, fn: Any, *args: Any) -> Any:
        reads = self.screen.reads
        with reads.lock:
            return fn(reads.reader(), *args)

    def snapshot_loaded(self, snap: Snapshot) -> None:
        """In `week` mode, each snapshot's Δ is recomputed against the same range a week ago."""
        if self.compare_mode != "week":
            return
        view = (snap.group_by, snap.clauses)
        if view != self._baseline_view:  # another grouping or filter: "…" until it is read
            self._baseline_view = view
            self.screen.query_one(TopTable).set_compare("week", None)
        self.screen.run_worker(
            partial(self._baseline, snap.start, snap.end, snap.group_by, snap.clauses, view),
            thread=True,
            group="baseline",
            exclusive=True,
        )

    def _baseline(
        self, start: float, end: float, dim: str, clauses: tuple[Clause, ...], view: Any
    ) -> None:
        try:
            base = self._locked(table_reads.last_week, start, end, dim, clauses)
        except Exception as exc:
            from llmtop.tui.messages import LoadFailed

            self.screen.post_message(LoadFailed(f"last week's spend: {exc}"))
            return
        self.screen.post_message(BaselineLoaded(base, end, view))

    def baseline_loaded(self, message: BaselineLoaded) -> None:
        snap = self.screen.snapshot
        if self.compare_mode == "week" and snap and (snap.group_by, snap.clauses) == message.view:
            self.screen.query_one(TopTable).set_compare("week", message.baseline)

    def toggle_compare(self) -> None:
        self.compare_mode = "week" if self.compare_mode == "prev" else "prev"
        self._baseline_view = None
        table = self.screen.query_one(TopTable)
        table.set_compare(self.compare_mode, None)
        if self.screen.snapshot is not None:
            self.snapshot_loaded(self.screen.snapshot)
        self.screen.notify(
            "Δ: the same window last week"
            if self.compare_mode == "week"
            else "Δ: the previous window",
            timeout=3,
        )

    # --- prompts -----------------------------------------------------------------------------
    def known_dimensions(self, snap: Snapshot | None = None) -> tuple[str, ...]:
        """The dimensions of `snap` (by default the one on screen), `source` too over several
        files."""
        snap = snap or self.screen.snapshot
        dims = tuple(snap.dimensions) if snap else ()
        if len(self.screen.db_paths) > 1 and "source" not in dims:
            dims = (*dims, "source")
        return dims

    def check_filter(self, text: str) -> tuple[Clause, ...]:
        """Parsed clauses; a key that is no known dimension is refused once, with the nearest
        name. The known extra tags are those of the newest rows, so a rare tag can be missing:
        `enter` a second time on the same text uses it anyway."""
        clauses = parse_filter(text)
        known = self.known_dimensions()
        if known and text != self._refused:
            try:
                check_keys(clauses, known)
            except ValueError as exc:
                self._refused = text
                raise ValueError(f"{exc} (enter again to filter on it anyway)") from None
        self._refused = None
        return clauses

    def filter_prompt(self) -> None:
        from llmtop.tui.screens.prompt import PromptScreen
        from llmtop.tui.suggest import FilterSuggester

        scr = self.screen
        now, window = scr.now(), scr.window

        def values(key: str) -> list[str]:
            return self._locked(table_reads.values_of, now - window, now, key)

        def chosen(clauses: tuple[Clause, ...] | None) -> None:
            if clauses is not None:
                scr.filter_clauses = clauses

        scr.app.push_screen(
            PromptScreen(
                "Filter (key=value key!=value key~glob*; empty clears; → completes)",
                format_filter(scr.filter_clauses),
                self.check_filter,
                FilterSuggester(self.known_dimensions(), values),
            ),
            chosen,
        )

    def window_prompt(self) -> None:
        from llmtop.tui.screens.prompt import PromptScreen, parse_range

        scr = self.screen

        def chosen(value: tuple[float, float | None] | None) -> None:
            if value is not None:
                scr.window, scr.range_end = value
                if value[1] is None:
                    self.remember(window=format_window(value[0]))

        scr.app.push_screen(
            PromptScreen(
                "Window: a length (90m, 3h, 2d) or a range (2026-11-20 10:00 .. 2026-11-20 12:00)",
                format_window(scr.window),
                parse_range,
            ),
            chosen,
        )

    def group_picker(self) -> None:
        from llmtop.tui.screens.group_picker import GroupPicker

        scr = self.screen

        def chosen(dim: str | None) -> None:
            if dim:
                self.remember(group_by=dim, sort="spend", reverse=True)
                scr.regroup(dim)

        scr.app.push_screen(GroupPicker(self.known_dimensions(), scr.view.group_by), chosen)

    # --- export, copy, chart -------------------------------------------------------------------
    def view_rows(self) -> tuple[list[dict[str, Any]], list[str]]:
        """What the table shows, in its order, with every figure (not only the visible ones)."""
        scr = self.screen
        if scr.view.requests:
            table = scr.query_one(RequestsTable)
            cols = [f.name for f in fields(RequestRow)]
            return [asdict(r) for r in table.rows_in_order()], cols
        top = scr.query_one(TopTable)
        dim = scr.view.group_by
        cols = [dim, *(f.name for f in fields(GroupRow) if f.name != "key"), "delta_vs"]
        out = []
        for g in top.rows_in_order():
            row = asdict(g)
            row[dim] = row.pop("key")
            row["delta"] = compare(g, top.baseline)
            row["delta_vs"] = "last week" if top.baseline is not None else "previous window"
            out.append({c: row[c] for c in cols})
        return out, cols

    def export_prompt(self) -> None:
        from llmtop.tui.screens.prompt import PromptScreen

        scr = self.screen
        v = scr.view
        name = export_name(v.group_by, v.requests, scr.now())

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            snap = scr.snapshot
            meta = {
                "window": format_window(scr.window),
                "start": snap.start if snap else None,
                "end": snap.end if snap else None,
                "paused": scr.paused_at is not None,
                "filter": format_filter((*scr.filter_clauses, *v.path)),
                "group_by": None if v.requests else v.group_by,
            }
            if v.requests and snap is not None and len(scr.db_paths) == 1:
                clauses = (*scr.filter_clauses, *v.path)
                scr.run_worker(
                    partial(self._export_requests, path, snap.start, snap.end, clauses, meta),
                    thread=True,
                    group="export",
                )
                scr.notify(f"exporting every request of the view to {path}…", markup=False)
                return
            rows, cols = self.view_rows()
            try:
                write_export(path, rows, cols, meta)
            except OSError as exc:
                scr.notify(f"export failed: {exc}", severity="error", markup=False)
                return
            scr.notify(f"exported {len(rows)} rows to {path}", timeout=8, markup=False)

        scr.app.push_screen(
            PromptScreen(
                f"Export this view to (.csv or .json; relative to {export_dir()})",
                name,
                parse_export_path,
            ),
            chosen,
        )

    def _export_requests(
        self,
        path: Path,
        start: float,
        end: float,
        clauses: Sequence[Clause],
        meta: dict[str, Any],
    ) -> None:
        """Worker: stream the view's requests (all of them, not the list's newest 500) through
        the same columns and reads as `llmtop export`, on a connection of its own."""
        from llmtop.store.rows import request_chunks, request_columns

        scr = self.screen
        try:
            reader = Reader(scr.db_path)
            try:
                with reader.read_transaction():
                    cols = request_columns(reader)
                    chunks = request_chunks(
                        reader, start, end, clauses, columns=cols, newest_first=True
                    )
                    n = write_request_export(path, chunks, cols, meta)
            finally:
                reader.close()
        except Exception as exc:  # a failed export is a line on screen, not a crash
            scr.post_message(ExportWritten(path, 0, str(exc)))
            return
        scr.post_message(ExportWritten(path, n))

    def export_written(self, message: ExportWritten) -> None:
        scr = self.screen
        if message.error:
            scr.notify(f"export failed: {message.error}", severity="error", markup=False)
        else:
            scr.notify(f"exported {message.rows} rows to {message.path}", timeout=8, markup=False)

    def copy_id(self) -> None:
        """A request's trace id (its id when it has none) or the selected group's value."""
        scr = self.screen
        if scr.view.requests:
            r = scr.query_one(RequestsTable).selected_row()
            if r is None:
                return
            what, value = ("trace id", r.trace_id) if r.trace_id else ("request id", str(r.id))
        else:
            g = scr.query_one(TopTable).selected_group()
            if g is None:
                return
            what, value = scr.view.group_by, "(none)" if g.key is None else g.key
        scr.app.copy_to_clipboard(value)
        scr.notify(f"copied {what} {value}", timeout=3, markup=False)

    def chart(self) -> None:
        from llmtop.tui.screens.chart import ChartScreen

        scr = self.screen
        snap = scr.snapshot
        if snap is None or scr.view.requests:
            scr.notify("the chart shows a grouping: go back from the request list", timeout=3)
            return
        keys = [g.key for g in sorted(snap.groups, key=lambda g: -g.spend)[:CHART_SERIES]]
        title = (
            f"Spend by {snap.group_by} over the last {format_window(snap.end - snap.start)}"
            f" to {datetime.fromtimestamp(snap.end).strftime('%H:%M:%S')}"
        )
        load = partial(
            self._locked,
            table_reads.series,
            snap.start,
            snap.end,
            snap.group_by,
            keys,
            snap.clauses,
        )
        scr.app.push_screen(ChartScreen(title, load))
