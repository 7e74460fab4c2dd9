"""Individual requests at the bottom of a drill path, newest first."""

from __future__ import annotations

from llmtop.store.views import RequestRow
from llmtop.tui.format import clock, count, money, ms
from llmtop.tui.widgets.cell import MAX_LABEL, Cell, CellTable, cursor_key

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


class RequestsTable(CellTable):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.ids: list[str] = []
        self.by_key: dict[str, RequestRow] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, rows: tuple[RequestRow, ...]) -> None:
        selected = self.selected_id()
        self.clear()
        self.ids = [row_key(r) for r in rows]
        self.by_key = {row_key(r): r for r in rows}
        for r in rows:
            status = r.status if r.status == "success" else (r.error_class or "failure")
            cost = "unmetered" if r.unmetered else ("unpriced" if r.unpriced else money(r.cost_usd))
            self.add_row(
                Cell(clock(r.started_at), r.started_at, justify="left"),
                Cell(r.model or "(none)", r.model, justify="left", limit=MAX_LABEL),
                Cell(r.feature or "(none)", r.feature, justify="left", limit=MAX_LABEL),
                Cell(
                    status, r.status, style="" if r.status == "success" else "red", justify="left"
                ),
                Cell(count(r.input_tokens), r.input_tokens),
                Cell(count(r.cache_read_tokens), r.cache_read_tokens),
                Cell(count(r.output_tokens), r.output_tokens),
                Cell(cost, r.cost_usd, style="yellow" if r.unpriced or r.unmetered else ""),
                Cell(ms(r.latency_ms), r.latency_ms),
                Cell(str(r.attempt), r.attempt),
                key=row_key(r),
            )
        if selected is not None and selected in self.ids:
            self.move_cursor(row=self.ids.index(selected))

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
