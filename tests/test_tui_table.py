"""The table that explains itself (issue #16): what the screen says is what it read, under
Pilot on fixture databases written through the real collector path.

Paused drill-downs read at the paused instant, the header shows the sort, a regroup starts at
spend, a typo in a filter key is named, `esc` keeps the row, preferences survive a restart,
`e` writes the view, `y` copies an id, `d` compares with last week, `c` charts the top series,
and ctrl+p lists llmtop's commands.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from llmtop.store.filters import check_keys, parse_filter
from llmtop.store.reader import Reader
from llmtop.tui.widgets.requests_table import RequestsTable
from llmtop.tui.widgets.top_table import COLUMNS, PAD, SCROLLBAR, TopTable, visible_columns

from tests.builders import payload, write
from tests.tui_fixtures import NOW, build, expected_cost, make_app, settle

WEEK = 7 * 86400.0


@pytest.fixture
def specs(llmtop_db: Path) -> list[dict[str, Any]]:
    return build(llmtop_db)


def topbar(app: Any) -> str:
    return str(app.screen.query_one("#topbar").render())


def header(table: TopTable) -> str:
    return "".join(seg.text for seg in table.render_line(0))


def order(table: TopTable) -> list[str]:
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


async def test_a_drill_while_paused_reads_at_the_paused_instant(
    llmtop_db: Path, specs: list[dict[str, Any]]
) -> None:
    clock = {"now": NOW}
    app = make_app(llmtop_db, clock=lambda: clock["now"])
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await settle(app, pilot)
        first = app.query_one(TopTable).selected_group()
        assert first is not None
        # After the pause: time moves on and a call lands for the feature about to be drilled.
        clock["now"] = NOW + 60
        write(llmtop_db, [payload(start=NOW + 30, feature=first.key, model="gpt-4o")])
        await pilot.press("enter")
        await settle(app, pilot)
        snap = app.dashboard.snapshot
        assert snap.group_by == "model"  # the drill was read, not left on the old rows
        assert snap.end == NOW  # ...at the paused instant
        mine = [s for s in specs if s["feature"] == first.key]
        assert snap.totals.requests == len(mine)  # the call after the pause is not in it
        assert snap.totals.spend == pytest.approx(sum(expected_cost(s) for s in mine))
        assert "PAUSED at 12:00:00 · last 1h" in topbar(app)
        # The burn figures say which instant they are for, not "now".
        burn = app.query_one("#burn .panel-body").render()
        assert "/h at 12:00" in str(burn) and " now" not in str(burn), burn
        await pilot.press("p")  # resumed: live again, and the late call is there
        await settle(app, pilot)
        assert app.dashboard.snapshot.end == NOW + 60
        assert app.dashboard.snapshot.totals.requests == len(mine) + 1
        assert "live · last 1h · 12:01:00" in topbar(app)
        assert "/h now" in str(app.query_one("#burn .panel-body").render())


async def test_a_filter_key_typo_is_named_with_the_nearest_dimension(
    llmtop_db: Path, specs: list[dict[str, Any]]
) -> None:
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", "ctrl+u", *"custmer=cust-1", "enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "PromptScreen"  # stays open with the reason
        err = str(app.screen.query_one("#prompt-error").render())
        assert "no dimension custmer; did you mean customer?" in err
        # Completion: the key, then its values (read from the database).
        sug = app.screen.query_one("#prompt-input").suggester
        assert await sug.get_suggestion("team=search cust") == "team=search customer="
        assert await sug.get_suggestion("customer=cust-") == "customer=cust-0"
        assert await sug.get_suggestion("atte") == "attempt="
        await pilot.press("ctrl+u", *"customer=cust-1")
        await pilot.pause()  # the typo fixed: its error is gone before enter
        assert str(app.screen.query_one("#prompt-error").render()) == ""
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.dashboard.snapshot.totals.requests == sum(
            1 for s in specs if s.get("customer") == "cust-1"
        )
        # A tag the newest rows do not carry is refused once, then taken on a second enter.
        await pilot.press("slash", "ctrl+u", *"region=eu", "enter")
        await pilot.pause()
        assert "no dimension region" in str(app.screen.query_one("#prompt-error").render())
        await pilot.press("enter")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "DashboardScreen"
        assert app.dashboard.snapshot.totals.requests == 0


def test_check_keys_suggests_or_lists() -> None:
    known = ("feature", "customer", "team")
    check_keys(parse_filter("team=a customer!=b"), known)
    with pytest.raises(ValueError, match="no dimension custmer; did you mean customer"):
        check_keys(parse_filter("custmer=acme"), known)
    with pytest.raises(ValueError, match="no dimension zzz; known: feature, customer, team"):
        check_keys(parse_filter("zzz=1"), known)


async def test_the_header_shows_the_sort_and_a_regroup_starts_at_spend(
    llmtop_db: Path, specs: list[dict[str, Any]]
) -> None:
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        assert "spend ▼" in header(table)
        await pilot.press("S")
        await pilot.pause()
        assert "spend ▲" in header(table) and "▼" not in header(table)
        await pilot.press("s")  # the next column: share, biggest first
        await pilot.pause()
        assert "share ▼" in header(table) and "spend ▲" not in header(table)
        await pilot.press("enter")  # drill: feature → model, a new grouping
        await settle(app, pilot)
        assert (table.sort_column, table.sort_reverse) == ("spend", True)
        assert "spend ▼" in header(table)
        spends = [table.groups[k].spend for k in order(table)]
        assert spends == sorted(spends, reverse=True)
        await pilot.press("escape")  # back: the sort the user chose at that level returns
        await settle(app, pilot)
        assert (table.sort_column, table.sort_reverse) == ("share", True)


async def test_esc_puts_the_cursor_back_on_the_row_drilled_into(
    llmtop_db: Path, specs: list[dict[str, Any]]
) -> None:
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        await pilot.press("down", "down")
        chosen = order(table)[2]
        assert table.selected_group().key == chosen
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.dashboard.view.path[0].value == chosen
        await pilot.press("escape")
        await settle(app, pilot)
        assert table.selected_group().key == chosen
        assert table.cursor_row == 2


async def test_window_grouping_and_sort_are_remembered_per_database(
    llmtop_db: Path, specs: list[dict[str, Any]], tmp_path: Path
) -> None:
    app = make_app(llmtop_db, window=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("3")  # 6h
        await pilot.press("g")
        await pilot.pause()
        app.screen.query_one("#picker").highlighted = app.dashboard.snapshot.dimensions.index(
            "customer"
        )
        await pilot.press("enter")
        await settle(app, pilot)
        app.query_one(TopTable).sort_by("requests")
        await settle(app, pilot)
    again = make_app(llmtop_db, window=None)
    async with again.run_test(size=(120, 36)) as pilot:
        await settle(again, pilot)
        assert again.dashboard.window == 6 * 3600
        assert again.dashboard.view.group_by == "customer"
        table = again.query_one(TopTable)
        assert (table.sort_column, table.sort_reverse) == ("requests", True)
        assert "reqs ▼" in header(table)
    other = tmp_path / "other.db"
    build(other, specs[:3])
    fresh = make_app(other, window=None)  # another database keeps its own (none yet)
    async with fresh.run_test(size=(120, 36)) as pilot:
        await settle(fresh, pilot)
        assert fresh.dashboard.window == 3600
        assert fresh.dashboard.view.group_by == "feature"
        assert fresh.query_one(TopTable).sort_column == "spend"


def _capped(requests: Any) -> Any:
    """Reader.requests with a limit of 2, as if the list's window held more than it shows."""

    def capped(self: Any, **kw: Any) -> Any:
        return requests(self, **{**kw, "limit": 2})

    return capped


