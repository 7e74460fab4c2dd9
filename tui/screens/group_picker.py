"""`g`: choose the grouping dimension, including extra tags found in the data."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class GroupPicker(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, dimensions: tuple[str, ...], current: str) -> None:
        super().__init__()
        self.dimensions = dimensions or (current,)
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box"):
            yield Static("Group by", classes="title")
            yield OptionList(*(Option(Text(d), id=d) for d in self.dimensions), id="picker")

    def on_mount(self) -> None:
        picker = self.query_one(OptionList)
        if self.current in self.dimensions:
            picker.highlighted = self.dimensions.index(self.current)
        picker.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
