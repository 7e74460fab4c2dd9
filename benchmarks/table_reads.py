"""The dashboard table's extra reads: `d` (last week's spend per group), `c` (the time chart's
top 5 series) and `/` completion (the values of a key), per window, at the size of the file given.

Usage: python benchmarks/table_reads.py [PATH.db]  (default: the 1M-row database benchmarks/tui.py
caches under $TMPDIR/llmtop-bench)

Each runs in a worker thread in the app, so none of them blocks a key; what matters is how long
the Δ column shows last week's figures after a refresh, or the chart says "reading…". Each read
is timed cold (a fresh connection) and prints the median of three.
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from llmtop.store.filters import WINDOWS
from llmtop.store.reader import Reader
from llmtop.tui import table_reads

DEFAULT = Path(tempfile.gettempdir()) / "llmtop-bench" / "1000000-v5.db"


def timed(fn: object, *args: object) -> float:
    out = []
    for _ in range(3):
        r = Reader(args[0], readonly=True)  # type: ignore[arg-type]
        t = time.perf_counter()
        fn(r, *args[1:])  # type: ignore[operator]
        out.append(time.perf_counter() - t)
        r.close()
    return statistics.median(out)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT
    if not path.exists():
        print(f"{path}: no such database (run benchmarks/tui.py once to build it)")
        return 1
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows, now = conn.execute("SELECT count(*), max(started_at) + 1 FROM calls").fetchone()
    conn.close()
    print(f"{path}: {rows:,} rows")
    r = Reader(path, readonly=True)
    print(
        f"{'window':>6}  {'d: last week':>12}  {'c: chart top 5':>14}  {'/ values: customer':>18}"
    )
    for name in ("1h", "24h", "7d", "30d"):
        w = WINDOWS[name]
        top = [g.key for g in r.snapshot(now=now, window=w, group_by="feature").groups[:5]]
        week = timed(table_reads.last_week, path, now - w, now, "feature", ())
        chart = timed(table_reads.series, path, now - w, now, "feature", top, ())
        values = timed(table_reads.values_of, path, now - w, now, "customer")
        print(
            f"{name:>6}  {week * 1000:>10.0f}ms  {chart * 1000:>12.0f}ms  {values * 1000:>16.0f}ms"
        )
    r.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