async def test_export_writes_the_view_to_the_file_named_on_screen(
    llmtop_db: Path,
    specs: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "exports"
    monkeypatch.setenv("LLMTOP_EXPORT_DIR", str(out))
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        await pilot.press("e")
        await pilot.pause()
        name = app.screen.query_one("#prompt-input").value
        assert name == "llmtop-by-feature-20261118-120000.csv"
        await pilot.press("enter")
        await pilot.pause()
        rows = list(csv.DictReader((out / name).open()))
        assert [r["feature"] for r in rows] == order(table)
        for r in rows:
            assert float(r["spend"]) == pytest.approx(table.groups[r["feature"]].spend)
        assert any(str(out / name) in n.message for n in app._notifications)
        await pilot.press("l")  # the request list exports as rows
        await settle(app, pilot)
        await pilot.press("e", "ctrl+u", *"calls.json", "enter")
        await settle(app, pilot)  # streamed by a worker
        doc = json.loads((out / "calls.json").read_text())
        assert doc["window"] == "1h" and doc["end"] == NOW
        times = [r["started_at"] for r in doc["rows"]]
        assert len(times) == len(specs) and times == sorted(times, reverse=True)
        # Every request of the view, not only the list's newest (its limit), every column.
        from llmtop.store import reader as reader_mod

        monkeypatch.setattr(reader_mod.Reader, "requests", _capped(reader_mod.Reader.requests))
        await pilot.press("5")  # another window: the list is read again, capped at 2 rows
        await settle(app, pilot)
        await pilot.press("e", "ctrl+u", *"all.csv", "enter")
        await settle(app, pilot)
        rows = list(csv.DictReader((out / "all.csv").open()))
        assert len(app.query_one(RequestsTable).rows_in_order()) == 2
        assert len(rows) == len(specs) > 2 and {"input_tokens", "cost_usd"} <= set(rows[0])
        assert any("exported" in n.message and "all.csv" in n.message for n in app._notifications)
        await pilot.press("e", "ctrl+u", *"calls.txt", "enter")
        await pilot.pause()
        assert "must end in .csv or .json" in str(app.screen.query_one("#prompt-error").render())


async def test_y_copies_the_trace_id_of_the_selected_request(llmtop_db: Path) -> None:
    build(
        llmtop_db,
        [
            dict(start=NOW - 60, feature="f", trace_id="trace-abc"),
            dict(start=NOW - 30, feature="g"),
        ],
    )
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("y")  # on the grouped table: the group's value
        assert app.clipboard in ("f", "g")
        await pilot.press("l")
        await settle(app, pilot)
        await pilot.press("down")  # newest first: the second row is the traced call
        await pilot.press("y")
        assert app.query_one(RequestsTable).selected_row().feature == "f"
        assert app.clipboard == "trace-abc"
        await pilot.press("up", "enter")  # the other call's detail screen copies its trace id
        await settle(app, pilot)
        assert type(app.screen).__name__ == "DetailScreen"
        await pilot.press("y")
        other = app.dashboard.query_one(RequestsTable).selected_row()
        assert other.feature == "g" and other.trace_id
        assert app.clipboard == other.trace_id


async def test_d_compares_with_the_same_window_last_week(
    llmtop_db: Path, specs: list[dict[str, Any]]
) -> None:
    write(
        llmtop_db,
        [
            payload(start=NOW - WEEK - 600, feature="chat", input_tokens=1000, output_tokens=50),
            # The file's first row, before the compared hour: it covers all of it.
            payload(start=NOW - WEEK - 4000, feature="old", input_tokens=10, output_tokens=5),
        ],
    )
    r = Reader(llmtop_db)
    try:
        before = r.snapshot(now=NOW - WEEK, window=3600, group_by="feature").groups[0].spend
    finally:
        r.close()
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        assert table.get_cell("chat", "delta").plain == "new"  # no rows in the previous hour
        await pilot.press("d")
        await settle(app, pilot)
        assert "Δ last wk" in header(table)
        chat = table.groups["chat"].spend
        assert table.get_cell("chat", "delta").plain == f"+{(chat - before) / before * 100:.0f}%"
        assert table.get_cell("summarize", "delta").plain == "new"
        app.dashboard.regroup("model")  # a new grouping: its own last-week figures
        await settle(app, pilot)
        mini = table.groups["gpt-4o-mini"].spend
        assert table.get_cell("gpt-4o-mini", "delta").plain == (
            f"+{(mini - before) / before * 100:.0f}%"
        )
        assert table.get_cell("gpt-4o", "delta").plain == "new"
        await pilot.press("escape")
        await settle(app, pilot)
        await pilot.press("d")
        await settle(app, pilot)
        assert "Δ prev" in header(table)
        assert table.get_cell("chat", "delta").plain == "new"


async def test_a_comparison_before_the_first_row_is_a_dash_not_new(llmtop_db: Path) -> None:
    """A file 40 minutes old has no previous hour and no last week: Δ says "—" on every row
    ("new" would say every feature just appeared); nor does a file 90 minutes old, whose
    previous hour it covers only in part (+300% on every row); with the whole hour before the
    window, a feature that made no call then is "new" and one that did has its change."""
    build(llmtop_db, [dict(start=NOW - 2400, feature="chat"), dict(start=NOW - 60, feature="g")])
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        assert {table.get_cell(k, "delta").plain for k in ("chat", "g")} == {"—"}
        await pilot.press("d")
        await settle(app, pilot)
        assert {table.get_cell(k, "delta").plain for k in ("chat", "g")} == {"—"}
    build(llmtop_db, [dict(start=NOW - 5400, feature="chat")])
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        assert {table.get_cell(k, "delta").plain for k in ("chat", "g")} == {"—"}
    build(llmtop_db, [dict(start=NOW - 7300, feature="other")])
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        assert table.get_cell("g", "delta").plain == "new"
        assert table.get_cell("chat", "delta").plain.endswith("%")
        await pilot.press("d")  # still no last week
        await settle(app, pilot)
        assert {table.get_cell(k, "delta").plain for k in ("chat", "g")} == {"—"}


async def test_c_charts_the_top_series_of_the_grouping(
    llmtop_db: Path, specs: list[dict[str, Any]]
) -> None:
    from llmtop.tui.widgets.series_chart import SeriesChart

    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("c")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "ChartScreen"
        series = app.screen.query_one(SeriesChart).series
        by_key = {s.key: sum(s.spend) for s in series.series}
        groups = {g.key: g.spend for g in app.dashboard.snapshot.groups}
        assert by_key.keys() == groups.keys()
        for k, v in groups.items():
            assert by_key[k] == pytest.approx(v)  # every bin adds up to the table's spend
        assert series.end == NOW
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "DashboardScreen"


async def test_the_command_palette_lists_llmtops_commands(
    llmtop_db: Path, specs: list[dict[str, Any]]
) -> None:
    from textual.command import CommandList, CommandPalette

    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"export")
        shown: list[str] = []
        for _ in range(50):  # the palette searches in its own task
            await pilot.pause(0.02)
            options = app.screen.query_one(CommandList)
            shown = [
                str(options.get_option_at_index(i).prompt) for i in range(options.option_count)
            ]
            if shown:
                break
        assert any("Export the current view" in s for s in shown), shown
        await pilot.press("enter")  # runs the dashboard's own action: the export prompt
        await pilot.pause()
        assert type(app.screen).__name__ == "PromptScreen"


