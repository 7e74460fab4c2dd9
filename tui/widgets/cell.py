"""A table cell that shows formatted text but sorts by its raw value."""

from __future__ import annotations

from typing import Any

from llmtop.tui.format import safe
from rich.text import Text
from textual.widgets import DataTable

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
