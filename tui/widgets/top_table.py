"""The top-N table: one row per value of the grouping dimension, updated in place by row key.

It says how it is sorted (▼/▲ after the column's name), starts over at spend when the grouping
changes (a sort by name or by a ratio means something else under another dimension), shows only
the columns that fit its width (narrow terminals keep spend, share, Δ, requests and $/request),
and its Δ column compares with the previous window or, with `d`, the same window a week before.
"""

from __future__ import annotations

from llmtop.store.views import GroupRow
from llmtop.tui.format import count, delta, money, ms, pct
from llmtop.tui.widgets.cell import MAX_LABEL, Cell, CellTable, cursor_key, sort_key
from rich.cells import cell_len
from rich.text import Text
from textual.events import Resize
from textual.message import Message
from textual.widgets import DataTable

COLUMNS: tuple[tuple[str, str], ...] = (
    ("key", "feature"),
    ("spend", "spend"),
    ("share", "share"),
    ("delta", "Δ prev"),
    ("requests", "reqs"),
    ("cpr", "$/req"),
    ("c1k", "$/1k req"),
    ("tpr", "tok/req"),
    ("cache", "cache%"),
    ("retry", "retry%"),
    ("error", "err%"),
    ("p95", "p95 lat"),
)
#: Columns in the order they give way on a narrow terminal (the last goes first); below MEDIUM
#: columns the key column is also capped at NARROW_LABEL characters.
PRIORITY = ("key", "spend", "share", "delta", "requests", "cpr", "error", "p95", "cache", "c1k")
PRIORITY += ("tpr", "retry")
MEDIUM, NARROW_LABEL = 100, 22
#: From this width p95 latency (and every column before it) stays: names are cut shorter, to
#: MIN_LABEL at most, until it fits (long model names took it away at 80 columns).
KEEP_P95_WIDTH, MIN_LABEL = 80, 10
#: DataTable pads each cell by one on either side; the scrollbar takes two.
PAD, SCROLLBAR = 2, 2
#: The Δ column's two comparisons (`d` toggles).
COMPARE_LABEL = {"prev": "Δ prev", "week": "Δ last wk"}
NONE_KEY = "\x00none"
#: Rows added before the first paint; the rest follow right after it. A screen shows a few dozen,
#: and every row added costs a measure of each cell (~0.3 ms a row), so a 300-row first read
#: paints as fast as a 60-row one.
FIRST_ROWS = 60
#: The GroupRow field each column shows (and sorts by).
FIELD_OF: dict[str, str] = {
    "key": "key",
    "spend": "spend",
    "share": "share",
    "delta": "delta",
    "requests": "requests",
    "cpr": "cost_per_request",
    "c1k": "cost_per_1k",
    "tpr": "tokens_per_request",
    "cache": "cache_hit",
    "retry": "retry",
    "error": "error",
    "p95": "p95_latency_ms",
}


def row_key(g: GroupRow) -> str:
    return NONE_KEY if g.key is None else g.key


def visible_columns(width: int, widths: dict[str, int]) -> tuple[str, ...]:
    """The columns that fit in `width`, by PRIORITY, in the table's own order."""
    room, keep = width - SCROLLBAR, set()
    for k in PRIORITY:
        need = widths[k] + PAD
        if k != "key" and need > room:
            break
        keep.add(k)
        room -= need
    return tuple(k for k, _ in COLUMNS if k in keep)


def compare(g: GroupRow, baseline: dict[str | None, float] | None) -> float | None:
    """Relative change of spend against the baseline (None: it had none, shown as "new")."""
    if baseline is None:
        return g.delta
    before = baseline.get(g.key, 0.0)
    return (g.spend - before) / before if before else None


