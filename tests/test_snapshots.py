"""SVG snapshots of the real app on the deterministic fixture database.

Pilot tests check figures; these catch what they cannot: a panel that overflows, a column that
collapses, a help text that wraps badly. Every pixel must be reproducible, so:

* the clock is frozen (make_app), alerts are off (no toasts), file watching is off;
* the database is opened by a *relative* name inside a per-test directory we chdir into, because
  the top bar prints the path and tmp_path differs on every run;
* the request-detail fixture pins trace_id and litellm_call_id, which the builders otherwise
  fill with fresh uuids that the detail screen prints verbatim.

Regenerate with `pytest tests/test_snapshots.py --snapshot-update` and read the SVG diff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.worker import WorkerCancelled

from tests.builders import payload, write
from tests.tui_fixtures import fixture_specs, make_app

DB_NAME = Path("llmtop.db")

SnapCompare = Callable[..., bool]
RunBefore = Callable[[Pilot[Any]], Awaitable[None]]


@pytest.fixture
def stable_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fixture database with every generated id pinned, reachable by the fixed name `llmtop.db`.

    The ids are derived from the row's position so the detail screen and the trace-attempts
    table show the same text on every run.
    """
    monkeypatch.chdir(tmp_path)
    payloads: list[dict[str, Any]] = []
    for i, spec in enumerate(fixture_specs()):
        p = payload(trace_id=f"trace-{i:04d}", **spec)
        slo = p["standard_logging_object"]
        slo["litellm_call_id"] = f"00000000-0000-4000-8000-{i:012d}"
        slo["id"] = f"chatcmpl-{i:08d}"
        payloads.append(p)
    write(DB_NAME, payloads)
    return DB_NAME


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until no worker is left and the last SnapshotLoaded has been painted.

    At mount the app's reactive watchers each call refresh_data, and the exclusive snapshot
    worker cancels its predecessors; wait_for_complete raises WorkerCancelled for those, so we
    simply wait again until a pass completes with nothing cancelled.
    """
    for _ in range(3):
        for _attempt in range(20):
            try:
                await pilot.app.workers.wait_for_complete()
            except WorkerCancelled:
                continue
            break
        await pilot.pause()


def keys_then_settle(*keys: str) -> RunBefore:
    """A run_before that settles, presses keys one at a time (settling after each), settles."""

    async def run_before(pilot: Pilot[Any]) -> None:
        from llmtop.tui.widgets.requests_table import RequestsTable

        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
            # A requests list just shown re-fits its columns on its first resize; a screen
            # pushed over it before then would keep it half drawn behind (1 run in 3-6 on 2
            # workers). Wait for that, as a user's eye would.
            for _ in range(100):
                tables = [t for t in pilot.app.query(RequestsTable) if t.display]
                if all(t.laid_out for t in tables):
                    break
                await pilot.pause(0.02)
            await settle(pilot)

    return run_before


def test_main_screen_80x24(snap_compare: SnapCompare, stable_db: Path) -> None:
    """The narrow layout: panels in a 2×2 grid, the table squeezed below."""
    app = make_app(stable_db)
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys_then_settle())


def test_main_screen_160x48(snap_compare: SnapCompare, stable_db: Path) -> None:
    """The wide layout: four panels in a row and room for every table column."""
    app = make_app(stable_db)
    assert snap_compare(app, terminal_size=(160, 48), run_before=keys_then_settle())


def test_help_screen(snap_compare: SnapCompare, stable_db: Path) -> None:
    """The help overlay lists every key; a wrapped or truncated line shows up here."""
    app = make_app(stable_db)
    assert snap_compare(app, terminal_size=(120, 36), run_before=keys_then_settle("?"))


def test_request_detail(snap_compare: SnapCompare, stable_db: Path) -> None:
    """The newest request's detail: every stored field plus the attempts of its trace."""
    app = make_app(stable_db)
    assert snap_compare(app, terminal_size=(120, 48), run_before=keys_then_settle("l", "enter"))


def _incident_states() -> list[Any]:
    """An incident as the alert engine files it: a feature's anomaly, its burn rate and four
    customers under it, and one unrelated warning (frozen values: a picture, not a pass)."""
    from llmtop.alerts.model import AlertState

    from tests.tui_fixtures import NOW

    root = "anomaly|feature=summarize"

    def st(rule: str, scope: str, sev: str, title: str, cause: str, parent: str | None) -> Any:
        return AlertState(
            fingerprint=f"{rule}|{scope}",
            rule=rule,
            severity=sev,
            scope=scope,
            title=title,
            cause=cause,
            causes=((cause, 1.0),),
            owner="team-support" if "summarize" in cause + scope else None,
            since=NOW - 900,
            last_seen=NOW,
            state="open",
            snoozed_until=None,
            drill=(scope, "prompt_version"),
            parent=parent,
        )

    v2 = "new prompt_version v2 since 11:45 (not in the baseline): 180 requests, +$41.20"
    return [
        st("anomaly", "feature=summarize", "critical", "summarize spend $44.10/15m, 31.0× its normal $1.42", v2, None),
        st("spike", "feature=summarize", "critical", "summarize burning $176/h over the last 5m", v2, root),
        *(
            st("runaway", f"customer={c}", "critical", f"customer {c} spend $11.02/1h", v2, root)
            for c in ("acme", "globex", "initech", "umbrella")
        ),
        st("error_rate", "feature=classify", "warning", "classify error rate 9% over 15m", "error rate 1% → 9% (429 ×12 on gpt-4o-mini)", None),
    ]  # fmt: skip


def test_alerts_panel_folds_an_incident(snap_compare: SnapCompare, stable_db: Path) -> None:
    app = make_app(stable_db)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        pilot.app.dashboard.alert_states = _incident_states()  # type: ignore[attr-defined]
        await settle(pilot)
        await pilot.press("a", "space")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(140, 40), run_before=run_before)
