"""The llmtop Textual app: the stylesheet, the dashboard as its first screen, and the entry point.

Everything the user sees and does lives in the DashboardScreen (tui/screens/dashboard.py), its
reads in tui/reading.py and its alert passes in tui/alerting.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from llmtop.store.pg_db import is_pg_url
from llmtop.tui.commands import LlmtopCommands
from llmtop.tui.screens.dashboard import DashboardScreen
from textual.app import App
from textual.screen import Screen


class LlmtopApp(App[None]):
    CSS_PATH = "llmtop.tcss"
    TITLE = "llmtop"
    #: ctrl+p lists llmtop's own commands beside Textual's (tui/commands.py).
    COMMANDS = App.COMMANDS | {LlmtopCommands}

    def __init__(
        self,
        db_path: str | Path,
        *,
        window: str | None = None,
        clock: Callable[[], float] = time.time,
        watch: bool = True,
        alerts: bool = True,
        rules_path: Path | None = None,
        exit_after: float | None = None,
        more_dbs: Sequence[str | Path] = (),
    ) -> None:
        super().__init__()
        self.exit_after = exit_after
        #: The first screen, built here so a bad `window` fails before the terminal is taken.
        self.dashboard = DashboardScreen(
            # A postgresql:// URL (store.pg_db.PgUrl) stays one: Path() would make it a file.
            [db_path if is_pg_url(db_path) else Path(db_path), *(Path(p) for p in more_dbs)],
            window=window,
            clock=clock,
            watch=watch,
            alerts=alerts,
            rules_path=rules_path,
        )

    def get_default_screen(self) -> Screen[None]:
        return self.dashboard

    def on_mount(self) -> None:
        if self.exit_after is not None:
            self.set_timer(self.exit_after, self.exit)


def run_tui(
    db_paths: list[Path] | list[str],
    window: str | None = None,
    *,
    exit_after: float | None = None,
    rules_path: Path | None = None,
) -> int:
    """Entry point used by the CLI and `llmtop demo`."""
    app = LlmtopApp(
        db_paths[0],
        window=window,
        exit_after=exit_after,
        rules_path=rules_path,
        more_dbs=db_paths[1:],
    )
    app.run()
    return 0
