"""Alerts in the running app: one appears as rows are written, is acknowledged, and explains itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from llmtop.alerts.rules import default_rules_path
from llmtop.store.alert_state import AlertStore
from llmtop.tui.widgets.alerts_panel import AlertsPanel

from tests.builders import payload, prompt_v2_ships, write
from tests.tui_fixtures import NOW, make_app, settle

RULES = """
[spike]
group_by = ["feature"]
window = "5m"
trailing = "2h"
ratio = 3.0
min_change_usd = 0.05

[owners]
"feature=support-summarize" = "team-support"
"""


@pytest.fixture(autouse=True)
def _alerts_judge_new_rows_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """New rows start an alert pass at once, not after ALERT_MIN_GAP since the last one (which
    under a busy writer keeps passes apart): a test writes its incident right after the first
    pass, and would otherwise wait for the 10-second tick."""
    from llmtop.tui.screens import dashboard

    monkeypatch.setattr(dashboard, "ALERT_MIN_GAP", 0.0)


def steady(start: float, end: float, step: float = 30.0) -> list[dict]:
    out, t = [], start
    while t < end:
        for feat in ("chat", "support-summarize"):
            out.append(
                payload(
                    start=t,
                    feature=feat,
                    team="support",
                    prompt_version="v1",
                    input_tokens=2000,
                    output_tokens=200,
                )
            )
        t += step
    return out


async def wait_for(pilot, predicate, tries: int = 200) -> None:  # noqa: ANN001
    for _ in range(tries):  # readiness wait on behaviour, not a timing assertion
        if predicate():
            return
        await pilot.pause(0.05)


async def test_alert_appears_live_is_acked_and_jumps(llmtop_db: Path) -> None:
    write(llmtop_db, steady(NOW - 7200, NOW - 300))
    default_rules_path(llmtop_db).write_text(RULES)
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await settle(app, pilot)
        assert not [s for s in app.dashboard.alert_states if s.state != "resolved"]
        assert not app.query_one(AlertsPanel).display

        # The incident: prompt v2 ships and support-summarize's input grows 10x, live.
        write(llmtop_db, prompt_v2_ships(NOW))
        await wait_for(pilot, lambda: any(s.state == "open" for s in app.dashboard.alert_states))
        (alert,) = [s for s in app.dashboard.alert_states if s.state == "open"]
        assert alert.scope == "feature=support-summarize"
        assert alert.owner == "team-support"
        assert "prompt_version" in alert.cause and "v2" in alert.cause
        await pilot.pause()
        panel = app.query_one(AlertsPanel)
        assert panel.display
        # The toast is on screen and rendered (a crash here once took the app down).
        await pilot.pause(0.3)
        toasts = list(app.screen.query("Toast"))
        assert toasts, "no toast for the new alert"
        (toast,) = toasts
        # One line: severity, scope, headline (the owner and cause are in the detail screen).
        assert str(toast.render()).startswith("CRITICAL feature=support-summarize · ")

        await pilot.press("a")
        assert app.focused is not None and app.focused.id == "alert-list", app.focused
        await pilot.press("k")
        await wait_for(pilot, lambda: any(s.state == "acked" for s in app.dashboard.alert_states))
        assert [
            s.state for s in app.dashboard.alert_states if s.fingerprint == alert.fingerprint
        ] == ["acked"]
        # The acknowledgement is in the database: a second reader sees it.
        from llmtop.alerts.state import sync

        other = AlertStore(llmtop_db)
        try:
            new, states = sync(other, [a for a in [alert]], NOW)  # the same alert, still firing
            assert new == [] and states[0].state == "acked"
        finally:
            other.close()

        await pilot.press("enter")  # the alert's detail ...
        await settle(app, pilot)
        await pilot.press("enter")  # ... and on to the drill-down that explains it
        await settle(app, pilot)
        flt, group = alert.drill
        assert [f"{c.key}={c.value}" for c in app.dashboard.view.path] == [flt]
        assert app.dashboard.view.group_by == group
        assert "feature=support-summarize" in str(app.screen.query_one("#crumbs").render())


async def test_the_cause_has_a_line_of_its_own_below_wide_terminals(llmtop_db: Path) -> None:
    """At 120 columns the headline fills the line: the cause, what on-call came for, goes on
    a second line while the list has room for it, and is on screen, not cut away."""
    write(llmtop_db, steady(NOW - 7200, NOW - 300))
    default_rules_path(llmtop_db).write_text(RULES)
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        write(llmtop_db, prompt_v2_ships(NOW))
        await wait_for(pilot, lambda: any(s.state == "open" for s in app.dashboard.alert_states))
        await pilot.pause()
        ol = app.query_one(AlertsPanel).query_one("#alert-list")
        shown = ["".join(seg.text for seg in ol.render_line(y)) for y in range(ol.size.height)]
        assert len(shown) == 2, shown
        assert "feature=support-summarize" in shown[0] and "cause:" not in shown[0], shown
        assert "cause:" in shown[1] and "v2" in shown[1], shown


async def test_a_past_window_leaves_the_live_alerts_alone(llmtop_db: Path) -> None:
    """Looking at last night (`w`, a range) used to run the alert passes at the range's end:
    nothing fired then, so every open incident, acked ones too, was resolved in the shared
    state, and opened again (acks lost, paging again) back in the present. Alerts are live
    whatever the screen shows."""
    from llmtop.alerts import state

    write(llmtop_db, steady(NOW - 7200, NOW - 300))
    default_rules_path(llmtop_db).write_text(RULES)
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(app, pilot)
        write(llmtop_db, prompt_v2_ships(NOW))
        await wait_for(pilot, lambda: any(s.state == "open" for s in app.dashboard.alert_states))
        await pilot.press("a", "k")
        await wait_for(pilot, lambda: any(s.state == "acked" for s in app.dashboard.alert_states))
        passes = app.dashboard.alerts.last_pass
        await pilot.press("w", "ctrl+u")
        await pilot.press(*"2026-11-18 01:00 .. 2026-11-18 02:00", "enter")
        await settle(app, pilot)
        assert app.dashboard.range_end is not None and app.dashboard.range_end < NOW - 3600
        app.dashboard.alerts.evaluate()  # a pass, as the 10-second tick would start one
        await wait_for(pilot, lambda: app.dashboard.alerts.last_pass > passes)
        await settle(app, pilot)
        assert app.dashboard.alerts.last_pass > passes
        store = AlertStore(llmtop_db)
        try:
            got = {s.fingerprint: s.state for s in state.states(store, NOW)}
        finally:
            store.close()
        assert got and set(got.values()) == {"acked"}, got
        assert {s.state for s in app.dashboard.alert_states} == {"acked"}
        # The pass ran in the present, recorded (the shared state's guard against a look back,
        # alerts.state.LookBack, was not what saved it).
        assert not app.dashboard.error, app.dashboard.error


async def test_alert_passes_never_queue_up(llmtop_db: Path) -> None:
    """New rows ask for a pass every ALERT_MIN_GAP while a slow pass (an incident on a big file)
    runs: the asks fold into one more pass after it, never one thread each."""
    import threading

    write(llmtop_db, steady(NOW - 3600, NOW))
    app = make_app(llmtop_db, alerts=True)
    release = threading.Event()
    passes: list[int] = []

    def slow_pass() -> None:
        passes.append(threading.get_ident())
        release.wait(10)

    app.dashboard.alerts.run_pass = slow_pass  # type: ignore[method-assign]
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: len(passes) == 1)  # the first pass, after the first screen
        for _ in range(5):
            app.dashboard.alerts.evaluate()
        assert len(passes) == 1 and app.dashboard.alerts.again
        release.set()
        await wait_for(pilot, lambda: len(passes) == 2 and not app.dashboard.alerts.busy)
        await pilot.pause(0.2)
        assert len(passes) == 2


INCIDENT_RULES = """
[spike]
group_by = ["feature", "customer"]
window = "5m"
trailing = "2h"
ratio = 3.0
min_change_usd = 0.05
"""


def _customers_history(llmtop_db: Path) -> None:
    out, t = [], NOW - 7200
    while t < NOW - 300:
        for cust in ("acme", "globex", "initech"):
            out.append(payload(start=t, feature="summarize", customer=cust, prompt_version="v1"))
        t += 30
    write(llmtop_db, out)
    default_rules_path(llmtop_db).write_text(INCIDENT_RULES)


async def _deploy_breaks_three_customers(llmtop_db: Path, app, pilot) -> None:  # noqa: ANN001
    """Prompt v2 ships with 200x the input tokens; returns once its 4 alerts are in."""
    await settle(app, pilot)
    write(
        llmtop_db,
        [
            payload(
                start=NOW - 240 + i * 4,
                feature="summarize",
                customer=("acme", "globex", "initech")[i % 3],
                prompt_version="v2",
                input_tokens=20000,
            )
            for i in range(60)
        ],
    )
    await wait_for(
        pilot, lambda: len(app.dashboard.alert_states) == 4
    )  # the feature and 3 customers
    await settle(app, pilot)


async def test_an_incident_takes_one_line_and_one_toast(llmtop_db: Path) -> None:
    """One deploy breaks a feature and three of its customers: one line says so, space unfolds
    the three, and a single toast names how many alerts it folded in."""
    _customers_history(llmtop_db)
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await _deploy_breaks_three_customers(llmtop_db, app, pilot)
        await wait_for(pilot, lambda: bool(list(app.screen.query("Toast"))))
        await pilot.pause(0.3)
        roots = [s for s in app.dashboard.alert_states if s.parent is None]
        assert [s.scope for s in roots] == ["feature=summarize"], app.dashboard.alert_states
        panel = app.query_one(AlertsPanel)
        ol = panel.query_one("#alert-list")
        lines = [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]
        assert len(lines) == 1 and "+3 related (3 customer)" in lines[0], lines
        toasts = list(app.screen.query("Toast"))
        assert len(toasts) == 1
        assert str(toasts[0].render()).endswith(" · +3 related")

        await pilot.press("a", "space")
        lines = [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]
        assert len(lines) == 4 and all("└ " in x and "customer=" in x for x in lines[1:])
        # A new pass re-renders the list: the highlight stays on the same alert.
        await pilot.press("down", "down")
        assert ol.highlighted == 2
        panel.states = list(app.dashboard.alert_states)
        assert ol.highlighted == 2
        # The highlighted alert resolves: the highlight stays where it was, not on the first row.
        await pilot.press("down")
        gone = panel._selected().fingerprint
        panel.states = [s for s in app.dashboard.alert_states if s.fingerprint != gone]
        assert ol.highlighted == 2 and ol.option_count == 3
        panel.states = list(app.dashboard.alert_states)
        await pilot.press("space")
        assert ol.option_count == 1
        # Acking the line acks the incident.
        await pilot.press("k")
        await wait_for(pilot, lambda: {s.state for s in app.dashboard.alert_states} == {"acked"})
        assert {s.state for s in app.dashboard.alert_states} == {"acked"}


async def test_alerts_awaiting_analysis_share_one_line_and_do_not_page(
    llmtop_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of analysis budget, nothing yet ties an alert to an incident: they are shown on one
    line, unfoldable, and page nobody until a pass analyses them."""
    from llmtop.tui import alerting as app_module

    monkeypatch.setattr(app_module, "EXPLAIN_BUDGET", 0.0)
    _customers_history(llmtop_db)
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await _deploy_breaks_three_customers(llmtop_db, app, pilot)
        assert all(s.pending for s in app.dashboard.alert_states)
        ol = app.query_one(AlertsPanel).query_one("#alert-list")
        lines = [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]
        assert len(lines) == 1, lines
        assert "4 alerts, likely causes being analysed (3 customer, 1 feature)" in lines[0]
        assert "CRITICAL" in lines[0]
        assert not list(app.screen.query("Toast"))
        await pilot.press("a", "space")
        assert ol.option_count == 5
        await pilot.press("down", "space")  # from inside the group, space folds it
        assert ol.option_count == 1

        monkeypatch.setattr(app_module, "EXPLAIN_BUDGET", 3.0)
        app.dashboard.alerts.evaluate()
        await wait_for(pilot, lambda: not any(s.pending for s in app.dashboard.alert_states))
        await wait_for(pilot, lambda: bool(list(app.screen.query("Toast"))))
        lines = [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]
        assert len(lines) == 1 and "+3 related (3 customer)" in lines[0], lines
        assert len(list(app.screen.query("Toast"))) == 1


