"""`llmtop export | report | reconcile | whatif`: argument parsing and the one-line errors.

Each command's work lives in its own module; this one turns what the user typed into calls and
any problem they can fix into `llmtop CMD: problem` on stderr with exit status 2 (never a
traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmtop.review.common import (
    UsageError,
    check_dimensions,
    clauses_of,
    open_reader,
    parse_until,
    window_of,
)
from llmtop.store.db import DatabaseError

from llmtop.args import Parser

COMMANDS = ("export", "report", "reconcile", "whatif")


def common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="database file (default: $LLMTOP_DB or the per-user data file)")
    p.add_argument(
        "--until",
        metavar="WHEN",
        help="end of the range read (default now): 2026-05-01, 2026-05-01T12:00 or a timestamp",
    )


def export_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="llmtop export",
        description="Rows of the requests view (or totals per value of a dimension) in a window,"
        " under the dashboard's filter syntax, streamed in constant memory.",
    )
    common_args(p)
    p.add_argument(
        "--window", default="24h", help="how far back from --until (default 24h before now)"
    )
    p.add_argument("--filter", default="", help="e.g. 'team=search model~gpt-4o*'")
    p.add_argument("--group-by", metavar="DIM", help="one row per value of DIM instead of rows")
    p.add_argument("--format", default="csv", choices=("csv", "json", "jsonl", "parquet"))
    p.add_argument("--out", type=Path, help="file to write (default: stdout)")
    return p


def run_export(argv: list[str]) -> int:
    from llmtop.review.export import Progress, group_chunks, write_rows
    from llmtop.store.rows import (
        GROUP_COLUMNS,
        Column,
        count_rows,
        group_totals,
        request_chunks,
        request_columns,
    )

    ns = export_parser().parse_args(argv)
    t = parse_until(ns.until)
    start, end = window_of(ns.window, t)
    clauses = clauses_of(ns.filter)
    reader = open_reader(ns.db)
    try:
        check_dimensions(reader, [c.key for c in clauses], "--filter")
        if ns.group_by:
            check_dimensions(reader, [ns.group_by], "--group-by")
        with reader.read_transaction():
            if ns.group_by:
                try:
                    groups = group_totals(reader, start, end, ns.group_by, clauses)
                except ValueError as exc:
                    raise UsageError(f"--group-by: {exc}") from None
                cols = [Column(ns.group_by, "str"), *GROUP_COLUMNS[1:]]
                n = write_rows(group_chunks(groups), cols, ns.format, ns.out)
            else:
                columns = request_columns(reader)
                # The bar goes to stderr: shown when the rows go to a file (or a redirect), never
                # mixed into rows on the terminal.
                show = ns.out is not None or not sys.stdout.isatty()
                progress = Progress(count_rows(reader, start, end, clauses)) if show else None
                chunks = request_chunks(reader, start, end, clauses, columns=columns)
                n = write_rows(chunks, columns, ns.format, ns.out, progress)
    finally:
        reader.close()
    if ns.out is not None:
        print(f"llmtop export: {n:,} rows to {ns.out}", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "export":
            return run_export(rest)
        if cmd == "report":
            from llmtop.review.report_cli import run_report

            return run_report(rest)
        if cmd == "reconcile":
            from llmtop.review.reconcile_cli import run_reconcile

            return run_reconcile(rest)
        if cmd == "whatif":
            from llmtop.review.whatif import run_whatif

            return run_whatif(rest)
    except (UsageError, DatabaseError) as exc:
        print(f"llmtop {cmd}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `llmtop export | head`
        return 0
    raise SystemExit(f"llmtop: unknown command {cmd!r}")
