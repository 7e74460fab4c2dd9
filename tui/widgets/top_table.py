"""The top-N table: one row per value of the grouping dimension, updated in place by row key."""

from __future__ import annotations

from llmtop.store.queries import GroupRow
from llmtop.tui.format import count, delta, money, ms, pct
from llmtop.tui.widgets.cell import Cell, cursor_key, sort_key
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
        "key": Cell(name, g.key or "", justify="left"),
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
        self.groups: dict[str, GroupRow] = {}

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
        selected = self._selected_key()
        fresh = {row_key(g): g for g in groups}
        for key in list(self.groups):
            if key not in fresh:
                self.remove_row(key)
        for key, g in fresh.items():
            new = cells(g)
            if key in self.groups:
                old = cells(self.groups[key])
                for col, cell in new.items():
                    if old[col] != cell or old[col].sort_value != cell.sort_value:
                        self.update_cell(key, col, cell)
            else:
                self.add_row(*(new[k] for k, _ in COLUMNS), key=key)
        self.groups = fresh
        self.apply_sort()
        if selected in fresh:
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
