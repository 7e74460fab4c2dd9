"""Paging state in the database: which incidents are open, acknowledged, snoozed or resolved.

It lives in the database (the `alerts` and `alert_incidents` tables), not in memory, so every
llmtop process sharing it agrees: an ack in one dashboard is an ack in another and in `llmtop
check`, and a restart does not page again for an incident already raised.

Ack and snooze attach to the INCIDENT, not to one alert: a pass's incidents (alerts.incidents)
keep the id of the incident their alerts were filed under, so a broader alert joining (it
becomes the root) or an alert escalating changes nothing an on-call did. Lifecycle per incident:

    (none) ──fires──▶ open ──ack──▶ acked          (quiet until it resolves)
                       │ └─snooze─▶ snoozed        (quiet until snoozed_until, then pages again)
                       └─none of its alerts fire for RESOLVE_AFTER─▶ resolved ("resolved"
                                   event if it had paged; a shorter dip leaves it open)
    resolved ──fires again within REOPEN_WITHIN─▶ open (the same incident, no new page)
    warning ──turns critical──▶ pages once more as "escalate", open again, marked escalated
    critical stays critical until the alert resolves (no flip back to warning and again)

An incident pages once its root's cause is known (Alert.pending). Two incidents a pass finds
related merge into the one that paged first; one that splits leaves its parts the same state.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from llmtop.alerts.incidents import grouped, severity_of
from llmtop.alerts.model import Alert, AlertState, Incident, Page, SyncResult
from llmtop.store.alert_state import AlertStore, dumps

#: How long a resolved alert or incident is still returned (for "recently resolved").
RESOLVED_VISIBLE = 3600.0
#: What the dashboard offers for `z` (parse_snooze reads these and any other length).
SNOOZE_CHOICES = ("15m", "1h", "4h", "until tomorrow 09:00")
QUIET = ("acked", "snoozed")
#: A pass this long before the latest one recorded looks back (`llmtop check --now` in the
#: past): recording it would resolve every incident opened since, and the next pass in the
#: present would open them again, acks and snoozes lost. A little slack: two processes' passes
#: over a big file can finish out of order.
LOOK_BACK = 300.0


#: An alert, and an incident, resolve only once they have not fired for this long: a feature
#: making a call every few minutes dips under its threshold for a pass or two in the middle of
#: a sustained incident, and each dip sent "resolved" while it still burned (Alertmanager's
#: resolve_timeout, Grafana's "keep firing for"). Meanwhile it is shown open, "quiet Nm".
RESOLVE_AFTER = 600.0
#: Not firing for longer than this (a few dashboard passes), an unresolved alert says "quiet".
QUIET_MARK = 60.0
#: An incident that fires again this soon after it resolved is the same incident, reopened
#: without a page: a spike that dips under its threshold for one pass paged twice in 17 s
#: (the demo). Past this, its return is news and pages again.
REOPEN_WITHIN = 600.0


class LookBack(Exception):
    """A pass at a time before the shared state's latest: evaluated, never recorded."""


def _loads(text: str | None) -> dict[str, Any]:
    try:
        d = json.loads(text or "{}")
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def _higher(a: str | None, b: str | None) -> str | None:
    return b if a is None else a if b is None else severity_of((a, b))


# --- one evaluation --------------------------------------------------------------------------------


def _details(a: Alert) -> str:
    return dumps(
        {
            "causes": [list(c) for c in a.causes],
            "drill": list(a.drill),
            "parent": a.parent,
            "pending": a.pending,
            "base": [list(r) for r in a.base],
        }
    )


def _new_id(root: str, now: float, taken: set[str]) -> str:
    base = f"{root}@{now:.0f}"
    iid, n = base, 1
    while iid in taken:
        n += 1
        iid = f"{base}#{n}"
    taken.add(iid)
    return iid


