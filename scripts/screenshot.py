"""Regenerate docs/screenshot.svg: the dashboard on a seeded demo database mid-incident.

Run: .venv/bin/python scripts/screenshot.py   (deterministic: fixed seed and frozen clock)
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from llmtop.collector.core import CollectorCore
from llmtop.demo.cli import write_demo_rules
from llmtop.demo.simulator import Simulator
from llmtop.tui.app import LlmtopApp

NOW = 1_795_014_000.0  # a fixed weekday early afternoon (UTC)
OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.svg"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "llmtop.db"
        core = CollectorCore(db)
        sim = Simulator(core, seed=4, incident_at=NOW - 150)
        sim.backfill(
            NOW - 1800,
            2 * 86400.0,
            rate=2.0,
            submit_record=core.writer.submit,
            flush=lambda: core.flush(120),
        )
        sim.run_span(NOW - 1800, NOW, rate=2.0)
        assert core.flush(120)
        core.writer.close()
        write_demo_rules(db)
        app = LlmtopApp(db, clock=lambda: NOW, watch=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause(0.5)
            app.save_screenshot(str(OUT))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
