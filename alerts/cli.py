"""`llmtop check`: evaluate the alert rules once, for cron jobs, CI and scripts.

Exit status is the contract scripts rely on:

    0  nothing to report: nothing firing, or only incidents acked or snoozed (`--all`: nothing
       firing at all; `--new`: nothing paged by this run)
    1  at least one warning incident reported, no critical
    2  at least one critical incident reported
    3  could not evaluate: malformed rules file (message is `file:line: key: problem`),
       missing or unreadable database, or bad arguments

Why it writes the alert state: `check` is an evaluator like the dashboard, and shares its state
(alerts/state.py): it honours the acks and snoozes made in any dashboard, records what it paged
so a cron job running it every five minutes pages an incident once (`--new` prints only that),
and resolves what stopped firing. A database it cannot write (a read-only file, one another
process keeps locked, a LiteLLM proxy's own database) is still evaluated: one line says the state
was not recorded, the acks recorded there still apply if they can be read, else every alert is
shown, as with `--all`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from llmtop.store.filters import MAX_EPOCH

from llmtop.args import Parser

EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_ERROR = 0, 1, 2, 3


def _epoch(text: str) -> float:
    """Seconds since 1970, finite (nan and inf made the rules divide by them)."""
    try:
        t = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds since 1970"
        ) from None
    if not math.isfinite(t) or t < 0 or t > MAX_EPOCH:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time (seconds since 1970, up to year 9999)"
        )
    return t


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        error_code=EXIT_ERROR,
        prog="llmtop check",
        description=(
            "Evaluate the alert rules once and print the incidents firing, leaving out those "
            "acked or snoozed. Exit 0: nothing to report; 1: warning; 2: critical; 3: bad "
            "rules file, database or arguments."
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
        "--now", type=_epoch, metavar="EPOCH", help="evaluate as of this time (default: now)"
    )
    shown = p.add_mutually_exclusive_group()
    shown.add_argument(
        "--all", action="store_true", help="also show incidents acked or snoozed (exit counts them)"
    )
    shown.add_argument(
        "--new",
        action="store_true",
        help="only incidents this run paged or escalated (cron: mail once per incident)",
    )
    return p


#: Alerts filed under an incident's root that `check` names one by one; the rest are counted.
RELATED_SHOWN = 8


def _at(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


def _status(inc: Any, page: str | None, quiet: float = 0.0) -> str:
    """What the on-call did or what this run did: `new page`, `escalated`, `acked`..."""
    if inc is None:
        return ""
    if page == "escalate":
        return "ESCALATED: paged again"
    if page == "page":
        return "new page"
    tags = [f"quiet {int(quiet // 60)}m"] if quiet else []
    if inc.state == "snoozed" and inc.snoozed_until:
        tags.append(f"snoozed until {_at(inc.snoozed_until)}")
    elif inc.state != "open":
        tags.append(inc.state)
    tags += ["escalated"] if inc.escalated else []
    tags += ["awaiting analysis"] if inc.paged is None and inc.state == "open" else []
    return ", ".join(tags)


def _block(
    root: Any, related: Sequence[Any], inc: Any, page: str | None, quiet: float = 0.0
) -> str:
    status = _status(inc, page, quiet)
    severity = inc.severity if inc is not None else root.severity
    since = inc.since if inc is not None else root.since
    out = (
        f"{severity.upper()}  {root.scope or 'all'}{f'  ({status})' if status else ''}\n"
        f"  what:  {root.title}\n"
        f"  cause: {root.cause}\n"
        f"  owner: {root.owner or '-'}\n"
        f"  since: {_at(since)}\n"
        f"  drill: {root.drill[0] or 'all'} by {root.drill[1]}"
    )
    if inc is not None:
        out += f"\n  incident: {inc.id}"
    if related:
        names = [
            f"{r.rule} {r.scope or 'all'} (since {datetime.fromtimestamp(r.since):%H:%M})"
            for r in related[:RELATED_SHOWN]
        ]
        more = len(related) - len(names)
        out += f"\n  related ({len(related)}, same incident): " + ", ".join(names)
        out += f", and {more} more" if more else ""
    return out


def _record(db: Any, alerts: list[Any], now: float, rules: Any) -> Any:
    """Sync the shared alert state (and deliver [notify] events). When it cannot be written,
    one line says so and the acks and snoozes recorded so far still apply if they can be read;
    None when they cannot either."""
    from llmtop.alerts.model import SyncResult
    from llmtop.alerts.state import LookBack, incidents, states, sync_pass
    from llmtop.store.alert_state import AlertStore
    from llmtop.store.db import DatabaseError

    problem: Exception
    try:
        store = AlertStore(db)
        try:
            res = sync_pass(store, alerts, now)
        finally:
            store.close()
    except LookBack as exc:
        # The acks, snoozes and severities recorded are the present's, not that instant's: the
        # alerts are shown as evaluated then, without them.
        print(f"llmtop check: {exc}; shown as evaluated then, without today's acks", file=sys.stderr)  # fmt: skip
        return None
    except DatabaseError as exc:
        problem = exc
    else:
        if rules.notify is not None:
            from llmtop.alerts.notify import Notifier, events_of

            Notifier(rules.notify).deliver(events_of(res))
        return res
    try:
        store = AlertStore.reading(db)
        try:
            res = SyncResult([], states(store, now), incidents(store, now), [], [])
        finally:
            store.close()
    except DatabaseError:
        print(f"llmtop check: alert state not recorded, acks not applied: {problem}", file=sys.stderr)  # fmt: skip
        return None
    print(f"llmtop check: alert state not recorded (acks applied): {problem}", file=sys.stderr)
    return res


def main(argv: list[str] | None = None) -> int:
    try:
        ns = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR

    from llmtop.alerts.evaluate import evaluate
    from llmtop.alerts.incidents import grouped, severity_of
    from llmtop.alerts.model import alert_json
    from llmtop.alerts.rules import RulesError, check_dimensions, default_rules_path, load_rules
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
            check_dimensions(rules, reader)
            alerts = evaluate(reader, rules, now)
        finally:
            reader.close()
    except (DatabaseError, RulesError) as exc:
        print(f"llmtop check: {exc}", file=sys.stderr)
        return EXIT_ERROR
    res = _record(db, alerts, now, rules)

    states = {s.fingerprint: s for s in res.states} if res is not None else {}
    incs = {i.id: i for i in res.incidents} if res is not None else {}
    pages = {p.incident: p.kind for p in res.pages} if res is not None else {}
    blocks: list[tuple[Any, list[Any], Any, str | None, float]] = []
    hidden = 0
    for root, related in grouped(alerts):
        s = states.get(root.fingerprint)
        inc = incs.get(s.incident) if s is not None and s.incident else None
        page = pages.get(inc.id) if inc is not None else None
        if ns.new and page is None:
            continue
        if not ns.all and inc is not None and inc.state in ("acked", "snoozed"):
            hidden += 1
            continue
        blocks.append((root, related, inc, page, 0.0))
    # Open incidents none of whose alerts fires at this instant: they resolve after 10 quiet
    # minutes (alerts.state.RESOLVE_AFTER), and until then `check` lists them as the dashboard
    # does ("quiet 3m"); it said "no alerts firing", exit 0, in the middle of an incident.
    firing = {states[a.fingerprint].incident for a in alerts if a.fingerprint in states}
    for inc in sorted(incs.values(), key=lambda i: (i.severity != "critical", i.since, i.id)):
        root = states.get(inc.root)
        if inc.state == "resolved" or inc.id in firing or root is None or ns.new:
            continue
        if not ns.all and inc.state in ("acked", "snoozed"):
            hidden += 1
            continue
        others = [states[f] for f in inc.members if f != inc.root and f in states]
        blocks.append((root, others, inc, None, max(now - inc.last_seen, 60.0)))

    if ns.json:
        out = []
        for root, related, inc, page, quiet in blocks:
            for a in (root, *related):
                d = alert_json(a)
                # The severity recorded: an alert that turned critical stays critical until it
                # resolves (what the dashboard shows), though this instant's figures say warning.
                if a.fingerprint in states:
                    d["severity"] = states[a.fingerprint].severity
                d["incident"] = inc.id if inc is not None else None
                d["incident_severity"] = inc.severity if inc is not None else root.severity
                d["state"] = inc.state if inc is not None else "open"
                d["escalated"] = bool(inc and inc.escalated)
                d["page"] = page if a is root else None
                d["quiet_for"] = round(quiet) if quiet else 0
                out.append(d)
        print(json.dumps(out, indent=2))
    elif blocks:
        print("\n\n".join(_block(*b) for b in blocks))
    elif not ns.new:
        print("llmtop check: no alerts firing" if not alerts else "llmtop check: all quiet")
    if hidden and not ns.json and not ns.new:
        print(f"({hidden} acked or snoozed incident{'s' if hidden > 1 else ''} not shown; --all)")
    if not blocks:
        return EXIT_OK
    worst = severity_of(
        inc.severity if inc is not None else r.severity for r, _, inc, _, _ in blocks
    )
    return EXIT_CRITICAL if worst == "critical" else EXIT_WARNING
