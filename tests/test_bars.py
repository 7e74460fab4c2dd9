"""The top bar's promise at 80 columns: the instant and window first, the database's own name
kept however deep its directory is."""

from __future__ import annotations

from pathlib import Path

from llmtop.tui import bars


def test_a_deep_database_path_keeps_its_file_name_and_the_instant_leads() -> None:
    deep = Path("/tmp/pytest-of-root/pytest-123/test_dashboard_drill_down_and_0/sub/demo.db")
    line = bars.topbar([deep], 3600.0, None, None, 1_700_000_000.0, None).plain
    assert line.startswith("llmtop  ● live · last 1h")
    assert line.endswith("demo.db") and "…" in line
    assert len(line) - line.rindex("…") == bars.PATH_CHARS
    short = Path("/srv/llmtop.db")
    assert bars.topbar([short], 3600.0, None, None, 0.0, None).plain.endswith(" /srv/llmtop.db")