async def test_an_ack_shows_at_once_while_a_long_alert_pass_runs(llmtop_db: Path) -> None:
    """During an incident on a big file an alert pass can take many seconds: the on-call's ack
    must not wait for it."""
    import threading

    _customers_history(llmtop_db)
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await _deploy_breaks_three_customers(llmtop_db, app, pilot)
        release, started = threading.Event(), threading.Event()
        real_pass = app.dashboard.alerts.run_pass

        def long_pass() -> None:  # holds the alert connection, as a slow evaluation does
            with app.dashboard.alerts.lock:
                started.set()
                release.wait(30)
            real_pass()

        app.dashboard.alerts.run_pass = long_pass  # type: ignore[method-assign]
        app.dashboard.alerts.evaluate()
        await wait_for(pilot, started.is_set)
        await pilot.press("a", "k")
        await wait_for(pilot, lambda: {s.state for s in app.dashboard.alert_states} == {"acked"})
        assert {s.state for s in app.dashboard.alert_states} == {
            "acked"
        } and app.dashboard.alerts.busy
        release.set()
        await wait_for(pilot, lambda: not app.dashboard.alerts.busy)
        await settle(app, pilot)
        assert {s.state for s in app.dashboard.alert_states} == {"acked"}


# --- issue 16: the cursor, the toast, the detail screen, the snooze prompt -----------------------

