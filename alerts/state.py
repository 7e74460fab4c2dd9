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
from llmtop.store.alert_state import AlertStore, dumps

#: How long a resolved alert is still returned in the states list (for "recently resolved").
RESOLVED_VISIBLE = 3600.0


def _details(a: Alert, paged: bool) -> str:
    return dumps(
        {
            "causes": [list(c) for c in a.causes],
            "drill": list(a.drill),
            "parent": a.parent,
            "pending": a.pending,
            "paged": paged,
        }
    )


def _loads(row: dict[str, Any]) -> dict[str, Any]:
    try:
        d = json.loads(row.get("details_json") or "{}")
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def _state(row: dict[str, Any]) -> AlertState:
    d = _loads(row)
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
        parent=d.get("parent") if isinstance(d.get("parent"), str) else None,
        pending=bool(d.get("pending")),
    )


def _fields(a: Alert, paged: bool) -> dict[str, Any]:
    return {
        "rule": a.rule,
        "severity": a.severity,
        "scope": a.scope,
        "title": a.title,
        "cause": a.cause,
        "owner": a.owner,
        "details_json": _details(a, paged),
    }


def _pages(a: Alert) -> bool:
    """Only an incident's root pages, and only once its cause is known (see Alert.pending)."""
    return a.parent is None and not a.pending


def _covered(a: Alert, unannounced: set[str]) -> bool:
    """Announced by its root's page: filed under a root that is itself known and paging."""
    return a.parent is not None and not a.pending and a.parent not in unannounced


def sync(
    store: AlertStore, alerts: Sequence[Alert], now: float
) -> tuple[list[Alert], list[AlertState]]:
    """Record this evaluation; return (alerts to page now, every current state).

    Runs in one IMMEDIATE transaction so two processes syncing the same evaluation cannot both
    decide an alert is new.
    """
    new: list[Alert] = []
    # Roots still awaiting analysis have not paged: what is filed under them is not announced.
    unannounced = {a.fingerprint for a in alerts if a.pending}
    with store.transaction():
        rows = {r["fingerprint"]: r for r in store.rows()}
        firing = set()
        for a in alerts:
            firing.add(a.fingerprint)
            row = rows.get(a.fingerprint)
            # `paged`: this alert has been announced, by its own page or (as part of an
            # incident) by its root's; rows from before incidents existed were paged.
            values: dict[str, Any] = {"last_seen": now}
            if row is None:
                values.update(fingerprint=a.fingerprint, first_seen=a.since, state="open")
                paged = False
            else:
                state = row["state"]
                paged = _loads(row).get("paged", True) is not False
                escalated = row["severity"] == "warning" and a.severity == "critical"
                if state == "resolved":
                    values.update(state="open", first_seen=a.since, snoozed_until=None)
                    paged = False
                elif state == "snoozed" and (row["snoozed_until"] or 0) <= now:
                    values.update(state="open", snoozed_until=None)
                    paged = False
                elif escalated and state in ("open", "acked"):
                    values.update(state="open")
                    paged = False
            if not paged:
                if _pages(a):
                    new.append(a)
                    paged = True
                elif _covered(a, unannounced):
                    paged = True
            values.update(_fields(a, paged))
            if row is None:
                store.insert(values)
            else:
                store.update(a.fingerprint, **values)
        for fp, row in rows.items():
            if fp not in firing and row["state"] != "resolved":
                store.update(fp, state="resolved", snoozed_until=None)
    return new, states(store, now)


def states(store: AlertStore, now: float) -> list[AlertState]:
    """Open, acked and snoozed alerts, plus those resolved in the last hour; critical first."""
    out = [
        _state(r)
        for r in store.rows()
        if r["state"] != "resolved" or r["last_seen"] >= now - RESOLVED_VISIBLE
    ]
    order = {"open": 0, "snoozed": 1, "acked": 2, "resolved": 3}
    out.sort(key=lambda s: (order.get(s.state, 9), s.severity != "critical", -s.since))
    return out


def ack(store: AlertStore, fingerprint: str) -> bool:
    """Acknowledge: quiet until it resolves (or escalates). False if no such alert.

    An incident's root takes the alerts filed under it along: acking the page acks the incident.
    """
    return store.set_state(fingerprint, "acked", None) > 0


def snooze(store: AlertStore, fingerprint: str, until: float) -> bool:
    """Quiet until `until`; if still firing then, it pages again. False if no such alert.

    Like ack, it takes the alerts filed under it along."""
    return store.set_state(fingerprint, "snoozed", until) > 0
