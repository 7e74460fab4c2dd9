"""The alert detail screen as pictures (80×24, 120×40, 200×60), and the panel's lines that
lead to it: order held while focused, new lines marked, resolved and escalated incidents.

The pictures use the snapshot tests' pinned database and frozen clock, with an incident's
states set on the dashboard (frozen values, see tests/test_snapshots._incident_states); the
figures and the chart are read from the database by the screen's own worker.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from llmtop.tui.screens.alert_detail import AlertDetailScreen
from llmtop.tui.widgets.alerts_panel import AlertsPanel
from textual.pilot import Pilot

from tests.test_snapshots import _incident_states, settle, stable_db  # noqa: F401
from tests.tui_fixtures import NOW, build, make_app
from tests.tui_fixtures import settle as settle_app


async def _open_detail(pilot: Pilot[Any]) -> None:
    await settle(pilot)
    pilot.app.dashboard.alert_states = _incident_states()  # type: ignore[attr-defined]
    await settle(pilot)
    await pilot.press("a", "enter")
    await settle(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
def test_alert_detail_snapshot(snap_compare: Any, stable_db: Path, size: tuple[int, int]) -> None:  # noqa: F811
    assert snap_compare(make_app(stable_db), terminal_size=size, run_before=_open_detail)


def _lines(app: Any) -> list[str]:
    ol = app.query_one(AlertsPanel).query_one("#alert-list")
    return [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]


async def test_detail_figures_from_the_database(llmtop_db: Path) -> None:
    """The numbers are the scope's own: summarize's last hour against the windows before."""
    build(llmtop_db)
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle_app(app, pilot)
        app.dashboard.alert_states = _incident_states()
        await settle_app(app, pilot)
        await pilot.press("a", "enter")
        await settle_app(app, pilot)
        screen = app.screen
        assert isinstance(screen, AlertDetailScreen) and screen.figures is not None
        f = screen.figures
        # The fixture: 20 of its 60 calls in the last hour are summarize's; nothing before.
        assert f.requests == 20 and f.spend > 0 and f.baseline == ()
        assert "no data" in str(screen.query_one("#alert-numbers").render())
        assert abs(sum(v for _, v in f.series) - f.spend) < 1e-9
        await pilot.press("escape")
        assert app.screen is app.dashboard


async def test_order_holds_while_focused_and_new_lines_are_marked(llmtop_db: Path) -> None:
    build(llmtop_db)
    app = make_app(llmtop_db)
    states = _incident_states()
    async with app.run_test(size=(140, 40)) as pilot:
        await settle_app(app, pilot)
        app.dashboard.alert_states = states
        await settle_app(app, pilot)
        await pilot.press("a")
        assert [x.split()[1] for x in _lines(app)] == ["feature=summarize", "feature=classify"]
        # The engine re-sorts (the classify warning now first) and a new incident comes in
        # first: the lines hold their places, the new one goes last with a mark.
        new = replace(states[-1], fingerprint="new|feature=chat", scope="feature=chat")
        app.dashboard.alert_states = [new, states[-1], *states[:-1]]
        await pilot.pause()
        lines = _lines(app)
        assert [x.split("·")[0].split()[-1] for x in lines] == [
            "feature=summarize",
            "feature=classify",
            "feature=chat",
        ]
        assert lines[2].startswith("● ") and not lines[0].startswith("●")
        # Focus elsewhere: the engine's order returns, unmarked.
        await pilot.press("tab")
        await pilot.pause()
        assert [x.split()[1] for x in _lines(app)][0] == "feature=chat"
        assert not any(x.startswith("●") for x in _lines(app))


async def test_resolved_and_escalated_lines(llmtop_db: Path) -> None:
    build(llmtop_db)
    app = make_app(llmtop_db)
    states = _incident_states()
    gone = [replace(s, state="resolved", last_seen=NOW - 60) for s in states[:-1]]
    up = replace(states[-1], severity="critical", escalated=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle_app(app, pilot)
        app.dashboard.alert_states = [up, *gone]
        await settle_app(app, pilot)
        lines = _lines(app)
        assert len(lines) == 2, lines  # the resolved incident: one line, its 5 related folded
        assert lines[0].startswith(" CRITICAL  escalated ") and "feature=classify" in lines[0]
        assert lines[1].startswith(" ✓ resolved 11:59 feature=summarize · +5 related"), lines
        await pilot.press("a", "down", "k")  # no ack for what has resolved
        await settle_app(app, pilot)
        assert app.dashboard.alert_states[1].state == "resolved"


@pytest.mark.parametrize(
    "width,shows",
    [
        (80, "· team-support · 11:45 · +5 ·"),
        (120, "· team-support · 11:45 · +5 related (4 customer, 1 spike) ·"),
        (200, "owner team-support · since 11:45:00 · +5 related (4 customer, 1 spike)"),
    ],
)
async def test_owner_and_since_fit(llmtop_db: Path, width: int, shows: str) -> None:
    build(llmtop_db)
    app = make_app(llmtop_db)
    async with app.run_test(size=(width, 40)) as pilot:
        await settle_app(app, pilot)
        app.dashboard.alert_states = _incident_states()
        await settle_app(app, pilot)
        ol = app.query_one(AlertsPanel).query_one("#alert-list")
        first = _lines(app)[0]
        assert shows in first, first
        # ... and on screen, not past the ellipsis.
        assert shows in ol.render_line(0).text, first


def test_toast_is_one_line_with_the_incident_severity() -> None:
    """The toast's words: the incident's one severity (a warning root with a critical alert
    filed under it says CRITICAL, as the panel does), escalated when the engine marked it, and
    never a line break, whatever a tag value holds."""
    from llmtop.tui.alerting import toast_for

    root, spike, *customers, other = _incident_states()
    root = replace(root, severity="warning", title="summarize spend\n$44.10/15m")
    states = [root, spike, *customers, other]
    text, severity = toast_for([root], states)
    assert text == "CRITICAL feature=summarize · summarize spend $44.10/15m · +5 related"
    assert severity == "error"
    escalated = [replace(root, escalated=True), spike, *customers, other]
    text, _ = toast_for([root], escalated)
    assert text.startswith("CRITICAL (escalated) feature=summarize · ")
    text, severity = toast_for([other, root], states)
    assert text.startswith("WARNING feature=classify · ") and text.endswith(" · +1 more new")
    assert severity == "warning"


def test_a_rate_alerts_spend_is_context_not_a_verdict() -> None:
    """A cache-hit drop's detail showed '+81.3σ · ×5.5 its baseline' in bold, as if spend were
    its verdict; its verdict is the rate in its title."""
    from llmtop.tui.alerting import AlertFigures
    from llmtop.tui.screens.alert_detail import numbers_text

    f = AlertFigures(
        window=900.0,
        spend=5.5,
        requests=100,
        baseline=(1.0, 1.0, 1.0),
        baseline_label="same 15m on the previous 3 days",
        series=(),
        bucket=60.0,
        now=0.0,
    )
    rate = numbers_text("cache_hit_drop", "kb cache hit rate 70% → 28%", f, None)
    assert "Spend, for context: Last 15m" in rate.plain
    spend = numbers_text("anomaly", "kb burning", f, None)
    assert "for context" not in spend.plain and "×5.5 its baseline" in spend.plain


def test_a_spikes_detail_compares_with_the_normal_its_headline_names(llmtop_db: Path) -> None:
    """The detail's baseline is the spike rule's own normal (the ranges it judged against),
    read at the pass's instant: its mean is the headline's "its normal $X/h" and its ratio the
    headline's. Worked out afresh it said x4.7 beside a headline's 4.4x, and later +1.3σ under
    a critical alert."""
    import re

    from llmtop.alerts.evaluate import evaluate
    from llmtop.alerts.rules import Rules
    from llmtop.alerts.state import states, sync_pass
    from llmtop.store.alert_state import AlertStore
    from llmtop.store.reader import Reader
    from llmtop.tui.alerting import read_figures, rule_window

    from tests.builders import prompt_v2_ships, write
    from tests.test_tui_alerts import steady
    from tests.tui_fixtures import NOW

    write(llmtop_db, steady(NOW - 3 * 3600, NOW - 300))
    write(llmtop_db, prompt_v2_ships(NOW))
    r = Reader(llmtop_db)
    try:
        fired = evaluate(r, Rules(), NOW)
    finally:
        r.close()
    store = AlertStore(llmtop_db)
    try:
        sync_pass(store, fired, NOW)
        (spike,) = [s for s in states(store, NOW) if s.rule == "spike"]
    finally:
        store.close()
    assert spike.base, spike
    m = re.search(r"burning \$([\d.,]+)/h .*, ([\d.]+)× its normal \$([\d.,]+)/h", spike.title)
    assert m, spike.title
    now_h, ratio, normal_h = float(m[1]), float(m[2]), float(m[3].replace(",", ""))
    window = rule_window(Rules(), "spike")
    f = read_figures(llmtop_db, spike, window, NOW + 20)  # opened 20 s after the pass
    assert f.now == NOW
    assert f.spend * 3600 / window == pytest.approx(now_h, rel=0.01)
    assert f.mean is not None and f.mean * 3600 / window == pytest.approx(normal_h, rel=0.01)
    assert f.ratio == pytest.approx(ratio, abs=0.051)
    assert f.baseline_label.startswith("its normal, ")
