"""`llmtop check`: evaluate the alert rules once, for cron jobs, CI and scripts.

Exit status is the contract scripts rely on:

    0  nothing firing
    1  at least one warning, no critical
    2  at least one critical
    3  could not evaluate: malformed rules file (message is `file:line: key: problem`),
       missing or unreadable database, or bad arguments

It opens the database read-only and does not touch paging state: a cron job running `check` must
not acknowledge, resolve or re-page anything the dashboard shows. The exception is a rules file
with `[notify]`: then `check` records pages as the dashboard does (alerts/notify.py), so each
incident is announced once, by whichever process sees it first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_ERROR = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="llmtop check",
        description=(
            "Evaluate the alert rules once and print what is firing. Exit 0: nothing; "
            "1: warning; 2: critical; 3: bad rules file, database or arguments."
        ),
    )
    p.add_argument("--db", metavar="PATH", help="database (default: $LLMTOP_DB or per-user dir)")
    p.add_argument(
        "--config",
        metavar="PATH",
        type=Path,
        help="rules file (default: llmtop-rules.toml beside the database; defaults if absent)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of alert objects")
    p.add_argument(
        "--now", type=float, metavar="EPOCH", help="evaluate as of this time (default: now)"
    )
    return p


#: Alerts filed under an incident's root that `check` names one by one; the rest are counted.
RELATED_SHOWN = 8


def _text(a: object, related: list[object]) -> str:
    from llmtop.alerts.model import Alert

    assert isinstance(a, Alert)
    since = datetime.fromtimestamp(a.since).strftime("%Y-%m-%d %H:%M")
    out = (
        f"{a.severity.upper()}  {a.scope or 'all'}\n"
        f"  what:  {a.title}\n"
        f"  cause: {a.cause}\n"
        f"  owner: {a.owner or '-'}\n"
        f"  since: {since}\n"
        f"  drill: {a.drill[0] or 'all'} by {a.drill[1]}"
    )
    if related:
        names = [
            f"{r.rule} {r.scope or 'all'}"  # type: ignore[attr-defined]
            for r in related[:RELATED_SHOWN]
        ]
        more = len(related) - len(names)
        out += f"\n  related ({len(related)}, same incident): " + ", ".join(names)
        out += f", and {more} more" if more else ""
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        ns = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR

    from llmtop.alerts.evaluate import evaluate
    from llmtop.alerts.rules import RulesError, default_rules_path, load_rules
    from llmtop.store.db import DatabaseError, resolve_db_path
    from llmtop.store.reader import Reader

    try:
        db = resolve_db_path(ns.db)
    except DatabaseError as exc:
        print(f"llmtop check: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if ns.config is not None and not ns.config.exists():
        print(f"llmtop check: {ns.config}: no such rules file", file=sys.stderr)
        return EXIT_ERROR
    try:
        rules = load_rules(ns.config if ns.config is not None else default_rules_path(db))
    except RulesError as exc:
        print(f"llmtop check: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not db.exists():
        print(
            f"llmtop check: {db}: no such database (is the collector writing somewhere else? "
            "use --db or $LLMTOP_DB)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    now = ns.now if ns.now is not None else time.time()
    try:
        reader = Reader(db, readonly=True)
        try:
            alerts = evaluate(reader, rules, now)
        finally:
            reader.close()
        if rules.notify is not None:
            from llmtop.alerts.notify import Notifier, sync_events
            from llmtop.store.alert_state import AlertStore

            store = AlertStore(db)
            try:
                events = sync_events(store, alerts, now)[2]
            finally:
                store.close()
            Notifier(rules.notify).deliver(events)
    except DatabaseError as exc:
        print(f"llmtop check: {exc}", file=sys.stderr)
        return EXIT_ERROR

    if ns.json:
        print(json.dumps([a.to_json() for a in alerts], indent=2))
    elif alerts:
        # One block per incident: what is filed under a root is listed inside its block.
        under: dict[str, list[object]] = {}
        for a in alerts:
            if a.parent is not None:
                under.setdefault(a.parent, []).append(a)
        roots = [a for a in alerts if a.parent is None]
        print("\n\n".join(_text(a, under.get(a.fingerprint, [])) for a in roots))
    else:
        print("llmtop check: no alerts firing")
    if any(a.severity == "critical" for a in alerts):
        return EXIT_CRITICAL
    return EXIT_WARNING if alerts else EXIT_OK
