"""An incident keeps its identity: ack and snooze survive a new root and hold unless it turns
critical (then it pages once more, marked escalated); grouping and roots do not depend on the
order alerts come in; a resolved incident is reported once; snooze lengths parse.

State goes through the real AlertStore on a SQLite file (and on PostgreSQL where marked); the
alerts are built by hand because what is tested is what the state does with them (the engine's
own grouping on a database written through the collector is in tests/test_check.py)."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llmtop.alerts.detectors import Candidate, fingerprint
from llmtop.alerts.explain import Evidence, Why
from llmtop.alerts.incidents import grouped, incidents, severity_of
from llmtop.alerts.model import Alert
from llmtop.alerts.state import (
    REOPEN_WITHIN,
    RESOLVE_AFTER,
    SNOOZE_CHOICES,
    ack,
    parse_snooze,
    snooze,
    sync_pass,
)
from llmtop.store.alert_state import AlertStore
from llmtop.store.filters import Clause

NOW = 1_790_000_000.0


def alert(scope: str, rule: str = "anomaly", sev: str = "warning", parent: str | None = None) -> Alert:  # fmt: skip
    return Alert(
        fingerprint=fingerprint(rule, scope),
        rule=rule,
        severity=sev,
        scope=scope,
        title=f"{scope} spend up",
        cause="new prompt_version v2",
        causes=(("new prompt_version v2", 1.0),),
        owner="team-support",
        since=NOW - 600,
        drill=(scope, "prompt_version"),
        parent=parent,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, llmtop_db: Path) -> AlertStore:
    where = llmtop_db if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = AlertStore(where)
    yield s
    s.close()


CUST = "runaway|customer=acme"
FEAT = "anomaly|feature=chat"


def test_a_snooze_survives_a_broader_alert_joining_as_the_new_root(store: AlertStore) -> None:
    """The customer's alert pages and is snoozed for an hour; a minute later the feature's
    band breaks too and becomes the incident's root. Same incident: still snoozed, no page."""
    first = sync_pass(store, [alert("customer=acme", "runaway")], NOW)
    assert [p.alert.fingerprint for p in first.pages] == [CUST]
    (inc,) = first.incidents
    assert snooze(store, CUST, NOW + 3600)
    for t in (NOW + 60, NOW + 120, NOW + 1800):
        res = sync_pass(
            store, [alert("feature=chat"), alert("customer=acme", "runaway", parent=FEAT)], t
        )
        assert res.pages == []
        (now_inc,) = res.incidents
        assert (now_inc.id, now_inc.root, now_inc.state) == (inc.id, FEAT, "snoozed")
        assert {s.fingerprint: s.state for s in res.states} == {FEAT: "snoozed", CUST: "snoozed"}
    # The snooze ends with the incident still firing: it pages again, once.
    later = [alert("feature=chat"), alert("customer=acme", "runaway", parent=FEAT)]
    assert [p.kind for p in sync_pass(store, later, NOW + 3601).pages] == ["page"]
    assert sync_pass(store, later, NOW + 3660).pages == []


def test_an_alert_on_a_snoozed_incidents_scope_joins_it_while_the_incident_is_quiet(
    store: AlertStore,
) -> None:
    """A spike pages and is snoozed; during one pass of its dip under the threshold a cache-hit
    drop on the same feature fires: same scope, same incident, still snoozed, no page (it paged
    as a new incident, then merged with the spike and the snooze was gone)."""
    spike, drop = alert("feature=chat", "spike"), alert("feature=chat", "cache_hit_drop")
    first = sync_pass(store, [spike], NOW)
    (inc,) = first.incidents
    assert snooze(store, spike.fingerprint, NOW + 3600)
    res = sync_pass(store, [drop], NOW + 60)
    assert res.pages == []
    assert [(i.id, i.state) for i in res.incidents] == [(inc.id, "snoozed")]
    both = [spike, Alert(**{**drop.__dict__, "parent": spike.fingerprint})]
    for t in (NOW + 120, NOW + 180):
        res = sync_pass(store, both, t)
        assert res.pages == []
        assert [(i.id, i.state) for i in res.incidents] == [(inc.id, "snoozed")]