def _inherited(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """State for a new incident from alert rows kept before incidents existed (or from the
    incident it split off): quiet if they were, announced at the severity they were."""
    state, until, paged = "open", None, None
    for r in rows:
        if r["state"] in QUIET and state == "open":
            state, until = r["state"], r.get("snoozed_until")
        if r["state"] != "resolved" and _loads(r.get("details_json")).get("paged", True):
            paged = _higher(paged, r["severity"])
    return {"state": state, "snoozed_until": until, "paged": paged}


def _merge(incs: list[dict[str, Any]], now: float, store: AlertStore) -> dict[str, Any]:
    """Several open incidents are now one: the one that paged first survives. It stays open if
    any part was an unacknowledged page (an ack of one part is no ack of the other)."""
    incs.sort(key=lambda r: (r["paged"] is None, r["opened"], r["id"]))
    keep = dict(incs[0])
    for other in incs[1:]:
        if other["state"] == "open" and other["paged"] is not None:
            keep.update(state="open", snoozed_until=None)
        keep["paged"] = _higher(keep["paged"], other["paged"])
        keep["escalated"] = int(bool(keep["escalated"] or other["escalated"]))
        keep["since"] = min(keep["since"], other["since"])
        store.update_incident(
            other["id"],
            state="resolved",
            resolved_at=now,
            details_json=dumps({"merged_into": keep["id"]}),
        )
    return keep


def _quiet_on_same_scope(
    members: Sequence[Alert],
    rows: dict[str, dict[str, Any]],
    active: dict[str, dict[str, Any]],
    claimed: dict[str, dict[str, Any]],
    firing: set[str | None],
) -> dict[str, Any] | None:
    """The open incident (the earliest opened) none of whose alerts fires in this pass (not in
    `firing`, the incidents of the alerts firing) and one of whose alerts watches a scope one
    of `members` watches: alerts on one scope are one incident (alerts.incidents), whether or
    not they fire in the same pass."""
    scopes = {a.scope for a in members}
    found = [
        active[r["incident"]]
        for r in rows.values()
        if r["scope"] in scopes
        and r["incident"] in active
        and r["incident"] not in claimed
        and r["incident"] not in firing
    ]
    return min(found, key=lambda i: (i["opened"], i["id"])) if found else None


def _recently_resolved(
    members: Sequence[Alert],
    rows: dict[str, dict[str, Any]],
    incs: dict[str, dict[str, Any]],
    claimed: dict[str, dict[str, Any]],
    now: float,
) -> dict[str, Any] | None:
    """The incident one of these alerts was filed under, if it resolved within REOPEN_WITHIN
    (the latest such, when several)."""
    found = []
    for a in members:
        iid = rows.get(a.fingerprint, {}).get("incident")
        inc = incs.get(iid) if iid is not None else None
        if (
            inc is not None
            and iid not in claimed
            and inc["state"] == "resolved"
            and inc["resolved_at"] is not None
            and 0 <= now - inc["resolved_at"] <= REOPEN_WITHIN
        ):
            found.append(inc)
    return max(found, key=lambda i: (i["resolved_at"], i["id"])) if found else None


def sync_pass(
    store: AlertStore, alerts: Sequence[Alert], now: float, *, previous: float | None = None
) -> SyncResult:
    """Record one evaluation: what pages now, every alert's and incident's state, and the
    incidents resolved by this pass (and, given `previous`, every one resolved after it, by
    whichever process). In one IMMEDIATE transaction (PostgreSQL: one advisory lock), so two
    processes syncing the same evaluation cannot both page."""
    pages: list[Page] = []
    resolved_now: list[str] = []
    with store.transaction():
        rows = {r["fingerprint"]: r for r in store.rows()}
        all_incs = {r["id"]: r for r in store.incident_rows()}
        wall = time.time()
        if now > wall + LOOK_BACK:
            # A pass dated in the future would resolve everything at that date, and every
            # pass in the present would then be a look back: the state stuck until then.
            raise LookBack(
                f"{datetime.fromtimestamp(now):%Y-%m-%d %H:%M} is in the future: evaluated,"
                " not recorded"
            )
        seen = [r["last_seen"] for r in (*rows.values(), *all_incs.values())]
        seen += [r["resolved_at"] for r in all_incs.values() if r["resolved_at"] is not None]
        # Times past the clock were recorded before this guard: they say nothing of the present.
        latest = max((t for t in seen if t <= wall + LOOK_BACK), default=None)
        if latest is not None and now < latest - LOOK_BACK:
            raise LookBack(
                f"{datetime.fromtimestamp(now):%Y-%m-%d %H:%M} is before the last recorded alert"
                f" pass ({datetime.fromtimestamp(latest):%Y-%m-%d %H:%M}): a look back, not recorded"
            )
        active = {i: r for i, r in all_incs.items() if r["state"] != "resolved"}
        taken = set(all_incs)
        claimed: dict[str, dict[str, Any]] = {}
        firing: set[str] = set()
        # The incidents this pass's alerts were filed under: an incident of none is quiet.
        firing_incs = {rows[a.fingerprint]["incident"] for a in alerts if a.fingerprint in rows}
        for root, children in grouped(alerts):
            members = [root, *children]
            firing.update(a.fingerprint for a in members)
            mine = sorted(
                {
                    rows[a.fingerprint]["incident"]
                    for a in members
                    if a.fingerprint in rows and rows[a.fingerprint]["incident"] in active
                }
            )
            free = [active[i] for i in mine if i not in claimed]
            if len(free) > 1:
                inc = _merge(free, now, store)
                for r in free[1:]:
                    active.pop(r["id"], None)
            elif free:
                inc = dict(free[0])
            elif not mine and (
                quiet := _quiet_on_same_scope(members, rows, active, claimed, firing_incs)
            ):
                # An open incident whose alerts went quiet for a pass (it resolves only after
                # RESOLVE_AFTER) on the scope of one firing now: the same problem, its state
                # kept. A cache-hit drop on a snoozed spike's feature, firing during the spike's
                # dip, paged as a new incident, then merged and ended the snooze.
                inc = dict(quiet)
            elif not mine and (back := _recently_resolved(members, rows, all_incs, claimed, now)):
                # Open again, as it was paged (no new page; an escalation still pages).
                inc = dict(back, state="open", snoozed_until=None, resolved_at=None)
                store.update_incident(inc["id"], state="open", snoozed_until=None, resolved_at=None)
            else:
                # New, or split off an incident an earlier group of this pass kept: its state.
                source = [claimed[i] for i in mine] or [
                    rows[a.fingerprint]
                    for a in members
                    if a.fingerprint in rows
                    and rows[a.fingerprint]["incident"] is None
                    and rows[a.fingerprint]["state"] != "resolved"
                ]
                inherit = (
                    {k: source[0][k] for k in ("state", "snoozed_until", "paged")}
                    if mine
                    else _inherited(source)
                )
                inc = {
                    "id": _new_id(root.fingerprint, now, taken),
                    "opened": now,
                    "last_seen": now,
                    "since": min(a.since for a in members),
                    "escalated": int(bool(mine) and bool(source[0]["escalated"])),
                    "resolved_at": None,
                    "details_json": None,
                    **inherit,
                }
                store.insert_incident({**inc, "root": root.fingerprint, "severity": "warning"})
            claimed[inc["id"]] = inc
            # Critical holds until the alert resolves: a spend hovering at the critical ratio
            # must not flip the screen to "warning" every other pass (on-call relaxes, the page
            # history reads wrong). The title keeps the current figure.
            sev = {
                a.fingerprint: _higher(
                    a.severity,
                    rows[a.fingerprint]["severity"]
                    if a.fingerprint in rows and rows[a.fingerprint]["state"] != "resolved"
                    else None,
                )
                for a in members
            }
            severity = severity_of(sev.values())
            if inc["state"] == "snoozed" and (inc["snoozed_until"] or 0) <= now:
                inc.update(state="open", snoozed_until=None, paged=None)  # pages again
            kind = None
            if not root.pending:
                if inc["paged"] is None and inc["state"] == "open":
                    kind = "page"
                elif inc["paged"] == "warning" and severity == "critical":
                    kind = "escalate"
                    inc.update(state="open", snoozed_until=None, escalated=1)
            if kind is not None:
                inc["paged"] = severity
                pages.append(Page(kind, replace(root, severity=severity), inc["id"]))
            since: list[float] = []
            for a in members:
                row = rows.get(a.fingerprint)
                values: dict[str, Any] = {
                    "rule": a.rule,
                    "severity": sev[a.fingerprint],
                    "scope": a.scope,
                    "title": a.title,
                    "cause": a.cause,
                    "owner": a.owner,
                    "details_json": _details(a),
                    "last_seen": now,
                    "incident": inc["id"],
                    "state": inc["state"],
                    "snoozed_until": inc["snoozed_until"],
                }
                if row is None:
                    since.append(a.since)
                    store.insert({**values, "fingerprint": a.fingerprint, "first_seen": a.since})
                    continue
                if row["state"] == "resolved" or _loads(row["details_json"]).get("pending"):
                    values["first_seen"] = a.since  # fired again, or its analysis just came
                since.append(values.get("first_seen", row["first_seen"]))
                store.update(a.fingerprint, **values)
            store.update_incident(
                inc["id"],
                root=root.fingerprint,
                severity=severity,
                state=inc["state"],
                snoozed_until=inc["snoozed_until"],
                last_seen=now,
                since=min(since),
                paged=inc["paged"],
                escalated=inc["escalated"],
            )
        for fp, row in rows.items():
            if (
                fp not in firing
                and row["state"] != "resolved"
                and now - row["last_seen"] >= RESOLVE_AFTER
            ):
                store.update(fp, state="resolved", snoozed_until=None)
        for iid, inc in active.items():
            if iid not in claimed and now - inc["last_seen"] >= RESOLVE_AFTER:
                store.update_incident(iid, state="resolved", snoozed_until=None, resolved_at=now)
                resolved_now.append(iid)
    incs = incidents(store, now)
    gone = set(resolved_now)
    resolved = [
        i
        for i in incs
        if i.id in gone
        or (previous is not None and i.resolved_at is not None and previous < i.resolved_at)
    ]
    closed = [i for i in incs if i.id in gone]
    return SyncResult(pages, states(store, now), incs, resolved, closed)


def sync(
    store: AlertStore, alerts: Sequence[Alert], now: float
) -> tuple[list[Alert], list[AlertState]]:
    """sync_pass, as (root alerts paging now, every current state)."""
    res = sync_pass(store, alerts, now)
    return res.new, res.states


# --- reading it back -------------------------------------------------------------------------------


def _state(row: dict[str, Any], inc: dict[str, Any] | None, now: float | None = None) -> AlertState:
    d = _loads(row.get("details_json"))
    drill = d.get("drill") or [row["scope"], "model"]
    quiet = 0.0 if now is None else now - row["last_seen"]
    state, until = row["state"], row.get("snoozed_until")
    if inc is not None and state != "resolved":
        state, until = inc["state"], inc["snoozed_until"]
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
        state=state,
        snoozed_until=until,
        drill=(str(drill[0]), str(drill[1])),
        parent=d.get("parent") if isinstance(d.get("parent"), str) else None,
        pending=bool(d.get("pending")),
        incident=row.get("incident"),
        escalated=bool(inc and inc["escalated"]),
        quiet_for=quiet if state != "resolved" and quiet > QUIET_MARK else 0.0,
        base=_ranges(d.get("base")),
    )


