"""SVG snapshots of the dashboard at the three sizes issue #16 names: 80×24 (columns give way,
names capped), 120×40 and 200×60 (every column), with the clock frozen and the fixture's ids
pinned (see tests/test_snapshots.py for why each is needed).

Regenerate with `pytest tests/test_snapshots_table.py --snapshot-update` and read the SVG diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_snapshots import SnapCompare, keys_then_settle, stable_db  # noqa: F401
from tests.tui_fixtures import make_app


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard(snap_compare: SnapCompare, stable_db: Path, size: tuple[int, int]) -> None:  # noqa: F811
    app = make_app(stable_db)
    assert snap_compare(app, terminal_size=size, run_before=keys_then_settle())


def test_dashboard_sorted_and_paused_80x24(snap_compare: SnapCompare, stable_db: Path) -> None:  # noqa: F811
    """The header's sort arrow and the paused top bar at the narrowest size."""
    app = make_app(stable_db)
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys_then_settle("s", "S", "p"))


def test_chart_120x40(snap_compare: SnapCompare, stable_db: Path) -> None:  # noqa: F811
    """`c`: one line per top series, a legend, $ and clock-time axes with their labels."""
    app = make_app(stable_db)
    assert snap_compare(app, terminal_size=(120, 40), run_before=keys_then_settle("c"))
