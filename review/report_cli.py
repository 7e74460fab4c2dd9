"""`llmtop report`: the weekly (or monthly, or any range's) cost review."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmtop.review.common import (
    UsageError,
    check_dimensions,
    check_out,
    clauses_of,
    open_reader,
    parse_period,
    parse_until,
)

from llmtop.args import Parser


def report_parser() -> argparse.ArgumentParser:
    from llmtop.review.cli import common_args

    p = Parser(
        prog="llmtop report",
        description="The cost review: spend by team, feature, model and environment against the"
        " previous period, top movers and their likely causes, budgets, waste and savings, tasks"
        " and cost per successful task, margin per customer, data quality, incidents.",
    )
    common_args(p)
    p.add_argument(
        "--period",
        default="week",
        help="week (last 7 days), month (last 30 days), a window like 14d, or"
        " 2026-05-01..2026-05-08 (end date exclusive); default week",
    )
    p.add_argument("--format", default="md", choices=("md", "html", "json"))
    p.add_argument("--out", type=Path, help="file to write (default: stdout)")
    p.add_argument("--filter", default="", help="only rows matching, e.g. 'environment=prod'")
    p.add_argument(
        "--config",
        type=Path,
        help="rules file for budgets, owners and plans (default: llmtop-rules.toml beside the"
        " database)",
    )
    p.add_argument(
        "--no-causes", action="store_true", help="skip the movers' cause analysis (faster)"
    )
    return p


def run_report(argv: list[str]) -> int:
    from llmtop.alerts.rules import RulesError, default_rules_path, load_rules
    from llmtop.alerts.rules import check_dimensions as check_rule_dimensions
    from llmtop.pricing import cache_read_saving
    from llmtop.review.report_data import build_report
    from llmtop.review.report_render import to_html, to_json, to_markdown

    ns = report_parser().parse_args(argv)
    until = parse_until(ns.until)
    period = parse_period(ns.period, until)
    clauses = clauses_of(ns.filter)
    reader = open_reader(ns.db)
    try:
        check_dimensions(reader, [c.key for c in clauses], "--filter")
        if ns.config is not None and not ns.config.exists():
            raise UsageError(f"--config {ns.config}: no such file")
        try:
            rules = load_rules(ns.config or default_rules_path(reader.path))
            check_rule_dimensions(rules, reader)
        except RulesError as exc:
            raise UsageError(str(exc)) from None
        report = build_report(
            reader,
            period,
            rules,
            clauses=clauses,
            savings=cache_read_saving,
            causes=not ns.no_causes,
        )
    finally:
        reader.close()
    text = {"md": to_markdown, "html": to_html, "json": to_json}[ns.format](report)
    if ns.out is not None:
        check_out(ns.out)
    if ns.out is None:
        sys.stdout.write(text)
    else:
        try:
            ns.out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--out {ns.out}: {exc.strerror or exc}") from None
        print(f"llmtop report: {ns.out}", file=sys.stderr)
    return 0
