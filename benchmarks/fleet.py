"""Fleet: a shared PostgreSQL store vs one SQLite file, in one run.

Usage:
    .venv/bin/python benchmarks/fleet.py                     # 10M rows for the read figures
    .venv/bin/python benchmarks/fleet.py --rows 1000000      # a smaller read database
    .venv/bin/python benchmarks/fleet.py --quick             # 100k rows, 2,000 calls per writer

Prints, next to the targets of the fleet issue:
- ingest rows/s with 1, 4 and 8 writer processes (tests/pg_fleet.py: the real Writer, pricing
  included) into Postgres, and the same into one SQLite file (the default sidecar writer);
- refresh time (the live snapshot one second later, per window) and the cold read of each window
  at --rows rows on Postgres (targets: < 100 ms refresh, < 1 s first screen, as SQLite's);
- call -> other host's screen: a writer commits, a reader on another connection LISTENing
  (Reader.wait_for_change) wakes and its snapshot shows the row (target <= 0.5 s);
- the same refresh and first-read figures on a LiteLLM proxy's own spend-log table
  (--proxy-rows rows over 30 days; no rollups there, so first reads aggregate raw rows).

The server is a throwaway one (tests/pg.py: fsync=off, synchronous_commit=off, on this machine,
sharing its cores with the writers); the read database is built through the real Writer with
benchmarks/_build.py's data and kept until the run ends.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LLMTOP_RETENTION", "off")
os.environ.setdefault("LLMTOP_ROLLUP_RETENTION", "off")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from tests.pg import PgServer  # noqa: E402

TARGET_REFRESH_MS = 100.0
TARGET_FIRST_MS = 1000.0
TARGET_LATENCY_S = 0.5
WINDOWS = ("5m", "1h", "24h", "7d", "30d")


def ingest(
    target: str, procs: int, calls: int, env: dict[str, str] | None = None
) -> tuple[float, int]:
    """`procs` writer processes x `calls` each; (rows/s, rows written). Every process imports,
    builds its records and says `ready`; then all start together, and the rate is over the span
    from the first submit to the last flush (interpreter start-up, which on a loaded machine
    staggers the processes by seconds, left out). The schema is made first, as a fleet's
    database is made once: writers queueing for the first one's migration is not ingest."""
    from llmtop.store.db import resolve_db_path
    from llmtop.store.reader import Reader

    Reader(resolve_db_path(target)).close()
    ps = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.pg_fleet", target, f"h{i}", str(calls), "0", "--wait"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        for i in range(procs)
    ]
    for p in ps:
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError(p.communicate()[1][-2000:])
    for p in ps:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    written, began, done = 0, [], []
    for p in ps:
        out, err = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise RuntimeError(err[-2000:])
        n, _, _, b, d = out.split()
        written += int(n)
        began.append(float(b))
        done.append(float(d))
    return written / (max(done) - min(began)), written


def build_pg(url: str, rows: int) -> float:
    """`rows` rows of _build's 30-day data through the real Writer; where they end."""
    from _build import CHUNK, generate
    from llmtop.collector.writer import Writer

    end = time.time()
    w = Writer(url, batch_size=20_000, max_queue=2 * CHUNK)
    for n, rec in enumerate(generate(rows, end, 1), start=1):
        w.submit(rec)
        if n % CHUNK == 0:
            if not w.flush(600):
                raise RuntimeError(f"writer failed: {w.last_error}")
            if n % (10 * CHUNK) == 0:
                print(f"  built {n:,} rows", flush=True)
    if not w.flush(600) or w.written != rows:
        raise RuntimeError(f"wrote {w.written} of {rows}: {w.last_error}")
    w.close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        return float(conn.execute("SELECT max(started_at) FROM calls").fetchone()[0])


def refresh(url: str, end: float, repeats: int = 5) -> dict[str, tuple[float, float]]:
    """Per window: (cold read ms, median live refresh ms), as benchmarks/tui.py measures SQLite."""
    from llmtop.pricing import cache_read_saving
    from llmtop.store.filters import WINDOWS as SECONDS
    from llmtop.store.reader import Reader

    out = {}
    for name in WINDOWS:
        r = Reader(url, readonly=True, savings=cache_read_saving)
        try:
            now = end + 1.0
            t = time.perf_counter()
            r.snapshot(now=now, window=SECONDS[name], group_by="feature")
            cold = (time.perf_counter() - t) * 1000
            live = []
            for _ in range(repeats):
                now += 1.0
                t = time.perf_counter()
                r.snapshot(now=now, window=SECONDS[name], group_by="feature")
                live.append((time.perf_counter() - t) * 1000)
        finally:
            r.close()
        out[name] = (cold, statistics.median(live))
    return out


