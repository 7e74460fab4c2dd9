"""One request: every stored field, and the other attempts of its trace."""

from __future__ import annotations

from llmtop.store.views import RequestDetail
from llmtop.tui.format import money, ms, safe, stamp
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def _value(name: str, v: object) -> Text:
    if v is None:
        return Text("—", style="dim")
    if name in ("started_at", "ended_at") and isinstance(v, float):
        return safe(f"{stamp(v)}  ({v:.3f})")
    if name.endswith("_usd") and isinstance(v, (int, float)):
        return safe(f"{money(float(v))}  ({v:.10g})")
    if name.endswith("_ms") and isinstance(v, (int, float)):
        return safe(ms(float(v)))
    return safe(v)


class DetailScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,backspace", "dismiss", "Close"),
        Binding("y", "copy_id", "Copy trace id"),
    ]

    def __init__(self, detail: RequestDetail) -> None:
        super().__init__()
        self.detail = detail

    def compose(self) -> ComposeResult:
        fields = Table(box=None, show_header=False, padding=(0, 1))
        fields.add_column(style="bold")
        fields.add_column()
        for name, v in self.detail.fields:
            fields.add_row(Text(name), _value(name, v))
        attempts = Table(box=None, padding=(0, 1))
        for col in ("id", "try", "model", "status", "cost", "latency"):
            attempts.add_column(col)
        for a in self.detail.attempts:
            attempts.add_row(
                Text(str(a.id)),
                Text(str(a.attempt)),
                safe(a.model),
                safe(a.status if a.status == "success" else (a.error_class or "failure")),
                Text(money(a.cost_usd)),
                Text(ms(a.latency_ms)),
            )
        d = dict(self.detail.fields)
        with VerticalScroll(id="detail-body"):
            yield Static(Text(f"Request #{d.get('id')}", style="bold"), classes="title")
            yield Static(fields)
            yield Static(
                Text(f"Attempts in trace {d.get('trace_id') or '—'}", style="bold"), classes="title"
            )
            yield Static(attempts)

    def action_copy_id(self) -> None:
        """The trace id (what a log search or the provider's dashboard knows the call by), or
        the request's id when it has none; OSC 52, so it works over ssh."""
        d = dict(self.detail.fields)
        what, value = (
            ("trace id", d.get("trace_id")) if d.get("trace_id") else ("request id", d.get("id"))
        )
        self.app.copy_to_clipboard(str(value))
        self.notify(f"copied {what} {value}", timeout=3, markup=False)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
