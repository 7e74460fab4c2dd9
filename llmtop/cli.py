"""The `llmtop` command: the dashboard by default, and a few subcommands.

Subcommands import their own modules lazily, so `llmtop` itself starts fast and never imports
litellm (only the collector does, inside the app that registers it).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path

from llmtop.args import Parser

SUBCOMMANDS = (
    "demo",
    "prices",
    "check",
    "prune",
    "vacuum",
    "metrics",
    "export",
    "report",
    "reconcile",
    "whatif",
)


def _tui_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="llmtop",
        description=(
            "top for LLM spend: a live dashboard over the llmtop collector's database (a SQLite"
            " file or a postgresql:// store). "
            f"Subcommands: {', '.join(SUBCOMMANDS)} (llmtop SUBCOMMAND --help)."
        ),
    )
    p.add_argument(
        "--db",
        action="append",
        metavar="PATH",
        help="database file (default: $LLMTOP_DB or the per-user data directory); repeat it, or"
        " give a glob ('hosts/*.db'), to merge several files into one read-only view",
    )
    p.add_argument(
        "--window",
        default=None,
        help="time window on start: 5m 1h 6h 24h 7d 30d or any NNm/NNh/NNd"
        " (default: the last one used on this database, else 1h)",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="alert rules file (default: llmtop-rules.toml beside the database)",
    )
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


#: The exit status of a command whose reader closed the pipe (`llmtop export | head`), as a
#: shell reports a tool killed by SIGPIPE. Python ignores SIGPIPE (so a webhook's or a notify
#: command's closed socket or pipe is an error, not a death), and its BrokenPipeError ended in a
#: traceback on stderr.
EXIT_PIPE = 141


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that is quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE


def _main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        cmd, rest = args[0], args[1:]
        if cmd == "demo":
            from llmtop.demo.cli import main as demo_main

            return demo_main(rest)
        if cmd == "prices":
            from llmtop.pricing.cli import main as prices_main

            return prices_main(rest)
        if cmd == "check":
            from llmtop.alerts.cli import main as check_main

            return check_main(rest)
        if cmd == "metrics":
            from llmtop.metrics import main as metrics_main

            return metrics_main(rest)
        if cmd in ("export", "report", "reconcile", "whatif"):
            from llmtop.review.cli import main as review_main

            return review_main([cmd, *rest])
        from llmtop.store.maintenance import main as maintenance_main

        return maintenance_main([cmd, *rest])

    ns = _tui_parser().parse_args(args)
    if ns.version:
        from llmtop import __version__

        print(f"llmtop {__version__}")
        return 0
    from llmtop.store.db import DatabaseError, resolve_db_path
    from llmtop.store.filters import parse_window

    try:
        if ns.window is not None:
            parse_window(ns.window)
    except ValueError as exc:
        print(f"llmtop: {exc}", file=sys.stderr)
        return 2
    paths: list[Path] = []
    for arg in ns.db or [None]:
        if arg is not None and any(ch in arg for ch in "*?["):
            found = sorted(Path(x) for x in glob.glob(os.path.expanduser(arg)))
            if not found:
                print(f"llmtop: --db {arg}: no file matches", file=sys.stderr)
                return 2
            paths.extend(f for f in found if f.resolve() not in {p.resolve() for p in paths})
        else:
            try:
                paths.append(resolve_db_path(arg))
            except DatabaseError as exc:
                print(f"llmtop: {exc}", file=sys.stderr)
                return 2
    for p in paths:
        if not p.exists():
            print(
                f"llmtop: {p}: no database yet. Register the collector in your app "
                "(litellm.callbacks = [llmtop.collector.Collector()]) or try `llmtop demo`.",
                file=sys.stderr,
            )
            return 2
    try:
        from llmtop.store.reader import Reader

        for p in paths:  # fail here, with one clear line, rather than inside the UI
            Reader(p, readonly=len(paths) > 1).close()
    except DatabaseError as exc:
        print(f"llmtop: {exc}", file=sys.stderr)
        return 2
    from llmtop.tui.app import run_tui

    return run_tui(paths, ns.window, rules_path=ns.config)


if __name__ == "__main__":
    raise SystemExit(main())