def call_to_screen(url: str, n: int = 20) -> list[float]:
    """Seconds from a call handed to one host's collector to its row in another's snapshot."""
    from llmtop.collector.writer import Writer
    from llmtop.store.reader import Reader

    from tests.pg_fleet import record

    dash = Reader(url)
    w = Writer(url)
    rng = random.Random(5)
    out = []
    try:
        now = time.time()
        base = dash.snapshot(now=now + 60, window=7200).totals.requests
        dash.wait_for_change(0.01)  # LISTENing from here on
        for i in range(n):
            t0 = time.perf_counter()
            w.submit(record(rng, "far", i, time.time()))
            while True:
                dash.wait_for_change(2.0)
                if dash.snapshot(now=now + 60, window=7200).totals.requests > base + i:
                    break
            out.append(time.perf_counter() - t0)
            time.sleep(0.2)
    finally:
        w.close()
        dash.close()
    return out


def proxy_part(server: PgServer, rows: int) -> None:
    """LiteLLM proxy's own table as the source (store/pg_spendlogs.py): `rows` spend-log rows
    over 30 days (tests/pg_spendlogs.py's shape), then the same refresh/first-read figures."""
    import psycopg

    from tests.pg_spendlogs import COLUMNS, DDL, make_logs

    url = server.create_database()
    end = time.time()
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(DDL)
        cols = ", ".join(f'"{c}"' for c in COLUMNS)
        for i in range(0, rows, 50_000):
            logs = make_logs(min(50_000, rows - i), end - 30 * 86400, end - 1, seed=i)
            with conn.cursor().copy(f'COPY "LiteLLM_SpendLogs" ({cols}) FROM STDIN') as copy:
                for lg in logs:
                    copy.write_row([lg.row[c] for c in COLUMNS])
        conn.execute('VACUUM ANALYZE "LiteLLM_SpendLogs"')
    print(f"proxy database: {rows:,} spend-log rows built in {time.perf_counter() - t0:.0f} s")
    for name, (cold, live) in refresh(url, end).items():
        print(f"  {name:>4}: refresh {live:7.1f} ms ({mark(live < TARGET_REFRESH_MS)}),"
              f" first read of the window {cold:7.1f} ms ({mark(cold < TARGET_FIRST_MS)})")  # fmt: skip


def read_part(server: PgServer, rows: int) -> int:
    url = server.create_database()
    t0 = time.perf_counter()
    end = build_pg(url, rows)
    print(f"read database: {rows:,} rows built in {time.perf_counter() - t0:.0f} s")
    for name, (cold, live) in refresh(url, end).items():
        print(f"  {name:>4}: refresh {live:7.1f} ms ({mark(live < TARGET_REFRESH_MS)}),"
              f" first read of the window {cold:7.1f} ms ({mark(cold < TARGET_FIRST_MS)})")  # fmt: skip
    return 0


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/fleet.py")
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows for the read figures")
    ap.add_argument("--calls", type=int, default=10_000, help="calls per writer process")
    ap.add_argument("--quick", action="store_true", help="100k rows, 2,000 calls per writer")
    ap.add_argument(
        "--only",
        choices=("ingest", "latency", "read", "proxy"),
        help="run one part (default: all)",
    )
    ap.add_argument(
        "--proxy-rows", type=int, default=1_000_000, help="spend-log rows for the proxy part"
    )
    ns = ap.parse_args(argv)
    if ns.quick:
        ns.rows, ns.calls, ns.proxy_rows = 100_000, 2_000, 100_000
    # A kill must not leave the throwaway server running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server = PgServer()
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="llmtop-fleet-"))
    try:
        if ns.only in (None, "ingest"):
            print(f"ingest: writer processes x {ns.calls:,} calls each (real Writer, priced)")
            print("  (Postgres 1 lock: every writer's rollup merge under one lock, as before"
                  " rollup shards; LLMTOP_PG_ROLLUP_SHARDS=1)")  # fmt: skip
            for procs in (1, 4, 8):
                one = {"LLMTOP_PG_ROLLUP_SHARDS": "1"}
                pg1, k = ingest(server.create_database(), procs, ns.calls, one)
                pg, n = ingest(server.create_database(), procs, ns.calls)
                lite, m = ingest(str(tmp / f"w{procs}.db"), procs, ns.calls)
                assert n == m == k == procs * ns.calls, (n, m, k)
                print(f"  {procs} process{'es' if procs > 1 else '  '}: Postgres {pg:8,.0f} rows/s"
                      f" (1 lock {pg1:8,.0f})   SQLite {lite:8,.0f} rows/s")  # fmt: skip
        if ns.only in (None, "latency"):
            url = server.create_database()
            print(
                "call -> another host's screen (Writer commit, NOTIFY, LISTEN, snapshot), 20 calls:"
            )
            lat = call_to_screen(url)
            p50, worst = statistics.median(lat), max(lat)
            print(f"  median {p50:.3f} s, max {worst:.3f} s (target <= {TARGET_LATENCY_S} s:"
                  f" {mark(worst <= TARGET_LATENCY_S)})")  # fmt: skip
        if ns.only in (None, "read"):
            read_part(server, ns.rows)
        if ns.only in (None, "proxy"):
            proxy_part(server, ns.proxy_rows)
    finally:
        server.destroy()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
