"""A table cell that shows formatted text but sorts by its raw value."""

from __future__ import annotations

from typing import Any

from llmtop.tui.format import safe
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widgets import DataTable

#: Rendered cells kept per table (a few screens' worth at 12 columns).
CELL_CACHE = 20_000

#: Widest a tag value is shown in a cell: a 200-character value would push every other column
#: off screen. The cell still sorts (and drills) by the whole value.
MAX_LABEL = 40


class Cell(Text):
    def __init__(
        self,
        shown: str | Text,
        sort_value: Any,
        style: str = "",
        justify: str = "right",
        limit: int | None = None,
    ):
        text = shown if isinstance(shown, Text) else safe(shown)
        plain = text.plain
        if limit is not None and len(plain) > limit:
            plain = plain[: limit - 1] + "…"
        super().__init__(plain, style=style or text.style, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        self.sort_value = sort_value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and self.plain == other.plain and self.style == other.style

    __hash__ = Text.__hash__  # type: ignore[assignment]


def sort_key(value: Any) -> tuple[int, Any]:
    """Sort missing values last whatever the direction of the number."""
    v = getattr(value, "sort_value", value)
    if v is None:
        return (1, 0)
    return (0, v)


def cursor_key(table: DataTable[Any]) -> str | None:
    """The row key under a table's cursor, or None when there is no row (or no cursor yet)."""
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except Exception:
        return None


class CellTable(DataTable[Cell]):
    """A DataTable that re-renders only the cells whose text changed.

    Why: DataTable keys its render caches on a counter that every `update_cell` bumps, so one
    changed figure (a new call moves every row's share) re-renders every visible cell through
    Rich, ~0.2-0.6 ms each: 100-250 ms a frame for a full screen of rows, most of call → screen
    (benchmarks/latency.py). Here a cell's rendering is kept under what decides it (its text and
    style, place, width, cursor and hover), and so is each row's line (the texts of its cells
    and the column widths), so a frame renders only what changed. Headers and row labels go
    through DataTable as before.
    """

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """A screen line from its row's cached lines: joined and simplified once per content."""
        try:
            row_key, y_offset = self._get_offsets(y)
        except LookupError:
            return super()._render_line(y, x1, x2, base_style)
        parts = self._render_line_in_row(
            row_key, y_offset, base_style, self.cursor_coordinate, self.hover_coordinate
        )
        cache: dict[Any, Any] = self.__dict__.setdefault("_lines_seen", {})
        key = (y, x1, x2, self.size.width, base_style)
        hit = cache.get(key)
        if hit is not None and hit[0] is parts:
            return hit[1]
        strip = super()._render_line(y, x1, x2, base_style)
        if len(cache) >= CELL_CACHE // 10:
            cache.clear()
        cache[key] = (parts, strip)  # `parts` held here, so an identical object means the same
        return strip

    def _render_line_in_row(
        self,
        row_key: Any,
        line_no: int,
        base_style: Style,
        cursor_location: Any,
        hover_location: Any,
    ) -> tuple[list[list[Segment]], list[list[Segment]]]:
        render = super()._render_line_in_row
        try:
            row_index = self._row_locations.get(row_key)
            cells = self._data[row_key]
        except (KeyError, TypeError):
            return render(row_key, line_no, base_style, cursor_location, hover_location)
        if row_index is None or self._labelled_row_exists:
            return render(row_key, line_no, base_style, cursor_location, hover_location)
        row_cursor = self.cursor_type == "row"
        key = (
            row_key,
            row_index,
            line_no,
            base_style,
            cursor_location.row == row_index if row_cursor else cursor_location,
            hover_location.row == row_index if row_cursor else hover_location,
            self.cursor_type,
            self.show_cursor,
            self._show_hover_cursor,
            self._pseudo_class_state,
            self.fixed_columns,
            tuple(c.get_render_width(self) for c in self.ordered_columns),
            tuple(
                (getattr(v, "plain", v), str(getattr(v, "style", "")))
                for v in (cells.get(c.key) for c in self.ordered_columns)
            ),
        )
        cache: dict[Any, Any] = self.__dict__.setdefault("_rows_seen", {})
        lines = cache.get(key)
        if lines is None:
            if len(cache) >= CELL_CACHE // 10:
                cache.clear()
            lines = cache[key] = render(
                row_key, line_no, base_style, cursor_location, hover_location
            )
        return lines

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        render = super()._render_cell
        if row_index < 0 or column_index < 0:
            return render(row_index, column_index, base_style, width, cursor, hover)
        try:
            row_key = self._row_locations.get_key(row_index)
            column_key = self._column_locations.get_key(column_index)
            cell = self._data[row_key][column_key]
            height = self.rows[row_key].height
        except KeyError:
            return render(row_index, column_index, base_style, width, cursor, hover)
        cache: dict[Any, list[list[Segment]]] = self.__dict__.setdefault("_cells_seen", {})
        key = (
            row_key,
            column_key,
            row_index,
            column_index,
            base_style,
            cursor,
            hover,
            self._show_hover_cursor,
            self._pseudo_class_state,
            self.cursor_type,
            width,
            height,
            getattr(cell, "plain", cell),
            str(getattr(cell, "style", "")),
            getattr(cell, "justify", None),
        )
        lines = cache.get(key)
        if lines is None:
            if len(cache) >= CELL_CACHE:
                cache.clear()
            lines = cache[key] = render(row_index, column_index, base_style, width, cursor, hover)
        return lines