def _ranges(value: Any) -> tuple[tuple[float, float], ...]:
    """Stored base ranges; anything else (a row from before they were kept) is none."""
    try:
        return tuple((float(a), float(b)) for a, b in value or ())
    except (TypeError, ValueError):
        return ()


def unrecorded(alerts: Sequence[Alert], now: float) -> list[AlertState]:
    """What fired, as open states, for a source that cannot keep alert state (a LiteLLM proxy's
    own database): shown as they are, with no ack, snooze or paging to remember."""
    return [
        AlertState(
            fingerprint=a.fingerprint,
            rule=a.rule,
            severity=a.severity,
            scope=a.scope,
            title=a.title,
            cause=a.cause,
            causes=a.causes,
            owner=a.owner,
            since=a.since,
            last_seen=now,
            state="open",
            snoozed_until=None,
            drill=a.drill,
            parent=a.parent,
            pending=a.pending,
            base=a.base,
        )
        for a in alerts
    ]


def states(store: AlertStore, now: float) -> list[AlertState]:
    """Open, acked and snoozed alerts, plus those resolved in the last hour; open first, then
    critical, then the most recent (fingerprint last: the same rows, the same order)."""
    incs = {r["id"]: r for r in store.incident_rows()}
    out = [
        _state(r, incs.get(r["incident"]) if r.get("incident") else None, now)
        for r in store.rows()
        if r["state"] != "resolved" or r["last_seen"] >= now - RESOLVED_VISIBLE
    ]
    order = {"open": 0, "snoozed": 1, "acked": 2, "resolved": 3}
    out.sort(
        key=lambda s: (order.get(s.state, 9), s.severity != "critical", -s.since, s.fingerprint)
    )
    return out