THREE_RULES = """
[spike]
group_by = ["feature"]
window = "5m"
trailing = "2h"
ratio = 3.0
min_change_usd = 0.05
"""

FEATURES = ("search", "chat", "summarize")


async def _three_incidents(llmtop_db: Path, app, pilot) -> list[str]:  # noqa: ANN001
    """Three features' input grows at once, with no deploy behind it (three incidents: nothing
    ties them); returns once the three are listed."""
    out, t = [], NOW - 7200
    while t < NOW - 300:
        out += [payload(start=t, feature=f, prompt_version="v1") for f in FEATURES]
        t += 30
    write(llmtop_db, out)
    default_rules_path(llmtop_db).write_text(THREE_RULES)
    await settle(app, pilot)
    write(  # no new version: nothing ties the three together
        llmtop_db,
        [
            payload(
                start=NOW - 240 + i * 4,
                feature=FEATURES[i % 3],
                prompt_version="v1",
                input_tokens=20000 * (1 + i % 3),
            )
            for i in range(60)
        ],
    )
    await wait_for(pilot, lambda: len(app.dashboard.alert_states) == 3)
    await settle(app, pilot)
    return [s.fingerprint for s in app.dashboard.alert_states]


def _text(static) -> str:  # noqa: ANN001
    """A Static's Rich content as the text it shows."""
    import io

    from rich.console import Console

    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(static.content)
    return console.export_text()


