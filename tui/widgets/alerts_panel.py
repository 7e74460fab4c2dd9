"""Firing alerts: severity, scope, what, likely cause, owner, since; ack, snooze, jump."""

from __future__ import annotations

import time
from typing import Any

from llmtop.tui.format import clock, safe
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import OptionList
from textual.widgets.option_list import Option

SNOOZE_SECONDS = 3600.0


def _line(a: Any) -> Text:
    sev = getattr(a, "severity", "warning")
    st = getattr(a, "state", "open")
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(
        f" {sev.upper():8} ",
        style="bold reverse red" if sev == "critical" else "bold reverse yellow",
    )
    if st != "open":
        t.append(f" {st} ", style="dim")
    t.append(" ")
    t.append_text(safe(getattr(a, "scope", "") or "all", "bold"))
    t.append(" · ")
    t.append_text(safe(getattr(a, "title", "")))
    t.append(" · cause: ")
    t.append_text(safe(getattr(a, "cause", "") or "—", "italic"))
    t.append(" · owner: ")
    t.append_text(safe(getattr(a, "owner", None) or "—", "bold"))
    since = getattr(a, "since", None) or getattr(a, "first_seen", None)
    if since:
        t.append(f" · since {clock(since)}", style="dim")
    return t


class AlertsPanel(Vertical):
    BINDINGS = [
        Binding("k", "ack", "Ack"),
        Binding("z", "snooze", "Snooze 1h"),
        Binding("enter", "jump", "Explain", show=False),
    ]
    states: reactive[list[Any]] = reactive(list)

    def compose(self) -> ComposeResult:
        yield OptionList(id="alert-list")

    def on_mount(self) -> None:
        self.border_title = "Alerts"
        self.display = False

    def watch_states(self, states: list[Any]) -> None:
        visible = [s for s in states if getattr(s, "state", "open") != "resolved"]
        self.display = bool(visible)
        ol = self.query_one(OptionList)
        highlighted = ol.highlighted
        ol.clear_options()
        ol.add_options([Option(_line(s), id=s.fingerprint) for s in visible])
        if visible:
            ol.highlighted = min(highlighted or 0, len(visible) - 1)
        self._visible = visible

    def focus_list(self) -> None:
        if self.display:
            self.query_one(OptionList).focus()

    def _selected(self) -> Any | None:
        ol = self.query_one(OptionList)
        vis = getattr(self, "_visible", [])
        if ol.highlighted is None or ol.highlighted >= len(vis):
            return None
        return vis[ol.highlighted]

    def action_ack(self) -> None:
        a = self._selected()
        if a is not None:
            self.app.change_alert(a.fingerprint, "ack")  # type: ignore[attr-defined]

    def action_snooze(self) -> None:
        a = self._selected()
        if a is not None:
            self.app.change_alert(a.fingerprint, "snooze", time.time() + SNOOZE_SECONDS)  # type: ignore[attr-defined]

    def action_jump(self) -> None:
        a = self._selected()
        drill = getattr(a, "drill", None) if a is not None else None
        if drill:
            self.app.jump_to(*drill)  # type: ignore[attr-defined]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_jump()
