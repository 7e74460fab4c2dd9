"""llmtop's own commands in Textual's command palette (ctrl+p), beside Textual's system ones.

Each command runs the dashboard's action of the same name, so a command and its key can never
do different things; the palette is for the keys one does not remember.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from functools import partial

from textual.command import DiscoveryHit, Hit, Provider

#: (title, the dashboard action it runs, help line).
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("Window: last 5 minutes", "window('5m')", "key 1"),
    ("Window: last hour", "window('1h')", "key 2"),
    ("Window: last 6 hours", "window('6h')", "key 3"),
    ("Window: last 24 hours", "window('24h')", "key 4"),
    ("Window: last 7 days", "window('7d')", "key 5"),
    ("Window: last 30 days", "window('30d')", "key 6"),
    ("Custom window…", "custom_window", "w: a length (90m) or a range"),
    ("Pause / resume", "pause", "p: freeze the screen at this instant"),
    ("Group by…", "group", "g: any dimension or tag"),
    ("Filter…", "filter", "/: team=search model~gpt-4o* status=failure"),
    ("List requests", "list_requests", "l: the individual calls at this level"),
    ("Back up the drill path", "back", "esc"),
    ("Sort by the next column", "sort", "s"),
    ("Reverse the sort", "reverse_sort", "S"),
    ("Compare: previous window / same window last week", "compare", "d: the Δ column"),
    ("Time chart of the top series", "chart", "c: spend over the window"),
    ("Export the current view (csv or json)", "export", "e: to a file named on screen"),
    ("Copy the selected id", "copy_id", "y: a trace id, request id or group name (OSC 52)"),
    ("Focus the alerts list", "alerts", "a"),
    ("Reload now", "reload", "r: and re-read the rules file"),
    ("Help: every key", "help", "?"),
)


class LlmtopCommands(Provider):
    def _run(self, action: str) -> partial[object]:
        return partial(self.app.dashboard.run_action, action)  # type: ignore[attr-defined]

    async def discover(self) -> AsyncGenerator[DiscoveryHit, None]:
        for title, action, help_text in COMMANDS:
            yield DiscoveryHit(title, self._run(action), help=help_text)

    async def search(self, query: str) -> AsyncGenerator[Hit, None]:
        matcher = self.matcher(query)
        for title, action, help_text in COMMANDS:
            score = matcher.match(f"{title} {help_text}")
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._run(action), help=help_text)
