"""Tokens and latency: prompt growth and slow tails show up here first."""

from __future__ import annotations

from llmtop.store.views import Snapshot
from llmtop.tui.format import count, ms
from llmtop.tui.widgets.panel import Panel, line, lines
from rich.text import Text


class TokensPanel(Panel):
    TITLE = "Tokens & latency"

    def body(self, s: Snapshot) -> Text:
        t = s.tokens
        ratio = "—" if t.out_in_ratio is None else f"{t.out_in_ratio:.2f}"
        return lines(
            line(f"in p50 {count(t.input_p50)} p90 ", (count(t.input_p90), "bold")),
            line(
                f"out p50 {count(t.output_p50)} p90 ",
                (count(t.output_p90), "bold"),
                f" · o/i {ratio}",
            ),
            line(f"latency p50 {ms(t.latency_p50)} p95 ", (ms(t.latency_p95), "bold")),
            line(f"p99 {ms(t.latency_p99)}"),
            line(f"TTFT p50 {ms(t.ttft_p50)} p95 {ms(t.ttft_p95)}"),
        )
