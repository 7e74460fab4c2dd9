"""The real Textual app under Pilot, on fixture databases written by the real collector path."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from llmtop.store.rollup import ALPHA
from llmtop.store.snapshot import quantile
from llmtop.store.views import GroupRow
from llmtop.tui.app import LlmtopApp
from llmtop.tui.screens.dashboard import DashboardScreen
from llmtop.tui.widgets.requests_table import RequestsTable
from llmtop.tui.widgets.top_table import FIRST_ROWS, TopTable
from textual.app import App, ComposeResult
from textual.widgets import Static

from tests.builders import payload, write
from tests.tui_fixtures import NOW, build, expected_cost, make_app, settle


def text_of(app: LlmtopApp, selector: str) -> str:
    w = app.screen.query_one(selector, Static)
    return str(w.render())


@pytest.fixture
def specs(llmtop_db: Path) -> list[dict]:
    return build(llmtop_db)


async def test_panels_match_independent_figures(llmtop_db: Path, specs: list[dict]) -> None:
    app = make_app(llmtop_db)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        snap = app.dashboard.snapshot
        assert snap is not None
        spend = sum(expected_cost(s) for s in specs)
        assert snap.totals.requests == len(specs)
        assert snap.totals.spend == pytest.approx(spend, rel=1e-9)
        # The window's average over the time the file covers: its first row is 3500 s old.
        first = min(s["start"] for s in specs)
        assert snap.burn.per_hour_window == pytest.approx(spend * 3600 / (NOW - first), rel=1e-9)
        assert snap.errors.error_rate == pytest.approx(2 / len(specs))
        assert dict(snap.errors.by_class) == {"429 rate limit": 2}
        ok = [s for s in specs if s.get("status") != "failure"]
        lat = sorted(s.get("latency", 0.5) * 1000 for s in specs)
        # Quantiles come from rollup histograms: within ALPHA (1%) of the exact nearest rank.
        assert snap.tokens.latency_p95 == pytest.approx(quantile(lat, 0.95), rel=ALPHA)
        ins = sorted(s["input_tokens"] for s in ok)
        assert snap.tokens.input_p90 == pytest.approx(quantile(ins, 0.9), rel=ALPHA)
        hits = sum(1 for s in ok if s["cached"]) / len(ok)
        assert snap.cache.hit_rate == pytest.approx(hits)
        # ...and the screen shows them.
        assert f"${spend:.3f}" in text_of(app, "#status")
        assert f"prompt-cache hits {hits * 100:.1f}%" in text_of(app, "#cache .panel-body")
        assert f"errors {2 / len(specs) * 100:.1f}%" in text_of(app, "#errors .panel-body")
        assert "429 rate limit 2" in text_of(app, "#errors .panel-body")
        table = app.query_one(TopTable)
        by_feature: dict[str, float] = {}
        for s in specs:
            by_feature[s["feature"]] = by_feature.get(s["feature"], 0) + expected_cost(s)
        assert set(table.groups) == set(by_feature)
        for k, v in by_feature.items():
            assert table.groups[k].spend == pytest.approx(v, rel=1e-9)
        top = max(by_feature, key=by_feature.__getitem__)
        assert table.coordinate_to_cell_key((0, 0)).row_key.value == top  # sorted by spend


async def test_drill_down_back_and_requests(llmtop_db: Path, specs: list[dict]) -> None:
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        first = table.coordinate_to_cell_key((0, 0)).row_key.value
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.dashboard.view.group_by == "model"
        assert f"feature={first}" in text_of(app, "#crumbs")
        assert table.columns["key"].label.plain == "model"
        header = "".join(seg.text for seg in table.render_line(0))
        assert header.split()[0] == "model"  # what is painted, not only the label object
        assert {g.key for g in app.dashboard.snapshot.groups} == {
            s["model"] for s in specs if s["feature"] == first
        }
        await pilot.press("enter", "enter", "enter")  # model → customer → user → requests
        await settle(app, pilot)
        assert app.dashboard.view.requests
        rt = app.query_one(RequestsTable)
        assert rt.row_count >= 1
        await pilot.press("enter")  # open a request's detail
        await settle(app, pilot)
        assert type(app.screen).__name__ == "DetailScreen"
        await pilot.press("escape")
        await pilot.press("escape", "escape", "escape", "escape")
        await settle(app, pilot)
        assert app.dashboard.view.path == () and not app.dashboard.view.requests
        assert "grouped by feature" in text_of(app, "#crumbs")


async def test_filter_and_bad_filter(llmtop_db: Path, specs: list[dict]) -> None:
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("slash")
        await pilot.press(*"team=search")
        await pilot.press("enter")
        await settle(app, pilot)
        assert {g.key for g in app.dashboard.snapshot.groups} == {
            s["feature"] for s in specs if s.get("team") == "search"
        }
        assert app.dashboard.snapshot.totals.requests == sum(
            1 for s in specs if s.get("team") == "search"
        )
        await pilot.press("slash", "ctrl+u")
        await pilot.press(*"nonsense")
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "PromptScreen"  # stays open, error shown in place
        assert "bad filter term" in text_of(app, "#prompt-error")
        await pilot.press("escape")
        await pilot.press("slash", "ctrl+u")
        await pilot.press(*"model~gpt-4o-m* status=success")
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.dashboard.snapshot.totals.requests == sum(
            1 for s in specs if s.get("model") == "gpt-4o-mini" and s.get("status") != "failure"
        )


async def test_window_switching(llmtop_db: Path, specs: list[dict]) -> None:
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("1")
        await settle(app, pilot)
        assert app.dashboard.window == 300
        assert app.dashboard.snapshot.totals.requests == sum(
            1 for s in specs if s["start"] >= NOW - 300
        )
        assert "live · last 5m · 12:00:00" in text_of(app, "#topbar")
        assert "reading" not in text_of(app, "#topbar")
        # Until the new window's numbers arrive, the top bar says they are being read.
        app.dashboard.set_reactive(DashboardScreen.window, 7 * 86400.0)
        app.dashboard.render_topbar()
        assert "reading 7d" in text_of(app, "#topbar")
        app.dashboard.set_reactive(DashboardScreen.window, 300.0)
        await pilot.press("w", "ctrl+u", *"10m", "enter")
        await settle(app, pilot)
        assert app.dashboard.window == 600
        assert app.dashboard.snapshot.totals.requests == sum(
            1 for s in specs if s["start"] >= NOW - 600
        )


async def test_pause_freezes_then_resumes(llmtop_db: Path, specs: list[dict]) -> None:
    clock = {"now": NOW}
    app = make_app(llmtop_db, clock=lambda: clock["now"])
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        before = app.dashboard.snapshot.totals.requests
        await pilot.press("p")
        await settle(app, pilot)
        assert "PAUSED" in text_of(app, "#topbar")
        write(llmtop_db, [payload(start=NOW - 10, feature="late")])
        clock["now"] = NOW + 30
        app.dashboard.tick()  # the timer's and the file watcher's refresh
        await settle(app, pilot)
        assert app.dashboard.snapshot.totals.requests == before
        await pilot.press("p")
        await settle(app, pilot)
        assert "live" in text_of(app, "#topbar")
        assert app.dashboard.snapshot.totals.requests == before + 1


async def test_new_row_appears_live_without_a_key(llmtop_db: Path, specs: list[dict]) -> None:
    app = make_app(llmtop_db, watch=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        before = app.dashboard.snapshot.totals.requests
        write(llmtop_db, [payload(start=NOW - 5, feature="fresh-feature")])
        for _ in range(100):  # the watcher wakes the app; give it up to ~5 s to get there
            await pilot.pause(0.05)
            if app.dashboard.snapshot.totals.requests == before + 1:
                break
        assert app.dashboard.snapshot.totals.requests == before + 1
        assert "fresh-feature" in app.query_one(TopTable).groups


async def test_tag_values_are_shown_as_text(llmtop_db: Path) -> None:
    evil = "[bold red]boom[/] [link=x]y[/link]"
    build(llmtop_db, [dict(start=NOW - 60, feature=evil, input_tokens=10, output_tokens=5)])
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        assert evil in table.groups
        cell = table.get_cell(evil, "key")
        assert cell.plain.startswith(evil)
        assert not cell.spans  # no style came from the value itself


async def test_a_long_tag_value_is_cut_with_an_ellipsis_and_invalid_rows_are_counted(
    llmtop_db: Path,
) -> None:
    from llmtop.collector import Writer
    from llmtop.store.records import CallRecord
    from llmtop.tui.widgets.cell import MAX_LABEL

    long = "f" + "x" * 199  # the longest value the collector keeps
    build(llmtop_db, [dict(start=NOW - 60, feature=long, input_tokens=10, output_tokens=5)])
    w = Writer(llmtop_db, sink="thread")
    w.submit(CallRecord(started_at=NOW - 30, invalid="latency out of range"))
    assert w.flush(20)
    w.close()
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        cell = table.get_cell(long, "key")  # the row is still keyed (and drills) by the value
        assert len(cell.plain) <= MAX_LABEL and cell.plain.endswith("…")
        assert cell.plain.startswith(long[: MAX_LABEL - 1])
        assert "1 invalid" in text_of(app, "#status")


async def test_group_picker_choice_is_remembered(llmtop_db: Path, specs: list[dict]) -> None:
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("g")
        await pilot.pause()
        picker = app.screen.query_one("#picker")
        dims = app.dashboard.snapshot.dimensions
        picker.highlighted = dims.index("customer")
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.dashboard.view.group_by == "customer"
        assert {g.key for g in app.dashboard.snapshot.groups} == {s["customer"] for s in specs}
    app2 = make_app(llmtop_db)
    async with app2.run_test(size=(120, 36)) as pilot:
        await settle(app2, pilot)
        assert app2.dashboard.view.group_by == "customer"


async def test_sort_by_column(llmtop_db: Path, specs: list[dict]) -> None:
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        table.sort_by("requests")
        await pilot.pause()
        counts = [
            table.groups[table.coordinate_to_cell_key((i, 0)).row_key.value].requests
            for i in range(table.row_count)
        ]
        assert counts == sorted(counts, reverse=True)
        table.sort_by("requests")
        await pilot.pause()
        counts = [
            table.groups[table.coordinate_to_cell_key((i, 0)).row_key.value].requests
            for i in range(table.row_count)
        ]
        assert counts == sorted(counts)


async def test_help_lists_every_binding(llmtop_db: Path, specs: list[dict]) -> None:
    from llmtop.tui.screens.help import KEYS

    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        listed = " ".join(k for k, _ in KEYS)
        for b in DashboardScreen.BINDINGS:
            for key in b.key.split(","):
                shown = {"question_mark": "?", "slash": "/", "escape": "esc"}.get(key, key)
                assert shown in listed, f"{key} is not in the help screen"
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ != "HelpScreen"


def _group(i: int, spend: float) -> GroupRow:
    return GroupRow(
        key=f"g{i:03d}",
        spend=spend,
        share=0.0,
        delta=None,
        requests=1,
        cost_per_request=spend,
        cost_per_1k=spend * 1000,
        tokens_per_request=10.0,
        cache_hit=0.0,
        retry=0.0,
        error=0.0,
        p95_latency_ms=None,
        unpriced=0,
    )


class _TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TopTable()


async def test_a_long_table_paints_its_top_rows_first_then_the_rest() -> None:
    """Only the first screenful is added before the first paint; the rest follows, in order,
    and a newer show() while rows are pending wins."""
    rnd = random.Random(4)
    groups = tuple(_group(i, rnd.uniform(0, 100)) for i in range(FIRST_ROWS * 3))
    top = sorted(groups, key=lambda g: -g.spend)
    app = _TableApp()
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(TopTable)
        await pilot.pause()
        table.show(groups)
        assert set(table.groups) == {g.key for g in top[:FIRST_ROWS]}  # the biggest spenders
        await pilot.pause()
        assert table.row_count == len(groups) == len(table.groups)
        shown = [table.get_row_at(i)[0].plain for i in range(table.row_count)]
        assert shown == [g.key for g in top]
        # Replace everything, then replace again before the deferred rows land.
        second = tuple(_group(i + 1000, float(i)) for i in range(FIRST_ROWS * 2))
        third = second[: FIRST_ROWS + 5]
        table.show(second)
        table.show(third)
        await pilot.pause()
        assert set(table.groups) == {g.key for g in third} and table.row_count == len(third)


async def test_only_the_biggest_spenders_are_listed_and_the_rest_is_said(
    llmtop_db: Path, specs: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grouping by user on a busy proxy gives tens of thousands of groups: the snapshot keeps the
    top MAX_GROUPS by spend, counts the rest and their spend, and the screen says so."""
    from llmtop.store import snapshot as assembly

    by_feature: dict[str, float] = {}
    for s in specs:
        by_feature[s["feature"]] = by_feature.get(s["feature"], 0) + expected_cost(s)
    ranked = sorted(by_feature.items(), key=lambda kv: -kv[1])
    assert len(ranked) >= 3
    monkeypatch.setattr(assembly, "MAX_GROUPS", 2)
    app = make_app(llmtop_db)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        snap = app.dashboard.snapshot
        assert snap is not None
        assert [g.key for g in snap.groups] == [k for k, _ in ranked[:2]]
        assert snap.groups_total == len(ranked)
        assert snap.rest_spend == pytest.approx(sum(v for _, v in ranked[2:]), rel=1e-9)
        assert set(app.query_one(TopTable).groups) == {k for k, _ in ranked[:2]}
        assert f"top 2 of {len(ranked)} by spend" in text_of(app, "#crumbs")


async def test_live_numbers_that_cannot_be_read_again_are_called_stale(llmtop_db: Path) -> None:
    """A database that stops answering (here: its table dropped by another process) left
    "● live" over numbers that grew older every tick; after 30 s without a read the top bar
    says "✗ stale"."""
    import sqlite3

    build(llmtop_db)
    clock = {"now": NOW}
    app = make_app(llmtop_db, clock=lambda: clock["now"])
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        topbar = app.screen.query_one("#topbar", Static)
        assert "● live" in str(topbar.render())
        con = sqlite3.connect(llmtop_db)
        con.execute("DROP TABLE calls")
        con.commit()
        con.close()
        clock["now"] = NOW + 60
        app.dashboard.refresh_data()
        await settle(app, pilot)
        assert app.dashboard.error
        line = str(topbar.render())
        assert "✗ stale" in line and "● live" not in line, line
