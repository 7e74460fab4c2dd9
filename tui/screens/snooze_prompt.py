"""`z` on an alert: how long to snooze it. Four usual lengths, or one typed; it validates in
place, so a typo shows its error rather than snoozing for a length nobody meant."""

from __future__ import annotations

from llmtop.tui.alerting import SNOOZE_CHOICES, parse_snooze
from llmtop.tui.format import safe, until
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option


class SnoozePrompt(ModalScreen["float | None"]):
    """Dismisses with the instant the snooze ends (epoch seconds), or None on esc."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, scope: str, now: float) -> None:
        super().__init__()
        self.scope = scope
        self.now = now

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box"):
            title = Text("Snooze ")
            title.append_text(safe(self.scope or "all", "bold"))
            title.append(" for how long? (it pages again if still firing then)")
            yield Static(title, classes="title")
            yield OptionList(
                *(
                    Option(f"{c:<22} until {until(parse_snooze(c, self.now), self.now)}", id=c)
                    for c in SNOOZE_CHOICES
                ),
                id="snooze-choices",
            )
            # Not select_on_focus: the first key typed over the list focuses the field, and the
            # next would replace it.
            yield Input(
                placeholder="or type one: 90m, 2h, until 18:30",
                id="snooze-input",
                select_on_focus=False,
            )
            yield Static("", id="prompt-error")

    def on_mount(self) -> None:
        self.query_one(OptionList).highlighted = 1  # 1h, the old fixed length
        self.query_one(OptionList).focus()

    def on_key(self, event: events.Key) -> None:
        """Typing while the list has focus types into the field: `z 9 0 m enter` snoozed for
        the highlighted 1h, the typed length lost without a word."""
        inp = self.query_one(Input)
        if self.query_one(OptionList).has_focus and event.is_printable and event.character:
            event.stop()
            event.prevent_default()
            inp.focus()
            inp.insert_text_at_cursor(event.character)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.choose(event.option.id or "")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.choose(event.value)

    def choose(self, text: str) -> None:
        try:
            until = parse_snooze(text, self.now)
        except ValueError as exc:
            self.query_one("#prompt-error", Static).update(Text(str(exc), style="bold red"))
            return
        self.dismiss(until)

    def action_cancel(self) -> None:
        self.dismiss(None)
