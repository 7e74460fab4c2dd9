"""Time `evaluate()` on a large database, quiet and during an incident.

Usage: python benchmarks/alerts.py PATH.db  (e.g. a `llmtop demo` history database)

Why both: a quiet pass is what the TUI pays every few seconds; an incident pass adds the likely-
cause analysis for each firing alert (cached for EXPLAIN_TTL), so the first pass after an incident
starts is the worst case.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from llmtop.alerts import engine
from llmtop.alerts.rules import Rules
from llmtop.store.queries import Reader


def _time(path: Path, now: float, label: str) -> None:
    r = Reader(path, readonly=True)
    try:
        for i in range(4):
            t = time.perf_counter()
            alerts = engine.evaluate(r, Rules(), now + i)
            ms = (time.perf_counter() - t) * 1000
            print(f"{label} pass {i}: {ms:.0f} ms, {len(alerts)} alerts")
    finally:
        r.close()


def main(argv: list[str]) -> int:
    src = Path(argv[0])
    conn = sqlite3.connect(src)
    rows, now = conn.execute("SELECT count(*), max(started_at) + 1 FROM calls").fetchone()
    conn.close()
    print(f"{src}: {rows:,} rows")
    _time(src, now, "quiet")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "incident.db"
        shutil.copy(src, copy)
        conn = sqlite3.connect(copy)
        # The support feature's last 15 minutes get 6x input tokens (20x cost) and a new prompt version.
        conn.execute(
            """UPDATE calls SET input_tokens = input_tokens * 6, cost_usd = cost_usd * 20,
            prompt_version = (SELECT id FROM strings WHERE value = 'v2')
            WHERE started_at >= ? AND feature = (SELECT id FROM strings WHERE value = 'support-summarize')""",
            (now - 900,),
        )
        conn.commit()
        conn.close()
        engine._WHY.clear()
        _time(copy, now, "incident")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