def _under_cursor(app) -> str:  # noqa: ANN001
    """The fingerprint of the line the cursor is on (each line's option id)."""
    ol = app.query_one(AlertsPanel).query_one("#alert-list")
    return str(ol.get_option_at_index(ol.highlighted).id)


def _lines(app) -> list[str]:  # noqa: ANN001
    ol = app.query_one(AlertsPanel).query_one("#alert-list")
    return [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]


async def test_keys_act_on_the_row_under_the_cursor(llmtop_db: Path) -> None:
    """Ack the first line, move down, ack the next: the two alerts acked are the two that were
    on those lines. (An ack re-sorts the engine's list: acked last. While focused, the order
    holds, so the cursor does not follow the acked alert to the bottom.)"""
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await _three_incidents(llmtop_db, app, pilot)
        await pilot.press("a")
        before = _lines(app)
        shown = [_under_cursor(app)]
        await pilot.press("k")
        await wait_for(
            pilot, lambda: [s.state for s in app.dashboard.alert_states].count("acked") == 1
        )
        await settle(app, pilot)
        assert [x.split("·")[0].split()[-1] for x in _lines(app)] == [
            x.split("·")[0].split()[-1] for x in before
        ], "the list reordered under the cursor"
        await pilot.press("down")
        shown.append(_under_cursor(app))
        await pilot.press("k")
        await wait_for(
            pilot, lambda: [s.state for s in app.dashboard.alert_states].count("acked") == 2
        )
        acked = {s.fingerprint for s in app.dashboard.alert_states if s.state == "acked"}
        assert acked == {shown[0], shown[1]}
        assert shown[0] != shown[1]
        # Focus elsewhere: the engine's order (open first) comes back.
        await pilot.press("tab")
        await settle(app, pilot)
        assert "acked" not in _lines(app)[0]
        # Back with `a`: on the top line (the most urgent), not where the cursor was left.
        await pilot.press("a")
        ol = app.query_one(AlertsPanel).query_one("#alert-list")
        assert ol.highlighted == 0 and _under_cursor(app) not in acked


