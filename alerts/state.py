"""Paging state in the database: which alerts are open, acknowledged, snoozed or resolved.

It lives in the `alerts` table (not in memory) so every llmtop process sharing the file agrees: an
ack in one dashboard is an ack in another, and restarting the dashboard does not page again for
an incident it already raised. Lifecycle per fingerprint (rule + scope):

    (none) ──fires──▶ open ──ack──▶ acked          (quiet until it resolves)
                       │ └─snooze─▶ snoozed        (quiet until snoozed_until, then pages again)
                       └─stops firing─▶ resolved ──fires again──▶ open (pages again)

An escalation from warning to critical pages again even when acknowledged: the incident is no
longer the one that was acknowledged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llmtop.alerts.model import Alert, AlertState
from llmtop.store import alert_queries as q
from llmtop.store.queries import Reader

#: How long a resolved alert is still returned in the states list (for "recently resolved").
RESOLVED_VISIBLE = 3600.0


def _details(a: Alert) -> str:
    return q.dumps({"causes": [list(c) for c in a.causes], "drill": list(a.drill)})


def _state(row: dict[str, Any]) -> AlertState:
    try:
        d = json.loads(row.get("details_json") or "{}")
    except ValueError:
        d = {}
    drill = d.get("drill") or [row["scope"], "model"]
    return AlertState(
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        severity=row["severity"],
        scope=row["scope"],
        title=row["title"],
        cause=row.get("cause") or "",
        causes=tuple((str(t), float(v)) for t, v in d.get("causes", [])),
        owner=row.get("owner"),
        since=row["first_seen"],
        last_seen=row["last_seen"],
        state=row["state"],
        snoozed_until=row.get("snoozed_until"),
        drill=(str(drill[0]), str(drill[1])),
    )


def _fields(a: Alert) -> dict[str, Any]:
    return {
        "rule": a.rule,
        "severity": a.severity,
        "scope": a.scope,
        "title": a.title,
        "cause": a.cause,
        "owner": a.owner,
        "details_json": _details(a),
    }


def sync(
    reader: Reader, alerts: Sequence[Alert], now: float
) -> tuple[list[Alert], list[AlertState]]:
    """Record this evaluation; return (alerts to page now, every current state).

    Runs in one IMMEDIATE transaction so two processes syncing the same evaluation cannot both
    decide an alert is new.
    """
    new: list[Alert] = []
    q.begin(reader)
    try:
        rows = {r["fingerprint"]: r for r in q.load_alert_rows(reader)}
        firing = set()
        for a in alerts:
            firing.add(a.fingerprint)
            row = rows.get(a.fingerprint)
            if row is None:
                q.insert_alert(
                    reader,
                    {
                        "fingerprint": a.fingerprint,
                        **_fields(a),
                        "first_seen": a.since,
                        "last_seen": now,
                        "state": "open",
                    },
                )
                new.append(a)
                continue
            state = row["state"]
            values: dict[str, Any] = {**_fields(a), "last_seen": now}
            escalated = row["severity"] == "warning" and a.severity == "critical"
            if state == "resolved":
                values.update(state="open", first_seen=a.since, snoozed_until=None)
                new.append(a)
            elif state == "snoozed" and (row["snoozed_until"] or 0) <= now:
                values.update(state="open", snoozed_until=None)
                new.append(a)
            elif escalated and state in ("open", "acked"):
                values.update(state="open")
                new.append(a)
            q.update_alert(reader, a.fingerprint, **values)
        for fp, row in rows.items():
            if fp not in firing and row["state"] != "resolved":
                q.update_alert(reader, fp, state="resolved", snoozed_until=None)
        q.commit(reader)
    except BaseException:
        q.rollback(reader)
        raise
    return new, states(reader, now)


def states(reader: Reader, now: float) -> list[AlertState]:
    """Open, acked and snoozed alerts, plus those resolved in the last hour; critical first."""
    out = [
        _state(r)
        for r in q.load_alert_rows(reader)
        if r["state"] != "resolved" or r["last_seen"] >= now - RESOLVED_VISIBLE
    ]
    order = {"open": 0, "snoozed": 1, "acked": 2, "resolved": 3}
    out.sort(key=lambda s: (order.get(s.state, 9), s.severity != "critical", -s.since))
    return out


def ack(reader: Reader, fingerprint: str) -> bool:
    """Acknowledge: quiet until it resolves (or escalates). False if no such alert."""
    return q.set_alert_state(reader, fingerprint, "acked", None) > 0


def snooze(reader: Reader, fingerprint: str, until: float) -> bool:
    """Quiet until `until`; if still firing then, it pages again. False if no such alert."""
    return q.set_alert_state(reader, fingerprint, "snoozed", until) > 0