def cells(
    g: GroupRow,
    baseline: dict[str | None, float] | None = None,
    label: int = MAX_LABEL,
    pending: bool = False,
    history: bool = True,
) -> dict[str, Cell]:
    """A row's cells; `pending`: last week's figures for this view are still being read;
    `history`: the file covers the whole compared window (else Δ is "—": not "new" on every row
    of a young file, nor +300% against a window it holds only part of)."""
    name = g.key if g.key is not None else "(none)"
    if g.unpriced:
        name = f"{name} ⚠{g.unpriced} unpriced"
    d = compare(g, baseline)
    d_style = ""
    if d is not None:
        d_style = "red" if d > 0.25 else ("green" if d < -0.1 else "")
    return {
        "key": Cell(name, g.key or "", justify="left", limit=label),
        "spend": Cell(money(g.spend), g.spend, style="bold"),
        "share": Cell(pct(g.share), g.share),
        "delta": (
            Cell("…", None)
            if pending
            else Cell(delta(d), d, style=d_style)
            if history
            else Cell("—", None)
        ),
        "requests": Cell(count(g.requests), g.requests),
        "cpr": Cell(money(g.cost_per_request), g.cost_per_request),
        "c1k": Cell(money(g.cost_per_1k), g.cost_per_1k),
        "tpr": Cell(count(g.tokens_per_request), g.tokens_per_request),
        "cache": Cell(pct(g.cache_hit, 0), g.cache_hit),
        "retry": Cell(pct(g.retry), g.retry, style="yellow" if g.retry >= 0.05 else ""),
        "error": Cell(pct(g.error), g.error, style="red" if g.error >= 0.05 else ""),
        "p95": Cell(ms(g.p95_latency_ms), g.p95_latency_ms),
    }


