"""The top-N table: one row per value of the grouping dimension, updated in place by row key."""

from __future__ import annotations

from llmtop.store.views import GroupRow
from llmtop.tui.format import count, delta, money, ms, pct
from llmtop.tui.widgets.cell import MAX_LABEL, Cell, cursor_key, sort_key
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


def cells(g: GroupRow) -> dict[str, Cell]:
    name = g.key if g.key is not None else "(none)"
    if g.unpriced:
        name = f"{name} ⚠{g.unpriced} unpriced"
    d_style = ""
    if g.delta is not None:
        d_style = "red" if g.delta > 0.25 else ("green" if g.delta < -0.1 else "")
    return {
        "key": Cell(name, g.key or "", justify="left", limit=MAX_LABEL),
        "spend": Cell(money(g.spend), g.spend, style="bold"),
        "share": Cell(pct(g.share), g.share),
        "delta": Cell(delta(g.delta), g.delta, style=d_style),
        "requests": Cell(count(g.requests), g.requests),
        "cpr": Cell(money(g.cost_per_request), g.cost_per_request),
        "c1k": Cell(money(g.cost_per_1k), g.cost_per_1k),
        "tpr": Cell(count(g.tokens_per_request), g.tokens_per_request),
        "cache": Cell(pct(g.cache_hit, 0), g.cache_hit),
        "retry": Cell(pct(g.retry), g.retry, style="yellow" if g.retry >= 0.05 else ""),
        "error": Cell(pct(g.error), g.error, style="red" if g.error >= 0.05 else ""),
        "p95": Cell(ms(g.p95_latency_ms), g.p95_latency_ms),
    }


class TopTable(DataTable[Cell]):
    """Sortable by any column (click a header or press s / S)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.sort_column = "spend"
        self.sort_reverse = True
        #: What each row shows now (only rows actually in the table).
        self.groups: dict[str, GroupRow] = {}
        self._cells: dict[str, dict[str, Cell]] = {}
        self._generation = 0

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def set_dimension(self, dim: str) -> None:
        col = self.columns.get("key")  # type: ignore[call-overload]
        if col is not None:
            from rich.text import Text

            col.label = Text(dim)
            # DataTable caches its rendered header line; the public refresh() alone keeps the
            # old label on screen.
            self._clear_caches()
            self.refresh()

    def show(self, groups: tuple[GroupRow, ...]) -> None:
        """Update in place by row key; unchanged rows cost nothing, new rows are added in the
        table's sort order, the first FIRST_ROWS now and the rest after the next paint."""
        self._generation += 1
        selected = self._selected_key()
        fresh = {row_key(g): g for g in groups}
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
                new, was = cells(g), self._cells[key]
                for col, cell in new.items():
                    if was[col] != cell or was[col].sort_value != cell.sort_value:
                        self.update_cell(key, col, cell)
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

    def _add(self, fresh: dict[str, GroupRow], keys: list[str]) -> None:
        for key in keys:
            new = cells(fresh[key])
            self.add_row(*(new[k] for k, _ in COLUMNS), key=key)
            self.groups[key], self._cells[key] = fresh[key], new
        self.apply_sort()

    def _add_later(self, generation: int, fresh: dict[str, GroupRow], keys: list[str]) -> None:
        if generation == self._generation:  # else a newer show() has reconciled everything
            selected = self._selected_key()
            self._add(fresh, keys)
            self._keep_cursor(selected)

    def _keep_cursor(self, selected: str | None) -> None:
        """Rows were added and re-sorted: the cursor stays on the group it was on."""
        if selected in self.groups:
            self.move_cursor(row=self.get_row_index(selected))

    def apply_sort(self) -> None:
        if self.row_count:
            self.sort(self.sort_column, key=sort_key, reverse=self.sort_reverse)

    def sort_by(self, column: str) -> None:
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column = column
            self.sort_reverse = column != "key"
        self.apply_sort()

    def cycle_sort(self) -> None:
        keys = [k for k, _ in COLUMNS]
        self.sort_column = keys[(keys.index(self.sort_column) + 1) % len(keys)]
        self.sort_reverse = self.sort_column != "key"
        self.apply_sort()

    def _selected_key(self) -> str | None:
        return cursor_key(self)

    def selected_group(self) -> GroupRow | None:
        key = self._selected_key()
        return self.groups.get(key) if key is not None else None

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))
