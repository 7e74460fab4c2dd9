"""A one-line prompt that validates before it closes, so a typo shows its error in place (and,
with a suggester, completes as one types: `right` accepts)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from llmtop.store.filters import parse_window
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Static


def parse_range(text: str) -> tuple[float, float | None]:
    """'3h' → (3h, None: live); 'START .. END' (local time) → (length, fixed end)."""
    if ".." not in text:
        return parse_window(text), None
    a, _, b = text.partition("..")
    try:
        start = datetime.fromisoformat(a.strip()).timestamp()
        end = datetime.fromisoformat(b.strip()).timestamp()
    except ValueError as exc:
        raise ValueError(f"bad range {text!r}: use YYYY-MM-DD HH:MM .. YYYY-MM-DD HH:MM") from exc
    if end <= start:
        raise ValueError("the range must end after it starts")
    return end - start, end


class PromptScreen(ModalScreen[Any]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        label: str,
        value: str,
        parse: Callable[[str], Any],
        suggester: Suggester | None = None,
    ) -> None:
        super().__init__()
        self.label = label
        self.value = value
        self.parse = parse
        self.suggester = suggester

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box"):
            yield Static(Text(self.label), classes="title")
            yield Input(value=self.value, id="prompt-input", suggester=self.suggester)
            yield Static("", id="prompt-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            result = self.parse(event.value)
        except ValueError as exc:
            self.query_one("#prompt-error", Static).update(Text(str(exc), style="bold red"))
            return
        self.dismiss(result)

    def on_input_changed(self, _event: Input.Changed) -> None:
        # The error was about the text as submitted: once it is edited, it says nothing (a
        # corrected "custmer" kept "no dimension custmer" on screen).
        self.query_one("#prompt-error", Static).update("")

    def action_cancel(self) -> None:
        self.dismiss(None)
