"""Individual requests at the bottom of a drill path, newest first.

Like the top table, it is never cut on the right: on a narrow terminal the least useful columns
give way (PRIORITY, last first) and names are capped at NARROW_LABEL characters.
"""

from __future__ import annotations

from llmtop.store.views import RequestRow
from llmtop.tui.format import clock, count, money, ms
from llmtop.tui.widgets.cell import MAX_LABEL, Cell, CellTable, cursor_key
from rich.cells import cell_len
from textual.events import Resize

COLUMNS: tuple[tuple[str, str], ...] = (
    ("time", "time"),
    ("model", "model"),
    ("feature", "feature"),
    ("status", "status"),
    ("in", "in"),
    ("cached", "cached"),
    ("out", "out"),
    ("cost", "cost"),
    ("latency", "latency"),
    ("attempt", "try"),
)
PRIORITY = ("time", "model", "feature", "status", "cost", "latency", "in", "out", "attempt")
PRIORITY += ("cached",)
#: Below this width names are capped at NARROW_LABEL; DataTable pads cells by two, the
#: scrollbar takes two.
MEDIUM, NARROW_LABEL, PAD, SCROLLBAR = 100, 18, 2, 2
#: From this width cost and latency stay: model, feature and status are cut shorter, to
#: MIN_LABEL at most, until they fit (at 80 columns only time, model, feature and status
#: were left).
KEEP_COST_WIDTH, MIN_LABEL = 80, 10


def cells(r: RequestRow, label: int = MAX_LABEL) -> dict[str, Cell]:
    status = r.status if r.status == "success" else (r.error_class or "failure")
    cost = "unmetered" if r.unmetered else ("unpriced" if r.unpriced else money(r.cost_usd))
    return {
        "time": Cell(clock(r.started_at), r.started_at, justify="left"),
        "model": Cell(r.model or "(none)", r.model, justify="left", limit=label),
        "feature": Cell(r.feature or "(none)", r.feature, justify="left", limit=label),
        "status": Cell(
            status,
            r.status,
            style="" if r.status == "success" else "red",
            justify="left",
            limit=label,
        ),
        "in": Cell(count(r.input_tokens), r.input_tokens),
        "cached": Cell(count(r.cache_read_tokens), r.cache_read_tokens),
        "out": Cell(count(r.output_tokens), r.output_tokens),
        "cost": Cell(cost, r.cost_usd, style="yellow" if r.unpriced or r.unmetered else ""),
        "latency": Cell(ms(r.latency_ms), r.latency_ms),
        "attempt": Cell(str(r.attempt), r.attempt),
    }


def fitting(width: int, rows: list[dict[str, Cell]]) -> tuple[str, ...]:
    """The columns that fit in `width`, by PRIORITY, in the table's own order."""
    room, keep = width - SCROLLBAR, set()
    for key in PRIORITY:
        need = max([cell_len(dict(COLUMNS)[key])] + [cell_len(c[key].plain) for c in rows]) + PAD
        if key != "time" and need > room:
            break
        keep.add(key)
        room -= need
    return tuple(k for k, _ in COLUMNS if k in keep)


class RequestsTable(CellTable):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.ids: list[str] = []
        self.by_key: dict[str, RequestRow] = {}
        self.shown_columns: tuple[str, ...] = tuple(k for k, _ in COLUMNS)
        self._width = 0

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def laid_out(self) -> bool:
        """Its rows are drawn for its current width (a resize re-fits the columns, one frame
        after the table is first shown): what a snapshot taken over it must wait for."""
        return self.size.width > 0 and self._width == self.size.width

    def on_resize(self, event: Resize) -> None:
        if event.size.width == self._width:
            return
        old_limit = self.label_limit()
        self._width = event.size.width
        rows = tuple(self.by_key[k] for k in self.ids)
        limit = self.label_limit()
        # Redrawn only when the fit changes: a redraw behind a screen pushed over the table
        # (the request detail) would be left half done there, as nothing lays the hidden
        # screen out again until it is back.
        if limit != old_limit or fitting(self._width, [cells(r, limit) for r in rows]) != (
            self.shown_columns
        ):
            self.show(rows)

    def label_limit(self) -> int:
        return NARROW_LABEL if 0 < self._width < MEDIUM else MAX_LABEL

    def show(self, rows: tuple[RequestRow, ...]) -> None:
        """The rows, newest first. With the cursor on the first line the list follows the
        newest call (as `tail -f`); moved down, the cursor stays on its request as new ones
        arrive above it. Tracking the top request too scrolled the list down a row per new
        call, and a live list showed calls minutes old on its first lines."""
        selected = None if self.cursor_row <= 0 else self.selected_id()
        limit = self.label_limit()
        made = [cells(r, limit) for r in rows]
        shown = fitting(self._width, made) if self._width else self.shown_columns
        while self._width >= KEEP_COST_WIDTH and "latency" not in shown and limit > MIN_LABEL:
            limit = max(MIN_LABEL, limit - 4)
            made = [cells(r, limit) for r in rows]
            shown = fitting(self._width, made)
        if shown != self.shown_columns:
            self.clear(columns=True)
            self.shown_columns = shown
            for key, label in COLUMNS:
                if key in shown:
                    self.add_column(label, key=key)
        else:
            self.clear()
        self.ids = [row_key(r) for r in rows]
        self.by_key = {row_key(r): r for r in rows}
        for r, c in zip(rows, made, strict=True):
            self.add_row(*(c[k] for k in shown), key=row_key(r))
        if selected is not None and selected in self.ids:
            self.move_cursor(row=self.ids.index(selected))
        elif rows:
            self.move_cursor(row=0)

    def selected_id(self) -> str | None:
        return cursor_key(self)

    def selected_row(self) -> RequestRow | None:
        key = self.selected_id()
        return self.by_key.get(key) if key is not None else None

    def rows_in_order(self) -> list[RequestRow]:
        return [self.by_key[k] for k in self.ids]


def row_key(r: RequestRow) -> str:
    """Row ids are per database: with several open, the key carries the source too."""
    return f"{r.source}|{r.id}" if r.source else str(r.id)


def parse_row_key(key: str) -> tuple[str, int]:
    source, _, rid = key.rpartition("|")
    return source, int(rid)