async def test_toast_is_one_line_off_the_table_and_agrees_with_the_panel(llmtop_db: Path) -> None:
    """At 80×24 the toast is one line (severity, scope, headline), does not cover the table,
    and says the same severity as the panel's line for the same incident."""
    from llmtop.tui.widgets.top_table import TopTable

    _customers_history(llmtop_db)
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await _deploy_breaks_three_customers(llmtop_db, app, pilot)
        await wait_for(pilot, lambda: bool(list(app.screen.query("Toast"))))
        await pilot.pause(0.2)
        (toast,) = list(app.screen.query("Toast"))
        text = str(toast.render())
        assert "\n" not in text and toast.region.height == 1, text
        assert "feature=summarize" in text and "+3 related" in text
        table = app.query_one(TopTable).region
        assert not toast.region.overlaps(table), (toast.region, table)
        (line,) = _lines(app)
        toast_sev, panel_sev = text.split()[0], line.split()[0]
        assert toast_sev == panel_sev and toast_sev in ("CRITICAL", "WARNING"), (text, line)


async def test_alert_detail_screen_shows_the_alert_whole(llmtop_db: Path) -> None:
    """enter on an incident opens its detail: the rule and its numbers, the causes with their
    dollars, owner, since, the related alerts, and the spend chart; enter there drills down."""
    from llmtop.tui.screens.alert_detail import AlertDetailScreen
    from llmtop.tui.widgets.spend_chart import SpendChart

    _customers_history(llmtop_db)
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await _deploy_breaks_three_customers(llmtop_db, app, pilot)
        root = next(s for s in app.dashboard.alert_states if s.parent is None)
        await pilot.press("a", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AlertDetailScreen))
        screen = app.screen
        assert isinstance(screen, AlertDetailScreen)
        await wait_for(pilot, lambda: screen.figures is not None)
        await pilot.pause()
        f = screen.figures
        assert f is not None and f.window == 300.0 and f.spend > 0 and f.requests == 60
        numbers = str(screen.query_one("#alert-numbers").render())
        assert "Rule spike" in numbers and "Last 5m:" in numbers and "60 requests" in numbers
        assert "σ" in numbers and "×" in numbers and "over it" in numbers
        causes = _text(screen.query_one("#alert-causes"))
        assert "v2" in causes and "$" in causes
        who = str(screen.query_one("#alert-who").render())
        assert "Since" in who and "Owner" in who
        related = _text(screen.query_one("#alert-related"))
        assert all(f"customer={c}" in related for c in ("acme", "globex", "initech"))
        chart = screen.query_one(SpendChart)
        assert chart.figures is f and chart.since == root.since
        assert sum(v for _, v in f.series) >= f.spend - 1e-9  # the chart covers the window
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.screen is app.dashboard
        assert [f"{c.key}={c.value}" for c in app.dashboard.view.path] == [root.drill[0]]