def test_an_ack_holds_as_alerts_join_and_an_escalation_pages_once_marked(
    store: AlertStore,
) -> None:
    res = sync_pass(store, [alert("feature=chat")], NOW)
    assert [(p.kind, p.alert.severity) for p in res.pages] == [("page", "warning")]
    assert ack(store, FEAT)
    # A related warning joins, the root changes: the ack holds.
    joined = [alert("feature=chat"), alert("customer=acme", "runaway", parent=FEAT)]
    res = sync_pass(store, joined, NOW + 60)
    assert res.pages == [] and {s.state for s in res.states} == {"acked"}
    # The customer turns critical: the incident is critical (one severity everywhere) and pages
    # once more, as an escalation, marked so.
    crit = [alert("feature=chat"), alert("customer=acme", "runaway", "critical", parent=FEAT)]
    crit[0] = Alert(**{**crit[0].__dict__, "severity": severity_of(a.severity for a in crit)})
    res = sync_pass(store, crit, NOW + 120)
    assert [(p.kind, p.alert.fingerprint, p.alert.severity) for p in res.pages] == [
        ("escalate", FEAT, "critical")
    ]
    (inc,) = res.incidents
    assert inc.escalated and inc.severity == "critical" and inc.state == "open"
    assert all(s.escalated and s.incident == inc.id for s in res.states)
    root_state = next(s for s in res.states if s.fingerprint == FEAT)
    assert root_state.severity == inc.severity == res.pages[0].alert.severity
    assert sync_pass(store, crit, NOW + 180).pages == []
    # Acked at critical, it flaps to warning and back: the ack holds, nothing pages.
    assert ack(store, CUST)  # any alert of the incident acks the incident
    for t, fired in ((NOW + 240, joined), (NOW + 300, crit), (NOW + 360, crit)):
        res = sync_pass(store, fired, t)
        assert res.pages == [] and {s.state for s in res.states} == {"acked"}


def test_critical_holds_until_the_alert_resolves(store: AlertStore) -> None:
    """A spend hovering at the critical ratio: the screen and `check` say critical on every
    pass, not warning and critical by turns; once resolved, a new firing starts afresh."""
    res = sync_pass(store, [alert("feature=chat", sev="critical")], NOW)
    assert [(p.kind, p.alert.severity) for p in res.pages] == [("page", "critical")]
    for t in (NOW + 60, NOW + 120):
        res = sync_pass(store, [alert("feature=chat", sev="warning")], t)
        assert res.pages == []
        assert [s.severity for s in res.states] == ["critical"]
        assert [i.severity for i in res.incidents] == ["critical"]
    sync_pass(store, [], NOW + 120 + RESOLVE_AFTER)
    res = sync_pass(
        store, [alert("feature=chat", sev="warning")], NOW + 180 + RESOLVE_AFTER + REOPEN_WITHIN
    )
    assert [s.severity for s in res.states if s.state != "resolved"] == ["warning"]


def test_a_resolved_incident_is_reported_once_to_whoever_resolved_it(
    store: AlertStore, llmtop_db: Path
) -> None:
    sync_pass(store, [alert("feature=chat")], NOW)
    # A dip shorter than RESOLVE_AFTER: still open, nothing said (it sent "resolved" while the
    # incident still burned).
    dip = sync_pass(store, [], NOW + 60)
    assert dip.closed == dip.resolved == [] and [i.state for i in dip.incidents] == ["open"]
    assert [s.state for s in dip.states] == ["open"]
    q = NOW + RESOLVE_AFTER  # quiet since NOW
    res = sync_pass(store, [], q)
    assert [(i.root, i.state, i.paged) for i in res.closed] == [(FEAT, "resolved", "warning")]
    assert res.resolved == res.closed
    assert sync_pass(store, [], q + 60).resolved == []
    # A dashboard whose previous pass was before the resolve hears of it from its next pass.
    res = sync_pass(store, [], q + 70, previous=q - 30)
    assert [i.root for i in res.resolved] == [FEAT] and res.closed == []
    # Firing again within REOPEN_WITHIN is the same incident, open again, without a page (a
    # spike dipping under its threshold for one pass paged twice in 17 s).
    first = res.resolved[0].id
    back = sync_pass(store, [alert("feature=chat")], q + 140)
    assert back.pages == [] and [(i.id, i.state) for i in back.incidents] == [(first, "open")]
    # Firing again later is a new incident, which pages.
    sync_pass(store, [], q + 140 + RESOLVE_AFTER)
    again = sync_pass(store, [alert("feature=chat")], q + 141 + RESOLVE_AFTER + REOPEN_WITHIN)
    assert [p.kind for p in again.pages] == ["page"]
    assert again.pages[0].incident != first
    assert not ack(store, again.pages[0].incident + "x")


def test_incidents_merge_into_the_one_that_paged_and_an_unacked_page_stays_open(
    llmtop_db: Path,
) -> None:
    s = AlertStore(llmtop_db)
    try:
        sync_pass(s, [alert("feature=chat"), alert("feature=search")], NOW)
        ack(s, FEAT)
        both = [alert("feature=chat"), alert("feature=search", parent=FEAT)]
        res = sync_pass(s, both, NOW + 60)
        assert res.pages == [] and len(res.incidents) == 1
        assert res.incidents[0].state == "open"  # feature=search's page was never acked
        ack(s, "anomaly|feature=search")
        assert {x.state for x in sync_pass(s, both, NOW + 120).states} == {"acked"}
    finally:
        s.close()


# --- grouping does not depend on order -----------------------------------------------------------

DIMS = ("feature", "customer", "user", "model")
VALUES = ("a", "b", "c")


