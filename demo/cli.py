"""`llmtop demo`: a week of simulated history, a live simulated workload, and the dashboard on it.

Why a subprocess for the live workload: the TUI must stay responsive and must never import
litellm; the simulator and its writer thread would otherwise share the TUI's GIL. The history is
written before anything starts, in this process, so baselines exist the moment the TUI opens.

Why a separate database: the demo must never mix invented spend into the user's real collector
file, so without --db it uses (and recreates on every run) `demo.db` in llmtop's data directory.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from llmtop.args import Parser

DEFAULT_SPEED = 2.0
DEFAULT_HISTORY = "3d"
DEFAULT_INCIDENT_AFTER = "20s"
#: Row budget for history: above it the history is shortened (never thinned), so a quick start
#: stays quick. Three days at the default 2 calls/s is well under it.
HISTORY_ROWS_MAX = 400_000

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """'10s', '2m', '1h', '7d', '90' (seconds) -> seconds; argparse reports a ValueError."""
    m = _DURATION.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 10s, 2m, 1h, 7d)")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def parse_incident(text: str) -> float | None:
    """A duration, or off/never/none to run without the incident."""
    if text.strip().lower() in ("off", "never", "none", "no"):
        return None
    return parse_duration(text)


def demo_db_path() -> Path:
    """The demo's own file, beside (never equal to) the collector's default database."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("llmtop", appauthor=False)) / "demo.db"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="llmtop demo",
        description=(
            "Simulate a realistic LLM workload (six features, five teams, retries, fallbacks, "
            "a nightly batch job) through the real collector, and watch it in the dashboard. "
            "After --incident-after, feature support-summarize ships prompt v2 (route r13): "
            "its input tokens grow ~6x and its spend rate ~8x; the alerts fire within two "
            "minutes."
        ),
    )
    p.add_argument(
        "--db",
        type=_file_path,
        default=None,
        help="SQLite file to write (default: a demo.db in llmtop's data directory, recreated on "
        "every run; never your collector database). An existing file is appended to, and "
        "history is skipped if it already has rows.",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_SPEED,
        metavar="RPS",
        help=f"live request rate in LLM calls per second at the start (default {DEFAULT_SPEED:g}); "
        "it then follows the time-of-day curve. Retries add ~2%% more rows.",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="random seed (default 0): same seed, same data"
    )
    p.add_argument(
        "--no-tui",
        action="store_true",
        help="run the simulator in the foreground without the dashboard (for a second terminal "
        "running `llmtop --db PATH`, for scripts and for benchmarks)",
    )
    p.add_argument(
        "--duration",
        type=parse_duration,
        default=None,
        metavar="DUR",
        help="stop after this long, e.g. 10s, 2m, 1h (default: until Ctrl-C / quitting the TUI)",
    )
    p.add_argument(
        "--history",
        type=parse_duration,
        default=parse_duration(DEFAULT_HISTORY),
        metavar="DUR",
        help=f"backfill this much past traffic first, e.g. 7d, 1d, 0 (default {DEFAULT_HISTORY}). "
        "History is written at the live rate (so baselines match live traffic) and shortened "
        f"if that would exceed {HISTORY_ROWS_MAX:,} rows.",
    )
    p.add_argument(
        "--incident-after",
        type=parse_incident,
        default=parse_duration(DEFAULT_INCIDENT_AFTER),
        metavar="DUR",
        help=f"when the scripted incident starts, counted from the live start (default "
        f"{DEFAULT_INCIDENT_AFTER}); 'off' disables it",
    )
    return p


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


def _row_count(path: Path) -> int:
    import sqlite3

    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM calls").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def write_history(path: Path, seconds: float, speed: float, seed: int, *, quiet: bool) -> int:
    """Backfill past traffic and wait until it is on disk."""
    from llmtop.collector.core import CollectorCore
    from llmtop.demo.simulator import Simulator

    if seconds <= 0:
        return 0
    core = CollectorCore(path)
    sim = Simulator(core, seed=seed, incident_at=None)
    max_rows = HISTORY_ROWS_MAX
    if not quiet:
        print(f"llmtop demo: writing {seconds / 86400:g} days of history to {path} …", flush=True)

    def progress(n: int) -> None:
        if not quiet:
            print(f"\r  {n:,} rows", end="", flush=True)

    n = sim.backfill(
        time.time(),
        seconds,
        rate=speed,
        max_rows=max(max_rows, 1000),
        flush=lambda: core.flush(120),
        submit_record=core.writer.submit,
        on_progress=progress,
    )
    core.flush(120)
    if not quiet:
        kept = getattr(sim, "history_seconds", seconds)
        note = ""
        if kept < seconds - 60:
            note = (
                f" ({format_span(kept)}: {format_span(seconds)} at this hour's rate would exceed"
                f" {max_rows:,} rows; a lower --speed keeps more)"
            )
        print(f"\r  {n:,} rows of history written{note}", flush=True)
    return n


