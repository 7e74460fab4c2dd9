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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _build import generate  # noqa: E402
from llmtop.alerts.cache import AlertCache  # noqa: E402
from llmtop.alerts.evaluate import evaluate  # noqa: E402
from llmtop.alerts.rules import Rules
from llmtop.collector.writer import price_record
from llmtop.store.reader import Reader
from llmtop.store.schema import open_db
from llmtop.store.write import Interner, insert_batch
from llmtop.tui.alerting import EXPLAIN_BUDGET


def _time(path: Path, now: float, label: str, budget: float | None = None) -> None:
    r = Reader(path, readonly=True)
    rules = Rules()  # one object for the session, as in the app (causes are cached per rules)
    cache = AlertCache()  # one per session, as the app keeps one
    try:
        for i in range(4):
            t = time.perf_counter()
            alerts = evaluate(r, rules, now + i, explain_budget=budget, cache=cache)
            ms = (time.perf_counter() - t) * 1000
            waiting = sum(a.pending for a in alerts)
            pages = sum(a.parent is None for a in alerts)
            print(
                f"{label} pass {i}: {ms:.0f} ms, {len(alerts)} alerts in {pages} incident(s)"
                + (f", {waiting} with a cause still to come" if budget is not None else "")
            )
            if i == 0 and budget is None:
                for a in alerts:
                    under = f"    (filed under {a.parent})" if a.parent else ""
                    print(f"    {a.severity}: {a.title} | cause: {a.cause}{under}")
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
        # An incident written the way real rows arrive (through the batch writer, so rollups
        # agree): the last 15 minutes gain 2,000 calls of one feature on a new prompt version,
        # with 6x the input tokens at 20x the cost.
        conn = open_db(copy)
        incident = []
        for i, r in enumerate(generate(2000, now, seed=7)):
            r.started_at = now - 900 + i * 0.45
            r.ended_at = r.started_at + 1.5
            r.tags = {**r.tags, "feature": "feature-003", "prompt_version": "v2"}
            r.input_tokens *= 6
            price_record(r)
            r.cost_usd = (r.cost_usd or 0.0) * 20
            incident.append(r)
        insert_batch(conn, Interner(), incident)
        conn.close()
        _time(copy, now, "incident")
        # The dashboard gives cause analysis EXPLAIN_BUDGET s per pass (llmtop check: none).
        _time(copy, now, "incident, dashboard", budget=EXPLAIN_BUDGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