class TopTable(CellTable):
    """Sortable by any column (click a header or press s / S)."""

    class SortChanged(Message):
        """The user sorted the table: the screen remembers it."""

        def __init__(self, column: str, reverse: bool) -> None:
            super().__init__()
            self.column = column
            self.reverse = reverse

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.sort_column = "spend"
        self.sort_reverse = True
        self.dimension = "feature"
        #: Columns shown at this width (see visible_columns).
        self.shown_columns: tuple[str, ...] = tuple(k for k, _ in COLUMNS)
        self.label_limit = MAX_LABEL
        #: "prev" (the snapshot's own Δ) or "week": `baseline` is last week's spend per key.
        self.compare_mode = "prev"
        self.baseline: dict[str | None, float] | None = None
        #: Whether the compared window ("prev", "week") lies after the file's first row.
        self.history = {"prev": True, "week": True}
        #: A row to put the cursor on once it arrives (back from a drill-down).
        self.pending_cursor: str | None = None
        #: What each row shows now (only rows actually in the table).
        self.groups: dict[str, GroupRow] = {}
        self._cells: dict[str, dict[str, Cell]] = {}
        self._generation = 0
        self._fit_width = 0

    def on_mount(self) -> None:
        self._build_columns()

    def _build_columns(self) -> None:
        for key, label in COLUMNS:
            if key in self.shown_columns:
                self.add_column(self._label(key, label), key=key)

    def _label(self, key: str, label: str) -> Text:
        if key == "key":
            label = self.dimension
            if self.sort_column not in self.shown_columns:
                hidden = dict(COLUMNS)[self.sort_column]
                label = f"{label} (by {hidden} {'▼' if self.sort_reverse else '▲'})"
        elif key == "delta":
            label = COMPARE_LABEL[self.compare_mode]
        if key == self.sort_column:
            return Text(f"{label} {'▼' if self.sort_reverse else '▲'}", style="bold")
        return Text(label)

    def update_header(self) -> None:
        """Labels say the grouping, the comparison and the sort (▼ descending, ▲ ascending)."""
        for key, label in COLUMNS:
            col = self.columns.get(key)  # type: ignore[call-overload]
            if col is not None:
                col.label = self._label(key, label)
                col.content_width = max(col.content_width, cell_len(col.label.plain))
        # DataTable caches its rendered header line; the public refresh() alone keeps the
        # old label on screen.
        self._clear_caches()
        self.refresh()

    def set_dimension(self, dim: str) -> None:
        """A new grouping starts sorted by spend, biggest first."""
        if dim != self.dimension:
            self.dimension = dim
            self.sort_column, self.sort_reverse = "spend", True
            self.apply_sort()
        self.update_header()

    def set_sort(self, column: str, reverse: bool) -> None:
        if column in FIELD_OF:
            self.sort_column, self.sort_reverse = column, reverse
            self.apply_sort()
            self.update_header()

    def set_compare(self, mode: str, baseline: dict[str | None, float] | None) -> None:
        """Δ against the previous window ("prev") or last week's `baseline` (None: being read)."""
        if mode != self.compare_mode:
            self.compare_mode = mode
            self.update_header()
        self.baseline = baseline if mode == "week" else None
        for key, g in self.groups.items():
            new, was = self.cells_of(g), self._cells[key]
            if "delta" in self.shown_columns and (
                was["delta"] != new["delta"] or was["delta"].sort_value != new["delta"].sort_value
            ):
                self.put_cell(key, "delta", new["delta"])
            self._cells[key] = new
        if self.sort_column == "delta":
            self.apply_sort()

    def column_widths(self, limit: int) -> dict[str, int]:
        """What each column needs for its label (and sort arrow) and the cells it has now."""
        out = {}
        for key, label in COLUMNS:
            w = cell_len(self._label(key, label).plain)
            for row in self._cells.values():
                w = max(w, cell_len(row[key].plain))
            out[key] = min(w, limit + 2) if key == "key" else w
        return out

    def fit(self, width: int) -> None:
        """Drop low-priority columns (and cap long names) so the table is never cut."""
        self._fit_width = width
        limit = MAX_LABEL if width >= MEDIUM else NARROW_LABEL
        visible = visible_columns(width, self.column_widths(limit))
        while width >= KEEP_P95_WIDTH and "p95" not in visible and limit > MIN_LABEL:
            limit = max(MIN_LABEL, limit - 4)
            visible = visible_columns(width, self.column_widths(limit))
        if visible != self.shown_columns or limit != self.label_limit:
            self.shown_columns, self.label_limit = visible, limit
            self._redraw()

    def on_resize(self, event: Resize) -> None:
        self.fit(event.size.width)

    def _redraw(self) -> None:
        """Columns or every cell changed: rebuild, keeping the cursor's row."""
        if not self.is_mounted:
            return
        selected = self._selected_key()
        groups = list(self.groups.values())
        self.clear(columns=True)
        self.groups, self._cells = {}, {}
        self._build_columns()
        self._add({row_key(g): g for g in groups}, [row_key(g) for g in groups])
        self._keep_cursor(selected)

    def show(self, groups: tuple[GroupRow, ...], history: dict[str, bool] | None = None) -> None:
        """Update in place by row key; unchanged rows cost nothing, new rows are added in the
        table's sort order, the first FIRST_ROWS now and the rest after the next paint.
        `history`: per comparison, whether its window has rows (Snapshot.first_row)."""
        self._generation += 1
        if history is not None and history != self.history:
            self.history = history
            self.set_compare(self.compare_mode, self.baseline)
        selected = self._selected_key()
        fresh = {row_key(g): g for g in groups}
        # Rows whose shown text changes (a refresh: a few; another window, grouping or filter:
        # most), judged by their spend and request count as shown. Most: drawn anew, only the
        # first FIRST_ROWS cost the frame; updated in place, every changed cell would, and each
        # removal is linear (benchmarks/latency.py --keys).
        self._widened = False
        differ = sum(1 for k in self.groups if k not in fresh)
        for k, g in fresh.items():
            old = self.groups.get(k)
            if old is None or (
                old != g and (old.requests != g.requests or money(old.spend) != money(g.spend))
            ):
                differ += 1
        if differ > FIRST_ROWS and differ > len(fresh) // 2:
            self.clear()
            self.groups.clear()
            self._cells.clear()
        for key in [k for k in self.groups if k not in fresh]:
            self.remove_row(key)
            del self.groups[key]
            del self._cells[key]
        new_keys = []
        for key, g in fresh.items():
            old = self.groups.get(key)
            if old is None:
                new_keys.append(key)
            elif old != g:
                new, was = self.cells_of(g), self._cells[key]
                for col in self.shown_columns:
                    cell = new[col]
                    if was[col] != cell or was[col].sort_value != cell.sort_value:
                        self.put_cell(key, col, cell)
                self.groups[key], self._cells[key] = g, new
        if len(new_keys) > FIRST_ROWS:
            order = FIELD_OF[self.sort_column]
            new_keys.sort(
                key=lambda k: sort_key(getattr(fresh[k], order)), reverse=self.sort_reverse
            )
            later = new_keys[FIRST_ROWS:]
            self.call_after_refresh(self._add_later, self._generation, fresh, later)
            new_keys = new_keys[:FIRST_ROWS]
        self._add(fresh, new_keys)
        self._keep_cursor(selected)
        if (new_keys or self._widened) and self._fit_width:
            self.fit(self._fit_width)  # new names or figures can be wider than the old ones

    def put_cell(self, key: str, col: str, cell: Cell) -> None:
        """update_cell, widening the column when the new text needs it: DataTable keeps a
        column's width on an update, so `100.0%` replacing `2.2%` showed as `100.` (and a
        table wider than the screen was cut on the right)."""
        column = self.columns.get(col)  # type: ignore[call-overload]
        wider = column is not None and cell_len(cell.plain) > column.content_width
        self._widened = getattr(self, "_widened", False) or wider
        self.update_cell(key, col, cell, update_width=wider)

    def cells_of(self, g: GroupRow) -> dict[str, Cell]:
        pending = self.compare_mode == "week" and self.baseline is None
        return cells(g, self.baseline, self.label_limit, pending, self.history[self.compare_mode])

    def _add(self, fresh: dict[str, GroupRow], keys: list[str]) -> None:
        for key in keys:
            new = self.cells_of(fresh[key])
            self.add_row(*(new[k] for k in self.shown_columns), key=key)
            self.groups[key], self._cells[key] = fresh[key], new
        self.apply_sort()

    def _add_later(self, generation: int, fresh: dict[str, GroupRow], keys: list[str]) -> None:
        if generation == self._generation:  # else a newer show() has reconciled everything
            selected = self._selected_key()
            self._add(fresh, keys)
            self._keep_cursor(selected)

    def _keep_cursor(self, selected: str | None) -> None:
        """Rows were added and re-sorted: the cursor stays on the group it was on (or goes to
        the one it was asked to come back to)."""
        if self.pending_cursor in self.groups:
            selected, self.pending_cursor = self.pending_cursor, None
        if selected in self.groups:
            self.move_cursor(row=self.get_row_index(selected))

    def apply_sort(self) -> None:
        if not self.row_count:
            return
        if self.sort_column in self.shown_columns:
            self.sort(self.sort_column, key=sort_key, reverse=self.sort_reverse)
            return
        # A remembered sort on a column this width does not show: by the groups' own field.
        field = FIELD_OF[self.sort_column]
        by_name = {g.key or "": g for g in self.groups.values()}
        self.sort(
            "key",
            key=lambda c: sort_key(getattr(by_name[c.sort_value], field)),
            reverse=self.sort_reverse,
        )

    def sort_by(self, column: str) -> None:
        if column == self.sort_column:
            reverse = not self.sort_reverse
        else:
            reverse = column != "key"
        self._user_sort(column, reverse)

    def cycle_sort(self) -> None:
        keys = list(self.shown_columns)
        i = keys.index(self.sort_column) if self.sort_column in keys else -1
        column = keys[(i + 1) % len(keys)]
        self._user_sort(column, column != "key")

    def _user_sort(self, column: str, reverse: bool) -> None:
        self.set_sort(column, reverse)
        self.post_message(self.SortChanged(column, reverse))

    def _selected_key(self) -> str | None:
        return cursor_key(self)

    def rows_in_order(self) -> list[GroupRow]:
        """The groups as the table lists them (rows still waiting for the next paint last)."""
        out = []
        for row in self.ordered_rows:
            if row.key.value in self.groups:
                out.append(self.groups[row.key.value])
        return out

    def selected_group(self) -> GroupRow | None:
        key = self._selected_key()
        return self.groups.get(key) if key is not None else None

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))