async def test_snooze_asks_for_a_length(llmtop_db: Path) -> None:
    """z asks how long; a typo is told in place; 4h snoozes until the clock + 4 hours."""
    from llmtop.tui.screens.snooze_prompt import SnoozePrompt

    _customers_history(llmtop_db)
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await _deploy_breaks_three_customers(llmtop_db, app, pilot)
        await pilot.press("a", "z")
        await wait_for(pilot, lambda: isinstance(app.screen, SnoozePrompt))
        assert all(s.state == "open" for s in app.dashboard.alert_states)  # nothing yet
        await pilot.press("tab", *"4x", "enter")
        assert isinstance(app.screen, SnoozePrompt)
        assert "4x" in str(app.screen.query_one("#prompt-error").render())
        await pilot.press("shift+tab", "down", "enter")  # 15m, [1h], 4h
        await wait_for(pilot, lambda: {s.state for s in app.dashboard.alert_states} == {"snoozed"})
        assert {s.snoozed_until for s in app.dashboard.alert_states} == {NOW + 4 * 3600}
        # The line says until when: the snooze ends by itself, and the alert pages again.
        await pilot.pause()
        ol = app.query_one(AlertsPanel).query_one("#alert-list")
        assert "snoozed till 16:00" in str(ol.get_option_at_index(0).prompt)


async def test_a_length_typed_over_the_choices_is_the_one_used(llmtop_db: Path) -> None:
    """The list has focus when the prompt opens: `9 0 m enter` went nowhere and snoozed for the
    highlighted 1h. Typing goes to the field."""
    from llmtop.tui.screens.snooze_prompt import SnoozePrompt

    _customers_history(llmtop_db)
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await _deploy_breaks_three_customers(llmtop_db, app, pilot)
        await pilot.press("a", "z")
        await wait_for(pilot, lambda: isinstance(app.screen, SnoozePrompt))
        await pilot.press(*"90m", "enter")
        await wait_for(pilot, lambda: {s.state for s in app.dashboard.alert_states} == {"snoozed"})
        assert {s.snoozed_until for s in app.dashboard.alert_states} == {NOW + 90 * 60}


def test_snooze_lengths() -> None:
    from llmtop.tui.alerting import SNOOZE_CHOICES, parse_snooze

    # NOW is 2026-11-18 12:00 UTC (tests run in UTC).
    got = [parse_snooze(c, NOW) - NOW for c in SNOOZE_CHOICES]
    assert got == [900, 3600, 4 * 3600, 21 * 3600]
    assert parse_snooze("until 18:30", NOW) - NOW == 6.5 * 3600
    assert parse_snooze("until 11:00", NOW) - NOW == 23 * 3600  # the next 11:00: tomorrow's
    for bad in ("", "soon", "until 25:00", "-1h"):
        with pytest.raises(ValueError):
            parse_snooze(bad, NOW)


