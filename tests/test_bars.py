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


def test_a_fixed_range_on_another_day_says_its_date() -> None:
    """'2h to 12:00:00' for yesterday's range read as a time still to come today."""
    import time

    from llmtop.tui import bars

    now = time.mktime((2026, 12, 6, 5, 35, 0, 0, 0, -1))
    db = [Path("x.db")]
    other = bars.topbar(db, 7200.0, now - 17.5 * 3600 - 300, None, now, None).plain
    assert "2h to 2026-12-05 12:00:00" in other, other
    today = bars.topbar(db, 3600.0, now - 1800, None, now, None).plain
    assert "1h to 05:05:00" in today and "2026-12-06" not in today, today