async def test_attempt_is_a_dimension(llmtop_db: Path) -> None:
    build(
        llmtop_db,
        [
            dict(start=NOW - 100, trace_id="t1", status="failure", error_class="RateLimitError"),
            dict(start=NOW - 50, trace_id="t1", retries=1),
            dict(start=NOW - 40, trace_id="t2"),
        ],
    )
    app = make_app(llmtop_db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        assert "attempt" in app.dashboard.snapshot.dimensions
        app.dashboard.regroup("attempt")
        await settle(app, pilot)
        assert {g.key: g.requests for g in app.dashboard.snapshot.groups} == {"1": 2, "2": 1}
        await pilot.press("slash", "ctrl+u", *"attempt=2", "enter")
        await settle(app, pilot)
        assert app.dashboard.snapshot.totals.requests == 1


@pytest.mark.parametrize("width", [80, 100, 120, 200])
async def test_the_table_fits_the_terminal_width(
    llmtop_db: Path, specs: list[dict[str, Any]], width: int
) -> None:
    app = make_app(llmtop_db)
    async with app.run_test(size=(width, 30)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        used = sum(c.get_render_width(table) for c in table.ordered_columns)
        assert used <= table.size.width  # nothing is cut off on the right
        keys = [str(c.key.value) for c in table.ordered_columns]
        assert keys[:6] == ["key", "spend", "share", "delta", "requests", "cpr"]
        if width >= 120:
            assert len(keys) == 12
        await pilot.press("l")  # the request list too
        await settle(app, pilot)
        rt = app.query_one(RequestsTable)
        assert rt.row_count == len(specs)
        assert sum(c.get_render_width(rt) for c in rt.ordered_columns) <= rt.size.width
        keys = [str(c.key.value) for c in rt.ordered_columns]
        assert keys[:4] == ["time", "model", "feature", "status"] and "cost" in keys
        if width >= 120:
            assert len(keys) == 10


async def test_long_names_give_way_before_latency_and_cost_at_80_columns(llmtop_db: Path) -> None:
    """Model names of 36 characters and a long error class used to push p95 latency out of
    the table at 80 columns, and cost and latency out of the request list; the names are cut
    shorter instead (the README's promise)."""

    models = ("claude-sonnet-4-5-20250929-long-name", "gpt-4.1-mini-2025-04-14-deployment-x")
    write(
        llmtop_db,
        [
            payload(
                start=NOW - 600 + i * 5,
                model=models[i % 2],
                feature=f"support-summarize-{i % 3}-long-feature",
                status="failure" if i % 7 == 0 else "success",
                error_class="ServiceUnavailableError" if i % 7 == 0 else None,
                input_tokens=5_000_000 + 7919 * i,  # thousands of dollars: wide cells
            )
            for i in range(60)
        ],
    )
    app = make_app(llmtop_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.dashboard.regroup("model")
        await settle(app, pilot)
        table = app.query_one(TopTable)
        keys = [str(c.key.value) for c in table.ordered_columns]
        assert {"error", "p95"} <= set(keys), keys
        assert sum(c.get_render_width(table) for c in table.ordered_columns) <= table.size.width
        await pilot.press("l")
        await settle(app, pilot)
        rt = app.query_one(RequestsTable)
        keys = [str(c.key.value) for c in rt.ordered_columns]
        assert {"cost", "latency"} <= set(keys), keys
        assert sum(c.get_render_width(rt) for c in rt.ordered_columns) <= rt.size.width


@given(
    widths=st.fixed_dictionaries({k: st.integers(1, 45) for k, _ in COLUMNS}),
    a=st.integers(0, 300),
    b=st.integers(0, 300),
)
def test_columns_that_fit_never_overflow_and_grow_with_the_width(
    widths: dict[str, int], a: int, b: int
) -> None:
    narrow, wide = sorted((a, b))
    few, more = visible_columns(narrow, widths), visible_columns(wide, widths)
    assert "key" in few and set(few) <= set(more)  # a wider terminal never shows fewer
    if len(few) > 1:  # beyond the name itself, nothing is cut
        assert sum(widths[k] + PAD for k in few) <= narrow - SCROLLBAR
    assert [k for k, _ in COLUMNS if k in few] == list(few)  # the table's own order


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
def test_a_known_key_passes_and_an_unknown_one_names_a_known_one(key: str) -> None:
    from llmtop.store.filters import DIMENSIONS, STRING_COLUMNS

    clauses = parse_filter(f"{key}=x")
    if key in DIMENSIONS or key in STRING_COLUMNS:  # a column (price_key) is a dimension too
        check_keys(clauses, DIMENSIONS)
        return
    with pytest.raises(ValueError) as err:
        check_keys(clauses, DIMENSIONS)
    msg = str(err.value)
    assert msg.startswith(f"no dimension {key}; ")
    if "did you mean" in msg:
        assert msg.split("did you mean ")[1].rstrip("?") in DIMENSIONS


async def test_a_long_database_path_never_hides_the_instant_and_window(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / "llmtop.db"
    deep.parent.mkdir()
    build(deep, [dict(start=NOW - 60, feature="f")])
    app = make_app(deep)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        painted = "".join(seg.text for seg in app.screen.query_one("#topbar").render_line(0))
        assert "● live · last 1h · 12:00:00" in painted  # the path comes after it


def test_preferences_live_in_the_xdg_state_dir_unless_llmtop_state_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmtop.tui import state

    monkeypatch.delenv("LLMTOP_STATE")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state.state_path() == tmp_path / "xdg" / "llmtop" / "ui.json"
    state.remember([tmp_path / "a.db"], group_by="team")
    assert state.remembered([tmp_path / "a.db"]) == {"group_by": "team"}
    assert state.remembered([tmp_path / "b.db"]) == {}
    monkeypatch.setenv("LLMTOP_STATE", str(tmp_path / "elsewhere.json"))
    assert state.state_path() == tmp_path / "elsewhere.json"


async def test_a_bad_remembered_value_is_ignored(
    llmtop_db: Path, specs: list[dict[str, Any]]
) -> None:
    from llmtop.tui import state

    state.remember([llmtop_db], window="banana", group_by=7, sort="team")
    app = make_app(llmtop_db, window=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        assert app.dashboard.window == 3600 and app.dashboard.view.group_by == "feature"
        assert app.query_one(TopTable).sort_column == "spend"  # no such column: ignored


async def test_a_cell_updated_in_place_widens_its_column(llmtop_db: Path) -> None:
    """A filter to failures turns err% from 9.1% into 100.0% on the same rows: updated in
    place, DataTable kept the column's width and showed `100.` (and at 80 columns a table
    wider than the screen, cut on the right)."""
    from llmtop.store.filters import parse_filter

    build(llmtop_db)
    app = make_app(llmtop_db)
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(app, pilot)
        table = app.query_one(TopTable)
        before = set(table.groups)
        app.dashboard.filter_clauses = parse_filter("status=failure")
        app.dashboard.refresh_data()
        await settle(app, pilot)
        await pilot.pause()
        assert set(table.groups) <= before  # the same rows, updated in place
        lines = ["".join(s.text for s in table.render_line(y)) for y in range(table.row_count + 1)]
        fails = [line for line in lines[1:] if "100.0%" in line]
        assert fails, lines


async def test_the_chart_ends_at_the_windows_end_not_after_it(
    llmtop_db: Path, specs: list[dict[str, Any]]
) -> None:
    """At 12:01:00 the last 2-minute bin runs to 12:02: its tick said 12:02, a minute ahead of
    now, and its one minute of spend drew as a drop. It is plotted at 12:01, a full bin's worth."""
    from llmtop.tui.format import clock
    from llmtop.tui.widgets.series_chart import SeriesChart

    app = make_app(llmtop_db, clock=lambda: NOW + 60)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        await pilot.press("c")
        await settle(app, pilot)
        chart = app.screen.query_one(SeriesChart)
        s = chart.series
        assert s.end == NOW + 60 and (s.bins[-1] + s.width) > s.end  # a partial last bin
        text = re.sub(r"\x1b\[[0-9;]*m", "", chart.plt.build())
        (ticks,) = [ln for ln in text.splitlines() if re.search(r"\d\d:\d\d\s*$", ln)]
        assert ticks.rstrip().endswith(clock(NOW + 60)[:5]), ticks
        assert clock(s.bins[-1] + s.width)[:5] not in ticks


async def test_the_request_list_follows_the_newest_call_unless_the_cursor_moved(
    llmtop_db: Path,
) -> None:
    """Cursor on the first line: new calls come in on top and the cursor stays there (it
    followed its request down, and a live list showed calls minutes old on its first lines).
    Moved down: it stays on its request. Listed again later: the old rows are not shown
    meanwhile."""
    write(llmtop_db, [payload(start=NOW - 600 + i, feature="f") for i in range(20)])
    app = make_app(llmtop_db, watch=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("l")
        await settle(app, pilot)
        rt = app.query_one(RequestsTable)
        newest = lambda: max(r.started_at for r in rt.rows_in_order())  # noqa: E731
        assert rt.cursor_row == 0 and rt.selected_row().started_at == newest()

        async def arrives(t: float) -> None:
            write(llmtop_db, [payload(start=t, feature="f")])
            for _ in range(200):  # readiness wait on behaviour, not a timing assertion
                if newest() == t:
                    return
                app.dashboard.refresh_data()
                await pilot.pause(0.05)
            raise AssertionError("the new call was never listed")

        await arrives(NOW - 100)
        assert rt.cursor_row == 0 and rt.selected_row().started_at == NOW - 100
        await pilot.press("down", "down")
        held = rt.selected_row()
        await arrives(NOW - 50)
        assert rt.selected_row() == held and rt.cursor_row == 3

        await pilot.press("escape")
        await settle(app, pilot)
        assert rt.row_count == 20 + 2  # still holding the old list, hidden
        app.dashboard.view = dataclasses.replace(app.dashboard.view, requests=True)  # `l`
        assert rt.row_count == 0  # not shown under the live bar before this view's read
        await settle(app, pilot)
        assert rt.row_count == 22 and rt.cursor_row == 0