async def test_a_resolved_incident_leaves_one_line(llmtop_db: Path) -> None:
    """The incident stops firing (the clock moves past its spike): its four alerts resolve and
    one dim line says so; k does nothing on it, enter still opens its detail."""
    from llmtop.tui.screens.alert_detail import AlertDetailScreen

    _customers_history(llmtop_db)
    clock = [NOW]
    app = make_app(llmtop_db, watch=True, alerts=True, clock=lambda: clock[0])
    async with app.run_test(size=(120, 40)) as pilot:
        await _deploy_breaks_three_customers(llmtop_db, app, pilot)
        # 7 minutes on, none of it fires: quiet, not resolved yet (a dip in a sustained
        # incident sent "resolved" while it still burned).
        clock[0] = NOW + 420
        app.dashboard.alerts.evaluate()
        await wait_for(pilot, lambda: any(s.quiet_for for s in app.dashboard.alert_states))
        await pilot.pause()
        assert {s.state for s in app.dashboard.alert_states} == {"open"}
        (line,) = _lines(app)
        assert " quiet 7m " in line, line
        clock[0] = NOW + 1200  # 20 minutes on: the 5-minute spike window holds none of it
        app.dashboard.alerts.evaluate()
        await wait_for(pilot, lambda: {s.state for s in app.dashboard.alert_states} == {"resolved"})
        await pilot.pause()
        (line,) = _lines(app)
        assert line.startswith(" ✓ resolved ") and "feature=summarize · +3 related" in line
        await pilot.press("a", "k", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AlertDetailScreen))
        assert {s.state for s in app.dashboard.alert_states} == {"resolved"}


async def test_a_misspelled_tag_in_the_rules_is_said_on_screen(llmtop_db: Path) -> None:
    """The dashboard says the rules file's typo as `llmtop check` does, and keeps running."""
    write(llmtop_db, steady(NOW - 3600, NOW - 300))
    rules = default_rules_path(llmtop_db)
    rules.write_text('[spike]\ngroup_by = ["featrue"]\n')
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(app, pilot)
        await wait_for(pilot, lambda: "featrue" in (app.dashboard.error or ""))
        assert app.dashboard.error == (
            f"alerts: {rules}:2: spike.group_by: no dimension featrue; did you mean feature?"
        )


def _state(fingerprint: str, **given: Any) -> Any:
    """A stored alert on feature=f for the panel to draw, with what a test does not care about
    filled in."""
    from llmtop.alerts.model import AlertState

    fields: dict[str, Any] = dict(
        rule="cache_hit_drop",
        severity="warning",
        scope="feature=f",
        title="f cache hit rate 70% → 5%",
        cause="new route_version r13",
        causes=(),
        owner="team-f",
        since=NOW - 600,
        last_seen=NOW,
        state="open",
        snoozed_until=None,
        drill=("feature=f", "route_version"),
    )
    return AlertState(fingerprint=fingerprint, **{**fields, **given})


def test_a_related_line_carries_its_own_severity_and_a_snooze_says_its_day() -> None:
    """Escalation and ack are the incident's, on its root's line: a related warning marked
    "escalated" read as if it had turned critical. A snooze ending on another day names it."""
    from llmtop.tui.widgets.alerts_panel import alert_line

    child = _state("c", state="acked", escalated=True)
    text = str(alert_line(child, child=True))
    assert "WARNING" in text and "escalated" not in text and "acked" not in text, text
    root = _state("r", state="acked", escalated=True, severity="critical")
    assert "escalated" in str(alert_line(root)) and " acked " in str(alert_line(root))
    # NOW is 12:00 UTC: a snooze until 16:00 today, and one until 09:00 tomorrow (Thursday).
    today = _state("s", state="snoozed", escalated=True, snoozed_until=NOW + 4 * 3600)
    assert "snoozed till 16:00 " in str(alert_line(today))
    later = _state("s", state="snoozed", escalated=True, snoozed_until=NOW + 21 * 3600)
    assert "snoozed till Thu 09:00 " in str(alert_line(later))