def format_span(seconds: float) -> str:
    """3 days, 23 h, 40 min: how long a history is, as a person says it."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days".replace(".0 days", " days")
    if seconds >= 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 60:.0f} min"


def run_headless(args: argparse.Namespace, path: Path, *, quiet: bool = False) -> int:
    """--no-tui: simulate in the foreground until --duration or Ctrl-C / SIGTERM, then flush."""
    from llmtop.collector.core import CollectorCore
    from llmtop.demo.simulator import Simulator

    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGTERM, on_term)
    core = CollectorCore(path)
    written_before = core.writer.written  # history written by this process is not live traffic
    start = time.time()
    incident_at = None if args.incident_after is None else start + args.incident_after
    # The history's customers and users, another stream of traffic (not a replay of its first
    # minutes).
    sim = Simulator(core, seed=args.seed, stream=1, incident_at=incident_at)
    try:
        sim.run_live(rate=args.speed, duration=args.duration, should_stop=lambda: stop)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        flushed = core.flush(30)
    w = core.writer
    elapsed = max(time.time() - start, 1e-9)
    live = w.written - written_before
    print(
        f"llmtop demo: {live:,} live row{'' if live == 1 else 's'} written in {elapsed:.1f}s "
        f"({live / elapsed:,.0f} rows/s), {w.dropped:,} dropped"
        f"{'' if flushed else ' (flush timed out)'}, db {path}",
        flush=True,
    )
    return 0


#: Alert rules for the demo's database. The built-in dollar floors (≥ $1 per window) are sized for
#: a production workload; the demo spends a few dollars an hour, so its floors are scaled down
#: with it and its spike window is short enough to catch the incident within a minute or two.
DEMO_RULES = """\
# Written by `llmtop demo` for its own database: thresholds scaled to the demo's small spend.
[spike]
window = "2m"
min_change_usd = 0.25

[runaway]
min_usd = 0.5

[owners]
"feature=support-summarize" = "team-support"
"""


def write_demo_rules(db: Path) -> None:
    """Put the demo's rules beside its database unless the user has a rules file there already."""
    from llmtop.alerts.rules import default_rules_path

    rules = default_rules_path(db)
    if not rules.exists():
        rules.parent.mkdir(parents=True, exist_ok=True)
        rules.write_text(DEMO_RULES)


def _file_path(text: str) -> Path:
    """A file path, not a URL: `--db postgresql://...` became a SQLite file named
    `postgresql:/...` in the current directory (and a mysql:// one printed its password)."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", text):
        raise argparse.ArgumentTypeError(
            f"{text.split('://')[0]}://...: the demo writes a SQLite file; give a path"
        )
    return Path(text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.speed <= 0:
        print("llmtop demo: --speed must be > 0", file=sys.stderr)
        return 2
    if args.db is None:
        path = demo_db_path()
        _remove_db(path)  # the demo's own file: a fresh week every run, never doubled history
    else:
        path = args.db.expanduser()
    write_demo_rules(path)
    if args.history > 0:
        existing = _row_count(path)
        if existing:
            print(f"llmtop demo: {path} already has {existing:,} rows; not adding history")
        else:
            write_history(path, args.history, args.speed, args.seed, quiet=False)
    if args.no_tui:
        if args.incident_after is not None:
            print(
                f"llmtop demo: simulating {args.speed:g} calls/s; support-summarize ships prompt "
                f"v2 after {args.incident_after:g}s (Ctrl-C to stop)",
                flush=True,
            )
        return run_headless(args, path)
    return run_with_tui(args, path)


def run_with_tui(args: argparse.Namespace, path: Path) -> int:
    """Live simulator in a child process, dashboard in this one; the child dies with the TUI."""
    cmd = [
        sys.executable,
        "-m",
        "llmtop.demo.run",
        "--db",
        str(path),
        "--speed",
        repr(args.speed),
        "--seed",
        str(args.seed),
        "--history",
        "0",
        "--incident-after",
        "off" if args.incident_after is None else repr(args.incident_after),
    ]
    if args.duration is not None:
        cmd += ["--duration", repr(args.duration + 5)]  # outlive the TUI; it is stopped anyway
    log_path = path.with_name(path.name + ".simulator.log")
    with open(log_path, "ab") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        try:
            from llmtop.tui.app import run_tui
        except ImportError as exc:
            print(
                f"llmtop demo: the dashboard is not available ({exc}); "
                "use --no-tui and run `llmtop --db PATH` elsewhere",
                file=sys.stderr,
            )
            return 1
        return int(run_tui(db_paths=[path], window="1h", exit_after=args.duration) or 0)
    finally:
        if child.poll() is None:
            child.terminate()  # SIGTERM: the child flushes its writer and exits
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
