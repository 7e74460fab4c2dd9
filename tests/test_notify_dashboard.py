"""`[notify]` from the dashboard: its alert pass pages through the background notifier, once."""

from __future__ import annotations

import os
from pathlib import Path

from tests.dbutil import scalar
from tests.test_notify import Hook, rules
from tests.tui_fixtures import build, make_app


async def test_dashboard_pages_once_without_waiting_for_the_webhook(
    llmtop_db: Path, tmp_path: Path
) -> None:
    build(llmtop_db)
    spend = scalar(llmtop_db, "SELECT TOTAL(cost_usd) FROM requests")
    cfg = rules(tmp_path / "rules.toml", spend / 2)
    hook = Hook()
    os.environ["LLMTOP_TEST_HOOK"] = hook.url
    try:
        app = make_app(llmtop_db, alerts=True, rules_path=cfg)
        async with app.run_test(size=(160, 48)) as pilot:
            for _ in range(600):  # bounded wait for the pass and the notifier thread
                await pilot.pause(0.05)
                if hook.bodies:
                    break
            assert [b["event"] for b in hook.bodies] == ["page"]
            app.dashboard.alerts.evaluate()  # another pass over the same incident
            for _ in range(40):
                await pilot.pause(0.05)
                if not app.dashboard.alerts.busy:
                    break
        assert len(hook.bodies) == 1
    finally:
        os.environ.pop("LLMTOP_TEST_HOOK", None)
        hook.close()
