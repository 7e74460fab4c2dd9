"""Where a dashboard refresh spends its time: inside SQLite, or in Python after it returns.

Usage: python benchmarks/read_split.py [PATH.db]  (default: the 1M-row database benchmarks/tui.py
caches under $TMPDIR/llmtop-bench)

Why: the dashboard reads in thread workers over sqlite3, not in async workers over aiosqlite on
Textual's event loop. aiosqlite moves only the SQLite calls off the loop; the rest of a refresh
(sliding the window trackers, merging histograms, assembling the snapshot) would run on it and
stall keys and painting. This prints both shares per window, for a cold read (just switched to
the window) and the median of five live refreshes one second apart.
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llmtop.pricing import cache_read_saving
from llmtop.store.filters import WINDOWS
from llmtop.store.reader import Reader

DEFAULT = Path(tempfile.gettempdir()) / "llmtop-bench" / "1000000-v5.db"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT
    if not path.exists():
        print(f"{path}: no such database (run benchmarks/tui.py once to build it)")
        return 1
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows, now = conn.execute("SELECT count(*), max(started_at) + 1 FROM calls").fetchone()
    conn.close()
    print(f"{path}: {rows:,} rows")
    r = Reader(path, readonly=True, savings=cache_read_saving)
    in_sql = [0.0]
    query = r.query

    def timed(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        t = time.perf_counter()
        try:
            return query(sql, params)
        finally:
            in_sql[0] += time.perf_counter() - t

    r.query = timed  # type: ignore[method-assign]  # before the first read: the engine keeps it
    try:
        for name in ("1h", "24h", "7d", "30d"):
            total, sql = [], []
            for i in range(6):
                in_sql[0] = 0.0
                t = time.perf_counter()
                r.snapshot(now=now + i, window=WINDOWS[name], group_by="feature")
                total.append(time.perf_counter() - t)
                sql.append(in_sql[0])
            live_t, live_s = statistics.median(total[1:]), statistics.median(sql[1:])
            print(
                f"{name:>4}: cold {total[0] * 1000:.0f} ms ({sql[0] * 1000:.0f} ms in SQLite); "
                f"live refresh {live_t * 1000:.1f} ms ({live_s * 1000:.1f} ms in SQLite, "
                f"{100 * (1 - live_s / live_t):.0f}% Python)"
            )
    finally:
        r.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