def incidents(store: AlertStore, now: float) -> list[Incident]:
    """Open, acked and snoozed incidents, plus those resolved in the last hour (not those merged
    into another); critical first, then the longest-running, then by id."""
    members: dict[str, list[tuple[bool, str]]] = {}
    for r in store.rows():
        if r.get("incident") and r["state"] != "resolved":
            members.setdefault(r["incident"], []).append((False, r["fingerprint"]))
    out = []
    for r in store.incident_rows():
        if r["state"] == "resolved" and (
            (r["resolved_at"] or 0) < now - RESOLVED_VISIBLE
            or "merged_into" in _loads(r["details_json"])
        ):
            continue
        fps = sorted((fp != r["root"], fp) for _, fp in members.get(r["id"], []))
        out.append(
            Incident(
                id=r["id"],
                root=r["root"],
                severity=r["severity"],
                state=r["state"],
                snoozed_until=r["snoozed_until"],
                since=r["since"],
                opened=r["opened"],
                last_seen=r["last_seen"],
                paged=r["paged"],
                escalated=bool(r["escalated"]),
                resolved_at=r["resolved_at"],
                members=tuple(fp for _, fp in fps) or (r["root"],),
            )
        )
    out.sort(key=lambda i: (i.state == "resolved", i.severity != "critical", i.since, i.id))
    return out


