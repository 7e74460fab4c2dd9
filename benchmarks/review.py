"""The weekly-review commands at scale: export throughput and peak memory, report and whatif time.

Usage: python benchmarks/review.py [--rows 1000000] [--report-rows 10000000] [--runs 3]

Targets (issue 19): `llmtop export` streams in constant memory (rows/s and peak RSS at 1M rows,
csv and parquet); `llmtop report --period week` at 10M rows under 5 s.

Each measurement runs the real command (`llmtop.cli.main`) in a fresh interpreter that prints
its own wall time around main() and its peak resident memory (getrusage ru_maxrss, so pyarrow's
and SQLite's C allocations count, which tracemalloc would miss). Export runs twice per format:
the whole 30 days and the last 3 days (a tenth of the rows): equal peaks show the memory does not
grow with the rows. Databases are built through the real writer by _build.py and cached under
$TMPDIR/llmtop-bench (1M: a few minutes; 10M: ~20 min or more on 2 busy cores, once). The
report's file has correlation ids (tasks of 1-5 calls) and an outcome for every fifth task
(_build's tasks=True), so its tasks section reads what a real fleet's would.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: Runs one llmtop command in this fresh interpreter; prints seconds, CPU seconds (all threads,
#: the interpreter's start included: what a loaded machine cannot inflate) and peak RSS as JSON.
CHILD = """
import json, resource, sys, time
from llmtop.cli import main
t = time.perf_counter()
rc = main(sys.argv[1:])
dt = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)  # every thread's; ru_maxrss in KiB on Linux
cpu = ru.ru_utime + ru.ru_stime
print(json.dumps({"rc": rc, "seconds": dt, "cpu": cpu, "peak_mb": ru.ru_maxrss / 1024}), file=sys.stderr)
"""


def run(args: list[str]) -> dict[str, float]:
    p = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=False
    )
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    try:
        out = json.loads(last)
    except ValueError:
        raise SystemExit(f"llmtop {' '.join(args)} failed:\n{p.stderr}") from None
    if out["rc"] not in (0, 1):
        raise SystemExit(f"llmtop {' '.join(args)}: exit {out['rc']}\n{p.stderr}")
    return out


def built(cache: Path, rows: int, tasks: bool = False) -> tuple[Path, float]:
    from _build import build, cached_path

    path = cached_path(cache, rows, tasks)
    print(f"\n=== {rows:,} rows  ({path})", flush=True)
    b = build(path, rows, tasks=tasks)
    print(
        f"build: {b.seconds:.0f} s ({rows / b.seconds:,.0f} rows/s)"
        if b.seconds
        else "build: cached",
        flush=True,
    )
    return path, b.end


def bench_export(path: Path, end: float, rows: int, runs: int) -> None:
    until = str(end + 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("csv", "parquet"):
            for window in ("31d", "3d"):
                out = Path(tmp) / f"rows.{fmt}"
                res = [
                    run(
                        [
                            "export",
                            "--db",
                            str(path),
                            "--window",
                            window,
                            "--until",
                            until,
                            "--format",
                            fmt,
                            "--out",
                            str(out),
                        ]
                    )  # fmt: skip
                    for _ in range(runs)
                ]
                n = _count(path, end + 1.0 - _days(window) * 86400.0, end + 1.0)
                secs = statistics.median(r["seconds"] for r in res)
                peak = max(r["peak_mb"] for r in res)
                size = out.stat().st_size / 1e6
                print(
                    f"export {fmt:<7} --window {window:<3}: {n:>9,} rows in {secs:6.2f} s"
                    f" = {n / secs:>9,.0f} rows/s, peak RSS {peak:5.0f} MB, file {size:,.0f} MB"
                    f"  (median of {runs})",
                    flush=True,
                )


def _days(window: str) -> float:
    return float(window.rstrip("d"))


def _count(path: Path, start: float, end: float) -> int:
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        q = "SELECT count(*) FROM calls WHERE started_at >= ? AND started_at < ?"
        return int(con.execute(q, (start, end)).fetchone()[0])
    finally:
        con.close()


def bench_report(path: Path, end: float, runs: int) -> None:
    until = str(end + 1.0)
    for period, fmt, *extra in (
        ("week", "md"),
        ("week", "json"),
        ("week", "html"),
        ("month", "md"),
        ("week", "md", "--no-causes"),
    ):
        res = [
            run(
                [
                    "report",
                    "--db",
                    str(path),
                    "--period",
                    period,
                    "--until",
                    until,
                    "--format",
                    fmt,
                    "--out",
                    "/dev/null",
                    *extra,
                ]
            )  # fmt: skip
            for _ in range(runs)
        ]
        secs = [r["seconds"] for r in res]
        label = f"--period {period:<5} --format {fmt:<4} {' '.join(extra):<12}"
        print(
            f"report {label}: {statistics.median(secs):5.2f} s median"
            f" ({min(secs):.2f}-{max(secs):.2f} over {runs}),"
            f" CPU {statistics.median(r['cpu'] for r in res):.1f} s, peak RSS"
            f" {max(r['peak_mb'] for r in res):.0f} MB   target < 5 s",
            flush=True,
        )


def bench_report_parts(path: Path, end: float) -> None:
    """Where a week's report goes: the tasks read (raw rows grouped by correlation_id, on its own
    thread in the report) and each mover's cause analysis, timed alone, wall and CPU."""
    import time

    from llmtop.alerts.explain import explain
    from llmtop.alerts.rules import Rules
    from llmtop.store.filters import Clause
    from llmtop.store.outcomes import sort_threads, task_stats
    from llmtop.store.reader import Reader

    a, b = end + 1.0 - 7 * 86400.0, end + 1.0
    r = Reader(path, readonly=True)
    try:
        t, c = time.perf_counter(), time.process_time()
        n = sum(s.tasks for s in task_stats(r, a, b))
        print(
            f"  tasks of the week alone: {n:,} tasks in {time.perf_counter() - t:.2f} s"
            f" ({time.process_time() - c:.2f} s CPU)",
            flush=True,
        )
        threads = sort_threads()
        t, c = time.perf_counter(), time.process_time()
        n = sum(s.tasks for s in task_stats(r, a, b, threads=threads))
        print(
            f"  the same with {threads} sort helper thread(s), as the report reads it:"
            f" {time.perf_counter() - t:.2f} s ({time.process_time() - c:.2f} s CPU)",
            flush=True,
        )
        t, c = time.perf_counter(), time.process_time()
        explain(r, Rules(), (Clause("model", "=", "gpt-4o"),), (a, b), [(a - (b - a), a)], 1.0)
        print(
            f"  one mover's cause analysis (model=gpt-4o, a week against the week before):"
            f" {time.perf_counter() - t:.2f} s ({time.process_time() - c:.2f} s CPU)",
            flush=True,
        )
        # The dashboard's Tasks panel reads the same per window (tui/widgets/review_row.py).
        from llmtop.store.boards import task_board

        for label, w in (
            ("1h", 3600.0),
            ("24h", 86400.0),
            ("7d", 7 * 86400.0),
            ("30d", 30 * 86400.0),
        ):
            t, c = time.perf_counter(), time.process_time()
            board = task_board(r, b - w, b)
            print(
                f"  dashboard Tasks panel, window {label:>3}: {board.total.tasks:>9,} tasks,"
                f" {time.perf_counter() - t:6.2f} s ({time.process_time() - c:.2f} s CPU)",
                flush=True,
            )
    finally:
        r.close()