def _cand(rule: str, dim: str, val: str, sev: str) -> Candidate:
    scope = () if dim == "all" else (Clause(dim, "=", val),)
    return Candidate(rule, sev, scope, "t", (0.0, 1.0), [], 1.0, 1.0)


evidence = st.one_of(
    st.builds(
        lambda d, v, usd: Evidence(f"{d}={v} +${usd}", usd, "contributor", d, value=v),
        st.sampled_from(DIMS), st.sampled_from(VALUES), st.sampled_from([1.0, 2.5, 9.0]),
    ),
    st.builds(
        lambda d, v, at, usd: Evidence(f"new {d} {v}", usd, "version", d, value=v, at=at),
        st.sampled_from(("prompt_version", "route_version")), st.sampled_from(("v2", "v3")),
        st.sampled_from([NOW, NOW + 300, NOW + 4000]), st.sampled_from([1.0, 9.0]),
    ),
    st.just(Evidence("largest share: feature=a $9.00 (90%)", 9.0, "contributor", "feature")),
)  # fmt: skip
analysed_alert = st.tuples(
    st.sampled_from(("anomaly", "spike", "runaway", "error_rate", "budget:day:x")),
    st.sampled_from((*DIMS, "all")),
    st.sampled_from(VALUES),
    st.sampled_from(("warning", "critical")),
    st.lists(evidence, max_size=3),
    st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(analysed_alert, max_size=12), st.randoms(use_true_random=False))
def test_incidents_and_roots_do_not_depend_on_the_order_alerts_come_in(
    specs: list[tuple[str, str, str, str, list[Evidence], bool]], rng: random.Random
) -> None:
    seen: dict[str, tuple[Candidate, Why, bool]] = {}
    for rule, dim, val, sev, causes, done in specs:
        c = _cand(rule, dim, val, sev)
        seen.setdefault(fingerprint(c.rule, c.scope_text), (c, Why(causes=causes), done))
    analysed = list(seen.values())
    want = incidents(analysed)
    # Flat: everything filed under a root that is itself filed under nothing.
    assert not set(want.values()) & set(want)
    for _ in range(3):
        shuffled = analysed[:]
        rng.shuffle(shuffled)
        assert incidents(shuffled) == want

    def as_alert(c: Candidate) -> Alert:
        fp = fingerprint(c.rule, c.scope_text)
        return Alert(fp, c.rule, c.severity, c.scope_text, "t", "", (), None, NOW, ("", "model"), want.get(fp))  # fmt: skip

    alerts = [as_alert(c) for c, _, _ in analysed]
    order = [(r.fingerprint, [x.fingerprint for x in rel]) for r, rel in grouped(alerts)]
    rng.shuffle(alerts)
    assert [(r.fingerprint, [x.fingerprint for x in rel]) for r, rel in grouped(alerts)] == order


def test_one_change_on_two_features_is_one_incident() -> None:
    """The same new route version behind two features' alerts, or two new versions deployed
    five minutes apart: one incident. Half a day apart, or no change named: two."""
    a, b = _cand("anomaly", "feature", "a", "critical"), _cand("spike", "feature", "b", "warning")

    def v(dim: str, val: str, at: float) -> Why:
        return Why(causes=[Evidence(f"new {dim} {val}", 5.0, "version", dim, value=val, at=at)])

    same = [(a, v("route_version", "r13", NOW), True), (b, v("route_version", "r13", NOW + 9e4), True)]  # fmt: skip
    assert incidents(same) == {"spike|feature=b": "anomaly|feature=a"}
    window = [(a, v("prompt_version", "v7", NOW), True), (b, v("route_version", "r2", NOW + 300), True)]  # fmt: skip
    assert incidents(window) == {"spike|feature=b": "anomaly|feature=a"}
    apart = [(a, v("prompt_version", "v7", NOW), True), (b, v("route_version", "r2", NOW + 4e4), True)]  # fmt: skip
    assert incidents(apart) == {}


# --- snooze lengths --------------------------------------------------------------------------------


def test_parse_snooze_reads_lengths_and_local_times() -> None:
    t = datetime(2026, 12, 4, 16, 30).timestamp()  # local 16:30
    assert parse_snooze("15m", t) == t + 900
    assert parse_snooze(" 1h ", t) == t + 3600
    assert parse_snooze("4h", t) == t + 4 * 3600
    assert parse_snooze("until tomorrow 09:00", t) == datetime(2026, 12, 5, 9, 0).timestamp()
    assert parse_snooze("until 17:45", t) == datetime(2026, 12, 4, 17, 45).timestamp()
    assert parse_snooze("until 08:00", t) == datetime(2026, 12, 5, 8, 0).timestamp()
    for choice in SNOOZE_CHOICES:
        assert parse_snooze(choice, t) > t
    for bad in ("", "soon", "0m", "45d", "until 25:00", "tomorrow 9"):
        with pytest.raises(ValueError) as err:
            parse_snooze(bad, t)
        assert str(err.value).startswith("snooze ") and "\n" not in str(err.value)