# --- what the on-call does -------------------------------------------------------------------------


def _set(store: AlertStore, key: str, state: str, until: float | None) -> bool:
    """Ack or snooze the incident `key` names (an alert's fingerprint or an incident id), and
    every alert filed under it. False if there is no such incident or it has resolved (a
    resolved incident must page when it fires again)."""
    with store.transaction():
        rows = store.rows()
        row = next((r for r in rows if r["fingerprint"] == key), None)
        iid = row["incident"] if row is not None else key
        if row is not None and row["state"] == "resolved":
            return False
        inc = next((r for r in store.incident_rows(active_only=True) if r["id"] == iid), None)
        if inc is None:
            if row is None:
                return False
            # Recorded before incidents existed: the alert and those filed under it.
            for r in rows:
                if r["state"] != "resolved" and (
                    r["fingerprint"] == key or _loads(r["details_json"]).get("parent") == key
                ):
                    store.update(r["fingerprint"], state=state, snoozed_until=until)
            return True
        # Whoever acks or snoozes has seen it at its severity: only a turn to critical
        # after this pages again.
        store.update_incident(
            iid,
            state=state,
            snoozed_until=until,
            paged=_higher(inc["paged"], inc["severity"]),
        )
        for r in rows:
            if r["incident"] == iid and r["state"] != "resolved":
                store.update(r["fingerprint"], state=state, snoozed_until=until)
    return True


def ack(store: AlertStore, key: str) -> bool:
    """Acknowledge the incident of alert `key` (or incident id `key`): quiet until it resolves,
    or pages once more if it turns critical. False if no such incident, or it has resolved."""
    return _set(store, key, "acked", None)


def snooze(store: AlertStore, key: str, until: float) -> bool:
    """Quiet the incident of alert `key` (or incident id `key`) until `until`; if it is still
    firing then, it pages again (and at once if it turns critical before). False if none."""
    return _set(store, key, "snoozed", until)


_LENGTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)\s*$", re.IGNORECASE)
_UNTIL = re.compile(r"^\s*(?:until\s+)?(tomorrow\s*)?(\d{1,2}):(\d{2})\s*$", re.IGNORECASE)
_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_snooze(text: str, now: float) -> float:
    """When a snooze given as `text` ends: a length ("15m", "1h", "4h", "2d", "90s") or a local
    time ("until tomorrow 09:00", "until 17:30": today if still ahead, else tomorrow).

    Raises ValueError with one line to show as it is."""
    m = _LENGTH.match(text)
    if m:
        secs = float(m.group(1)) * _UNITS[m.group(2).lower()]
        if 0 < secs <= 30 * 86400:
            return now + secs
        raise ValueError(f"snooze {text.strip()!r}: a length from 1s to 30d")
    m = _UNTIL.match(text)
    if m and int(m.group(2)) < 24 and int(m.group(3)) < 60:
        # Naive local times: .timestamp() reads them through the local zone's rules, so
        # "tomorrow 09:00" is 09:00 on the clock across a daylight-saving change.
        local = datetime.fromtimestamp(now)
        at = local.replace(hour=int(m.group(2)), minute=int(m.group(3)), second=0, microsecond=0)
        if m.group(1) or at <= local:
            at += timedelta(days=1)
        return at.timestamp()
    raise ValueError(
        f"snooze {text.strip()!r}: give a length (15m, 1h, 4h) or a time (until tomorrow 09:00)"
    )
