"""`llmtop reconcile FILE [--tolerance 2%] [--json]`: the table, or JSON for scripts."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from llmtop.review.common import UsageError, open_reader, usd
from llmtop.review.reconcile import our_days, read_provider, reconcile

from llmtop.args import Parser


def parse_tolerance(text: str) -> float:
    t = text.strip().rstrip("%")
    try:
        v = float(t) / 100.0
    except ValueError:
        raise UsageError(f"--tolerance {text!r}: use a percentage like 2%") from None
    if not 0 <= v < 10:
        raise UsageError(f"--tolerance {text!r}: use a percentage like 2%")
    return v


def run_reconcile(argv: list[str]) -> int:
    p = Parser(
        prog="llmtop reconcile",
        description="Compare a provider's usage/cost export (OpenAI costs JSON/CSV, Anthropic"
        " cost report JSON/CSV) with llmtop's rows per UTC day and model.",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--db", help="database file (default: $LLMTOP_DB or the per-user data file)")
    p.add_argument("--tolerance", default="2%", help="flag differences beyond this (default 2%%)")
    p.add_argument("--json", action="store_true", help="JSON for scripts")
    ns = p.parse_args(argv)
    tol = parse_tolerance(ns.tolerance)
    kind, provider = read_provider(ns.file)
    if not provider:
        raise UsageError(f"{ns.file}: no cost rows")
    days = sorted({d for d, _ in provider})
    start = datetime.fromisoformat(days[0]).replace(tzinfo=timezone.utc).timestamp()
    end = (datetime.fromisoformat(days[-1]) + timedelta(days=1)).replace(tzinfo=timezone.utc)
    reader = open_reader(ns.db)
    try:
        rows = reconcile(provider, our_days(reader, start, end.timestamp()), tol)
    finally:
        reader.close()
    flagged = [r for r in rows if r.flagged]
    if ns.json:
        out = {
            "format": kind,
            "tolerance": tol,
            "rows": [
                {
                    "day": r.day,
                    "model": r.model,
                    "provider_usd": r.provider,
                    "llmtop_usd": r.ours,
                    "litellm_usd": r.litellm,
                    "calls": r.calls,
                    "delta_usd": r.delta,
                    "delta_pct": r.delta_pct,
                    "flagged": r.flagged,
                    "reason": r.reason or None,
                }
                for r in rows
            ],
        }
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        print(f"{ns.file} ({kind}), tolerance {tol:.1%}")
        head = ("day", "model", "provider", "llmtop", "litellm", "Δ $", "Δ %", "")
        print("{:<10} {:<28} {:>10} {:>10} {:>10} {:>9} {:>7}  {}".format(*head))
        for r in rows:
            pct = "n/a" if r.delta_pct is None else f"{r.delta_pct:+.1%}"
            print(
                f"{r.day:<10} {r.model[:28]:<28} {usd(r.provider):>10} {usd(r.ours):>10}"
                f" {usd(r.litellm):>10} {usd(r.delta):>9} {pct:>7}  "
                + (f"FLAG {r.reason}" if r.flagged else "")
            )
        print(f"{len(flagged)} of {len(rows)} rows beyond {tol:.1%}")
    return 1 if flagged else 0