def test_one_incident_is_one_line_when_its_first_root_went_quiet() -> None:
    """A spike gone quiet for a minute and the cache-hit drop firing on its feature are one
    incident, each a root of its own pass: one line, under the one firing (it was two lines,
    both critical and escalated, one 'quiet 1m')."""
    from types import SimpleNamespace as NS

    from llmtop.tui.widgets.alerts_panel import group_states

    spike = NS(fingerprint="spike|f", parent=None, incident="i1", quiet_for=90.0)
    drop = NS(fingerprint="drop|f", parent=None, incident="i1", quiet_for=0.0)
    cust = NS(fingerprint="runaway|c", parent="spike|f", incident="i1", quiet_for=0.0)
    other = NS(fingerprint="spike|g", parent=None, incident="i2", quiet_for=0.0)
    got = group_states([spike, drop, cust, other])
    assert [(r.fingerprint, sorted(c.fingerprint for c in ch)) for r, ch in got] == [
        ("drop|f", ["runaway|c", "spike|f"]),
        ("spike|g", []),
    ]


async def test_alerts_stay_live_while_the_view_is_paused(llmtop_db: Path) -> None:
    """`p` freezes the table and panels, not the paging: an incident starting while paused is
    judged, listed and recorded (a paused dashboard left running paged no one)."""
    write(llmtop_db, steady(NOW - 7200, NOW - 300))
    default_rules_path(llmtop_db).write_text(RULES)
    app = make_app(llmtop_db, watch=True, alerts=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        assert app.dashboard.paused_at is not None
        write(llmtop_db, prompt_v2_ships(NOW))
        for _ in range(200):  # readiness wait on behaviour, not a timing assertion
            if any(s.state == "open" for s in app.dashboard.alert_states):
                break
            app.dashboard.alerts.evaluate()
            await pilot.pause(0.05)
        assert [s.scope for s in app.dashboard.alert_states if s.state == "open"] == [
            "feature=support-summarize"
        ]
        assert app.dashboard.paused_at is not None and app.query_one(AlertsPanel).display


async def test_an_alert_resolved_inside_an_open_incident_is_no_resolved_line(
    llmtop_db: Path,
) -> None:
    """The spike calmed and resolved, the cache-hit drop of the same incident fires on: one
    line, the open incident's ("✓ resolved 20:02 feature=..." under it said it was over)."""
    base = dict(severity="critical", since=NOW - 1800, incident="i1")
    drop = _state("d", title="hit rate", **base)
    spike = _state("s", rule="spike", title="burning", state="resolved", **base)
    other = _state("o", rule="spike", title="gone", state="resolved", **{**base, "incident": "i0"})
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.dashboard.alert_states = [drop, spike, other]
        await pilot.pause()
        lines = _lines(app)
        assert len(lines) == 2 and "hit rate" in lines[0], lines
        assert lines[1].startswith(" ✓ resolved ") and "gone" in lines[1], lines


def test_at_80_columns_owner_and_since_come_before_the_state_marks() -> None:
    """Severity, scope, owner and since show at 80 columns whatever the incident's state:
    "escalated snoozed till 21:14" came first and pushed the owner and since off the line."""
    from llmtop.tui.widgets.alerts_panel import alert_line

    a = _state(
        "r",
        rule="spike",
        severity="critical",
        scope="feature=support-summarize",
        title="support-summarize burning $51.60/h",
        owner="team-support",
        state="snoozed",
        snoozed_until=NOW + 3600,
        escalated=True,
    )
    narrow = str(alert_line(a, width=76))
    assert narrow.index("team-support") < narrow.index("11:50") < narrow.index("escalated")
    assert narrow.index("11:50") < narrow.index("snoozed till 13:00")
    assert narrow.index("11:50") + 5 <= 76, narrow  # owner and since within the line
    wide = str(alert_line(a, width=120))
    assert wide.index("escalated") < wide.index("feature=support-summarize"), wide