def bench_whatif(path: Path, end: float, rows: int) -> None:
    r = run(["whatif", "--db", str(path), "--window", "31d", "--until", str(end + 1.0),
             "--swap", "gpt-4o=gpt-4o-mini", "--swap", "claude-sonnet-4-5=claude-haiku-4-5",
             "--json"])  # fmt: skip
    print(
        f"whatif --window 31d, 2 swaps: {rows:,} rows in {r['seconds']:.2f} s"
        f" = {rows / r['seconds']:,.0f} rows/s, peak RSS {r['peak_mb']:.0f} MB",
        flush=True,
    )


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="export/whatif size (1M)")
    p.add_argument("--report-rows", type=int, default=10_000_000, help="report size (10M)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "llmtop-bench",
        help="where built databases are kept (default: $TMPDIR/llmtop-bench)",
    )
    p.add_argument("--skip-export", action="store_true")
    p.add_argument("--skip-report", action="store_true")
    ns = p.parse_args(argv)
    if not ns.skip_export:
        path, end = built(ns.cache, ns.rows)
        bench_export(path, end, ns.rows, ns.runs)
        bench_whatif(path, end, ns.rows)
    if not ns.skip_report:
        # With correlation ids and outcomes: the tasks section is the report's one raw-row read
        # of the whole period, and data without tasks would time it at nothing.
        path, end = built(ns.cache, ns.report_rows, tasks=True)
        bench_report(path, end, ns.runs)
        bench_report_parts(path, end)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
