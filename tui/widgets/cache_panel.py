"""Cache: provider prompt-cache hits and what they and LiteLLM's response cache saved."""

from __future__ import annotations

from llmtop.store.views import Snapshot
from llmtop.tui.format import money, pct
from llmtop.tui.widgets.panel import Panel, line, lines
from rich.text import Text


class CachePanel(Panel):
    TITLE = "Cache"

    def body(self, s: Snapshot) -> Text:
        c = s.cache
        # A source that cannot price the cached reads (a proxy's table) says n/a, never $0.
        saved = (
            ("n/a", "dim")
            if "saved_usd" in s.unavailable
            else (money(c.saved_prompt_cache), "green")
        )
        return lines(
            line("prompt-cache hits ", (pct(c.hit_rate), "bold")),
            line("cached input share ", (pct(c.read_share), "bold")),
            line("saved by cached reads ", saved),
            line(f"response cache {c.response_cache_hits} hits"),
            line("saved by response cache ", (money(c.saved_response_cache), "green")),
        )
