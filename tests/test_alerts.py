"""Alert rules against scripted incidents written through the real writer (mapping + pricing).

One week of quiet, seasonal-free history for six features is written once per module and copied
into each test's database; each test then writes its own last 20 minutes (normal, or with an
incident) and evaluates at a fixed `NOW`. Every incident test asserts the alert, its top likely
cause and its owner; every "stays quiet" test has a control showing the same rule does fire once
the thing keeping it quiet is taken away.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from llmtop.alerts import cli, state
from llmtop.alerts.evaluate import evaluate
from llmtop.alerts.explain import EXPLAIN_DIMS, compared_ranges, explain
from llmtop.alerts.model import Alert
from llmtop.alerts.rules import (
    AnomalyRule,
    Rules,
    RulesError,
    SpikeRule,
    load_rules,
    parse_rules,
)
from llmtop.collector.writer import Writer
from llmtop.store.alert_queries import AGG_COLUMNS, ExplainData
from llmtop.store.alert_state import AlertStore
from llmtop.store.filters import Clause
from llmtop.store.reader import Reader
from llmtop.store.records import CallRecord

NOW = datetime(2026, 3, 12, 14, 0, tzinfo=timezone.utc).timestamp()  # a Thursday
DAY = 86400.0
HISTORY_START = NOW - 7 * DAY - 3 * 3600
TAIL = 20 * 60  # each test writes the last 20 minutes itself

PROVIDER = {"claude-sonnet-4-5": "anthropic", "gpt-4o-mini": "openai", "gpt-4o": "openai"}

# name: (every seconds, model, team, workload, input, output, extra tags)
FEATURES: dict[str, dict[str, Any]] = {
    "support-summarize": dict(
        every=60, model="claude-sonnet-4-5", team="support", workload="realtime", inp=8000, out=300
    ),
    "kb-answer": dict(
        every=30, model="claude-sonnet-4-5", team="docs", workload="realtime", inp=30000, out=400
    ),
    "classify": dict(
        every=30, model="gpt-4o-mini", team="search", workload="realtime", inp=500, out=20
    ),
    "agent-step": dict(
        every=120, model="claude-sonnet-4-5", team="agents", workload="agent", inp=3000, out=500
    ),
    "haiku-tagger": dict(
        every=300, model="gpt-4o-mini", team="growth", workload="realtime", inp=200, out=20
    ),
    "nightly-enrich": dict(
        every=10, model="gpt-4o", team="data", workload="batch", inp=4000, out=500
    ),
}
SUPPORT_CUSTOMERS = ("globex", "initech", "umbrella")
AGENT_USERS = (("acme", "u-a1"), ("acme", "u-a2"), ("hooli", "u-h1"), ("hooli", "u-h2"))


def _in_batch_hour(t: float) -> bool:
    return datetime.fromtimestamp(t, timezone.utc).hour == 2


def records(
    feature: str, start: float, end: float, rng: random.Random, **change: Any
) -> Iterator[CallRecord]:
    """Normal traffic of one feature in [start, end); `change` overrides fields (the incident)."""
    spec = {**FEATURES[feature], **change}
    every = spec["every"]
    t = start + (-(start - HISTORY_START) % every)
    i = int((t - HISTORY_START) // every)
    while t < end:
        i += 1
        t_row = t
        t += every
        if feature == "nightly-enrich" and not spec.get("anytime") and not _in_batch_hour(t_row):
            continue
        tags = {
            "feature": feature,
            "team": spec["team"],
            "workload": spec["workload"],
            "prompt_version": spec.get("prompt_version", "v3"),
            "route_version": spec.get("route_version", "r12"),
        }
        if feature == "support-summarize":
            tags["customer"] = SUPPORT_CUSTOMERS[i % 3]
            tags["user"] = f"u-s{i % 17}"
        if feature == "agent-step":
            tags["customer"], tags["user"] = AGENT_USERS[i % 4]
        inp = int(spec["inp"] * rng.uniform(0.85, 1.15))
        out = int(spec["out"] * rng.uniform(0.85, 1.15))
        cached = 0
        if feature == "kb-answer" and i % 4 != 0 and spec.get("cache", True):
            cached = int(inp * 0.9)
        fail = feature == "classify" and i % 200 == 0
        yield CallRecord(
            started_at=t_row,
            ended_at=t_row + 0.8,
            model=spec["model"],
            provider=PROVIDER[spec["model"]],
            call_type="completion",
            status="failure" if fail else "success",
            error_class="InternalServerError" if fail else None,
            error_code="500" if fail else None,
            input_tokens=0 if fail else inp,
            output_tokens=0 if fail else out,
            cache_read_tokens=cached,
            tags=tags,
        )


def write(db: Path, recs: Any) -> None:
    w = Writer(db)
    for r in recs:
        w.submit(r)
    assert w.flush(60), w.last_error
    w.close()


def normal_tail(rng: random.Random, skip: tuple[str, ...] = ()) -> Iterator[CallRecord]:
    for f in FEATURES:
        if f not in skip:
            yield from records(f, NOW - TAIL, NOW + 3600, rng)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("history") / "history.db"
    rng = random.Random(5)
    write(db, (r for f in FEATURES for r in records(f, HISTORY_START, NOW - TAIL, rng)))
    return db


@pytest.fixture
def db(history: Path, llmtop_db: Path) -> Path:
    shutil.copy(history, llmtop_db)
    return llmtop_db


def run(db: Path, rules: Rules | None = None, now: float = NOW) -> list[Alert]:
    r = Reader(db)
    try:
        return evaluate(r, rules or Rules(), now)
    finally:
        r.close()


def only(alerts: list[Alert], rule: str, scope: str) -> Alert:
    found = [a for a in alerts if a.rule == rule and a.scope == scope]
    assert found, [(a.rule, a.scope, a.title) for a in alerts]
    return found[0]


# --- the quiet baseline --------------------------------------------------------------------------


def test_normal_week_is_quiet(db: Path) -> None:
    write(db, normal_tail(random.Random(1)))
    assert [(a.rule, a.scope, a.title) for a in run(db)] == []


# --- (a) a prompt version that grows input tokens 6× -----------------------------------------------


def test_prompt_version_growth_fires_with_version_as_cause(db: Path) -> None:
    rng = random.Random(2)
    write(db, normal_tail(rng, skip=("support-summarize",)))
    write(db, records("support-summarize", NOW - TAIL, NOW - 900, rng))
    write(
        db,
        records("support-summarize", NOW - 900, NOW, rng, inp=48000, prompt_version="v4"),
    )
    rules = parse_rules('[owners]\n"feature=support-summarize" = "team-support"\n', Path("r.toml"))
    alerts = run(db, rules)
    a = only(alerts, "anomaly", "feature=support-summarize")
    assert a.severity == "critical"
    assert "support-summarize spend $" in a.title and "/15m" in a.title and "3σ band" in a.title
    assert a.causes[0][0].startswith("new prompt_version v4 since 13:45")
    assert any(t.startswith("p90 input tokens") for t, _ in a.causes)
    assert a.owner == "team-support"
    assert a.drill == ("feature=support-summarize", "prompt_version")
    assert a.since == pytest.approx(NOW - 900, abs=60)
    # The realtime workload's band breaks too, and the feature's burn rate, but it is the same
    # incident: one page (what else fires is filed under it).
    assert [(x.rule, x.scope) for x in alerts if x.parent is None] == [
        ("anomaly", "feature=support-summarize")
    ]
    assert not any(x.scope == "workload=realtime" for x in alerts)


# --- (b) a route change that drops prompt-cache hits ----------------------------------------------


def test_route_change_cache_drop_names_route_and_cache(db: Path) -> None:
    rng = random.Random(3)
    write(db, normal_tail(rng, skip=("kb-answer",)))
    write(db, records("kb-answer", NOW - TAIL, NOW - 900, rng))
    write(db, records("kb-answer", NOW - 900, NOW, rng, cache=False, route_version="r13"))
    alerts = run(db)
    a = only(alerts, "anomaly", "feature=kb-answer")
    assert a.causes[0][0].startswith("new route_version r13")
    assert re.search(r"cache hit rate 7\d% → 0%", a.cause), a.cause
    assert a.owner == "docs"
    drop = only(alerts, "cache_hit_drop", "feature=kb-answer")
    assert re.fullmatch(r"cache hit rate 7\d% → 0%", drop.causes[0][0]), drop.causes
    assert "route_version r13" in drop.cause
    assert drop.owner == "docs"


# --- (c) a retry storm of 429s --------------------------------------------------------------------


def rate_limited(r: CallRecord, attempt: int) -> CallRecord:
    """Attempt `attempt` of the call `r`, failed with a 429 (attempt n starts n - 1 s later)."""
    return CallRecord(
        started_at=r.started_at + attempt - 1,
        model=r.model,
        provider=r.provider,
        status="failure",
        error_class="RateLimitError",
        error_code="429",
        attempt=attempt,
        is_retry=attempt > 1,
        tags=r.tags,
    )


def test_retry_storm_fires_error_and_retry_rate(db: Path) -> None:
    rng = random.Random(4)
    write(db, normal_tail(rng, skip=("classify",)))
    write(db, records("classify", NOW - TAIL, NOW - 600, rng))
    storm = []
    for r in records("classify", NOW - 600, NOW, rng):
        for attempt in (1, 2):
            storm.append(rate_limited(r, attempt))
        r.started_at += 2
        r.attempt, r.is_retry = 3, True
        storm.append(r)
    write(db, storm)
    alerts = run(db)
    err = only(alerts, "error_rate", "feature=classify")
    assert err.severity == "critical"
    assert err.causes[0][0].startswith("error rate 0% → 57% (429 rate limit ×40 on gpt-4o-mini)")
    assert err.owner == "search"
    retry = only(alerts, "retry_rate", "feature=classify")
    assert "429 rate limit" in retry.causes[0][0] and retry.causes[0][0].startswith("retry rate")
    assert retry.owner == "search"
    # Counts read as counts ("115.0 requests" was printed in titles, panel and check).
    assert re.search(r"\b\d+ of \d+ requests$", err.title), err.title
    assert not any(re.search(r"\d\.0 (requests|of|calls)", a.title) for a in alerts)


# --- (d) one customer running away --------------------------------------------------------------


def test_runaway_customer_is_named_with_its_user(db: Path) -> None:
    rng = random.Random(5)
    write(db, normal_tail(rng))
    loop = [
        CallRecord(
            started_at=NOW - 3600 + 60 * k,
            model="claude-sonnet-4-5",
            provider="anthropic",
            input_tokens=40000,
            output_tokens=1000,
            tags={
                "feature": "agent-step",
                "team": "agents",
                "workload": "agent",
                "customer": "acme",
                "user": "u-a1",
                "prompt_version": "v3",
                "route_version": "r12",
            },
        )
        for k in range(60)
    ]
    write(db, loop)
    alerts = run(db)
    a = only(alerts, "runaway", "customer=acme")
    assert a.title.startswith("customer acme spend $")
    assert "× its 7-day average" in a.title
    assert a.causes[0][0].startswith("user=u-a1 +$")
    assert a.owner == "agents"
    assert not [x for x in alerts if x.rule == "runaway" and x.scope == "customer=hooli"]


# --- (e) a budget on course to run out mid-month ----------------------------------------------------


def test_budget_projection_fires_before_the_money_is_gone(db: Path) -> None:
    write(db, normal_tail(random.Random(6)))
    r = Reader(db)
    try:
        from llmtop.store.filters import parse_filter

        scope = parse_filter("team=support")
        month0 = datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp()
        spent = r.spend_between(month0, NOW, scope)
        rate = r.spend_between(NOW - DAY, NOW, scope) / DAY
    finally:
        r.close()
    amount = round(spent + rate * 7.2 * DAY)  # runs out a bit over 7 days from the 12th
    out_day = datetime.fromtimestamp(NOW + (amount - spent) / rate, timezone.utc).day
    rules = parse_rules(
        f'[[budget]]\nscope = "team=support"\namount = {amount}\n', Path("rules.toml")
    )
    a = only(run(db, rules), "budget:month:monthly budget", "team=support")
    assert spent < 0.8 * amount  # neither level reached: only the projection can fire
    assert a.severity == "warning"
    assert f"runs out on the {out_day}th" in a.title and out_day == 19
    assert a.owner == "support"
    assert a.causes[0][0].startswith("largest share: feature=support-summarize")


# --- (f) a tiny workload with a +300% blip ----------------------------------------------------------


def test_tiny_workload_blip_stays_quiet(db: Path) -> None:
    rng = random.Random(7)
    write(db, normal_tail(rng))
    blip = [
        CallRecord(
            started_at=NOW - 900 + 20 * k,
            model="gpt-4o-mini",
            provider="openai",
            input_tokens=200,
            output_tokens=20,
            tags={"feature": "haiku-tagger", "team": "growth", "workload": "realtime"},
        )
        for k in range(45)
    ]
    write(db, blip)
    assert run(db) == []
    # Control: without the dollar floors (absolute and share of the org's spend) the same blip
    # is a 3σ, +300% anomaly.
    loose = Rules(anomaly=AnomalyRule(min_change_usd=0.0, min_change_share_pct=0.0))
    a = only(run(db, loose), "anomaly", "feature=haiku-tagger")
    assert a.owner == "growth"


# --- (g) a nightly batch burst at its usual hour ------------------------------------------------------


@pytest.mark.parametrize("minute", [5, 30])
def test_nightly_batch_burst_stays_quiet(db: Path, minute: int) -> None:
    at = NOW - 12 * 3600 + minute * 60  # 02:05 / 02:30 on the 12th, inside tonight's burst
    assert run(db, now=at) == []


def test_batch_burst_at_an_unusual_hour_fires(db: Path) -> None:
    rng = random.Random(8)
    write(db, normal_tail(rng))
    write(db, records("nightly-enrich", NOW - 1800, NOW, rng, anytime=True))
    alerts = run(db)
    a = only(alerts, "anomaly", "feature=nightly-enrich")
    assert "/6h, no spend here normally" in a.title
    assert a.owner == "data"


# --- state: no re-page after restart, ack, snooze, resolve ------------------------------------------


def _incident(db: Path) -> None:
    rng = random.Random(9)
    write(db, normal_tail(rng, skip=("support-summarize",)))
    write(db, records("support-summarize", NOW - TAIL, NOW - 900, rng))
    write(db, records("support-summarize", NOW - 900, NOW, rng, inp=48000, prompt_version="v4"))


def _paged_incident(db: Path, capsys: pytest.CaptureFixture[str]) -> int:
    """The incident, judged and recorded by `llmtop check` at NOW: its exit code."""
    _incident(db)
    code = cli.main(["--db", str(db), "--now", str(NOW)])
    assert code in (1, 2)
    capsys.readouterr()
    return code


def test_sync_pages_once_and_survives_restart(db: Path) -> None:
    _incident(db)
    alerts = run(db)
    assert alerts
    r1 = AlertStore(db)
    new, states = state.sync(r1, alerts, NOW)
    assert {a.fingerprint for a in new} == {a.fingerprint for a in alerts if a.parent is None}
    assert {s.state for s in states} == {"open"}
    new, _ = state.sync(r1, alerts, NOW + 5)
    assert new == []
    r1.close()
    r2 = AlertStore(db)  # a restarted dashboard
    new, states = state.sync(r2, alerts, NOW + 10)
    assert new == []
    assert all(s.since <= NOW for s in states)
    r2.close()


def test_ack_is_visible_to_a_second_reader_and_resolve_refires(db: Path) -> None:
    _incident(db)
    alerts = run(db)
    fp = alerts[0].fingerprint
    r1, r2 = AlertStore(db), AlertStore(db)
    state.sync(r1, alerts, NOW)
    assert state.ack(r1, fp)
    new, states = state.sync(r2, alerts, NOW + 5)
    assert new == []
    assert {s.fingerprint: s.state for s in states}[fp] == "acked"
    # It stops firing for RESOLVE_AFTER: resolved. It fires again within minutes: open again,
    # no second page.
    t = NOW + 5 + state.RESOLVE_AFTER
    _, states = state.sync(r2, [], t)
    assert {s.fingerprint: s.state for s in states}[fp] == "resolved"
    assert not state.ack(r2, fp)  # acking a resolved alert must not silence its return
    new, states = state.sync(r1, alerts, t + 10)
    assert new == [] and {s.fingerprint: s.state for s in states}[fp] == "open"
    # Resolved again, it fires after REOPEN_WITHIN: a new page.
    state.sync(r2, [], t + 10 + state.RESOLVE_AFTER)
    new, states = state.sync(r1, alerts, t + 11 + state.RESOLVE_AFTER + state.REOPEN_WITHIN)
    assert fp in {a.fingerprint for a in new}
    assert {s.fingerprint: s.state for s in states}[fp] == "open"
    r1.close()
    r2.close()


def test_snooze_quiets_until_it_expires(db: Path) -> None:
    _incident(db)
    alerts = run(db)
    fp = alerts[0].fingerprint
    r = AlertStore(db)
    state.sync(r, alerts, NOW)
    assert state.snooze(r, fp, NOW + 600)
    new, states = state.sync(r, alerts, NOW + 300)
    assert fp not in {a.fingerprint for a in new}
    assert {s.fingerprint: s.state for s in states}[fp] == "snoozed"
    new, _ = state.sync(r, alerts, NOW + 601)
    assert fp in {a.fingerprint for a in new}
    r.close()


def test_escalation_to_critical_pages_again_even_if_acked(db: Path) -> None:
    _incident(db)
    a = run(db)[0]
    warn = Alert(**{**a.__dict__, "severity": "warning"})
    crit = Alert(**{**a.__dict__, "severity": "critical"})
    r = AlertStore(db)
    state.sync(r, [warn], NOW)
    state.ack(r, warn.fingerprint)
    new, _ = state.sync(r, [crit], NOW + 5)
    assert [x.fingerprint for x in new] == [a.fingerprint]
    r.close()


# --- llmtop check --------------------------------------------------------------------------------


def _budget_file(tmp_path: Path, amount: float, projection: bool = False) -> Path:
    p = tmp_path / "rules.toml"
    p.write_text(
        "[[budget]]\n"
        'name = "support daily"\n'
        'scope = "team=support"\n'
        'period = "day"\n'
        f"amount = {amount}\n"
        f"projection = {'true' if projection else 'false'}\n"
    )
    return p


def _today_support(db: Path) -> float:
    r = Reader(db)
    try:
        from llmtop.store.filters import parse_filter

        return r.spend_between(NOW - 14 * 3600, NOW, parse_filter("team=support"))
    finally:
        r.close()


def test_check_exit_0_when_quiet(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(db, normal_tail(random.Random(10)))
    assert cli.main(["--db", str(db), "--now", str(NOW)]) == 0
    assert "no alerts firing" in capsys.readouterr().out


def test_check_exit_1_on_warning(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(db, normal_tail(random.Random(11)))
    cfg = _budget_file(tmp_path, _today_support(db) / 0.9)  # 90% used: past the 80% warning
    code = cli.main(["--db", str(db), "--config", str(cfg), "--now", str(NOW)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert out.startswith("WARNING  team=support")
    assert "owner: support" in out and "cause: largest share: feature=support-summarize" in out


def test_a_pass_in_the_past_is_a_look_back_and_never_recorded(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`llmtop check --now` hours before the last recorded pass used to resolve every open
    incident (nothing fired then) and the next pass in the present opened them again, acks
    lost and paging again. It evaluates and prints, says in one line that it recorded nothing,
    and the state is as it was."""
    _paged_incident(db, capsys)
    store = AlertStore(db)
    try:
        before = sorted((s.fingerprint, s.state) for s in state.states(store, NOW))
        assert before and all(st == "open" for _, st in before), before
        (root,) = [s.fingerprint for s in state.states(store, NOW) if s.parent is None][:1]
        assert state.ack(store, root)
        acked = sorted((s.fingerprint, s.state) for s in state.states(store, NOW))
        with pytest.raises(state.LookBack, match="before the last recorded alert pass"):
            state.sync_pass(store, [], NOW - 3 * 3600)
        # A pass a few seconds behind another process's (passes finishing out of order) records.
        state.sync_pass(store, run(db), NOW - 10)
    finally:
        store.close()
    code = cli.main(["--db", str(db), "--now", str(NOW - 3 * 3600)])
    out, err = capsys.readouterr()
    assert code == 0 and "no alerts firing" in out, out
    assert err.count("\n") == 1 and "a look back, not recorded" in err, err
    # A time in the future is not recorded either (a pass dated 2286 resolved everything then,
    # and made every pass in the present a look back), nor is nan a time.
    cli.main(["--db", str(db), "--now", "9999999999"])
    out, err = capsys.readouterr()
    assert "in the future" in err and err.count("\n") == 1, err
    assert cli.main(["--db", str(db), "--now", "nan"]) == 3
    assert "is not a time" in capsys.readouterr().err
    store = AlertStore(db)
    try:
        assert sorted((s.fingerprint, s.state) for s in state.states(store, NOW)) == acked
        new, _ = state.sync(store, run(db), NOW + 60)  # the present again: nothing pages
        assert new == []
    finally:
        store.close()


def test_a_look_back_shows_what_fired_then_without_todays_acks(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check --now <an hour ago>` after the incident was acked: what fired then is shown as it
    fired, not hidden as acked by an ack made later ("all quiet", exit 0, for a look back at
    the incident itself)."""
    code = _paged_incident(db, capsys)
    store = AlertStore(db)
    try:
        (root,) = [s.fingerprint for s in state.states(store, NOW) if s.parent is None][:1]
        assert state.ack(store, root)
        state.sync_pass(store, run(db, now=NOW + 3600), NOW + 3600)  # the present moves on
    finally:
        store.close()
    assert cli.main(["--db", str(db), "--now", str(NOW)]) == code
    out, err = capsys.readouterr()
    assert "(acked" not in out and "all quiet" not in out and "  what:  " in out, out
    assert "a look back, not recorded" in err and "without today's acks" in err, err


def test_check_exit_2_on_critical_json(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(db, normal_tail(random.Random(12)))
    cfg = _budget_file(tmp_path, _today_support(db) / 1.5)
    code = cli.main(["--db", str(db), "--config", str(cfg), "--now", str(NOW), "--json"])
    assert code == 2
    (obj,) = json.loads(capsys.readouterr().out)
    assert obj["severity"] == "critical" and obj["scope"] == "team=support"
    assert obj["owner"] == "support" and obj["causes"][0]["dollars"] > 0
    assert obj["drill"] == {"filter": "team=support", "group_by": "feature"}


def test_check_exit_3_on_malformed_rules(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "rules.toml"
    cfg.write_text('[anomaly]\nsigma = 3\n\n[[budget]]\nscope = "team=search"\namount = -5\n')
    assert cli.main(["--db", str(db), "--config", str(cfg), "--now", str(NOW)]) == 3
    err = capsys.readouterr().err
    assert f"{cfg}:6: budget[0].amount: must be > 0 (dollars), got -5" in err


def test_check_refuses_a_misspelled_tag_in_a_rule_and_passes_a_tag_yet_to_come(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A group_by or scope naming `featrue` never fires and said nothing; a tag no row has sent
    yet and close to no known name (written before its traffic) is fine."""
    cfg = tmp_path / "rules.toml"
    cfg.write_text('[rates]\ngroup_by = ["featrue"]\n')
    assert cli.main(["--db", str(db), "--config", str(cfg), "--now", str(NOW)]) == 3
    err = capsys.readouterr().err
    assert f"{cfg}:2: rates.group_by: no dimension featrue; did you mean feature?" in err
    cfg.write_text('[owners]\n"team=search" = "a"\n"custmer=acme" = "b"\n')
    assert cli.main(["--db", str(db), "--config", str(cfg), "--now", str(NOW)]) == 3
    err = capsys.readouterr().err
    assert f"{cfg}:3: owners.custmer=acme: no dimension custmer; did you mean customer?" in err
    cfg.write_text('[spike]\ngroup_by = ["feature", "al"]\n')
    assert cli.main(["--db", str(db), "--config", str(cfg), "--now", str(NOW)]) == 3
    err = capsys.readouterr().err
    assert f"{cfg}:2: spike.group_by: no dimension al; did you mean all?" in err
    cfg.write_text('[spike]\ngroup_by = ["region", "feature"]\n')
    assert cli.main(["--db", str(db), "--config", str(cfg), "--now", str(NOW)]) in (0, 1, 2)
    assert capsys.readouterr().err == ""


def test_check_exit_3_on_missing_or_corrupt_db(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.db"
    assert cli.main(["--db", str(missing)]) == 3
    assert "no such database" in capsys.readouterr().err
    assert not missing.exists()  # check must not create one
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    assert cli.main(["--db", str(bad)]) == 3
    assert "not a valid llmtop/SQLite database" in capsys.readouterr().err


# --- rules file validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[anomaly]\nsigma = 3 3\n", ":2: syntax error: Expected newline or end of document"),
        ("[anomaly]\nsigmaa = 3\n", ":2: anomaly.sigmaa: unknown key (allowed here: "),
        ('[spike]\nwindow = "5 minutes"\n', ":2: spike.window: bad window '5 minutes'"),
        ("[workloads]\nbatch = 6\n", ':2: workloads.batch: must be a duration string like "15m"'),
        (
            '\n[[budget]]\namount = 10\n\n[[budget]]\namount = 5\nperiod = "year"\n',
            ":7: budget[1].period: must be one of day, week, month, got 'year'",
        ),
        (
            '[[budget]]\namount = 10\nscope = "team"\n',
            ":3: budget[0].scope: bad filter term 'team'",
        ),
        (
            "[[budget]]\namount = 10\nwarning_pct = 120\n",
            ":3: budget[0].warning_pct: must be <= critical_pct (100), got 120",
        ),
        ('[owners]\n"feature=x" = 3\n', ":2: owners.feature=x: owner must be a non-empty string"),
        ("[[budget]]\nperiod = 'day'\n", ":1: budget[0]: missing amount"),
        (
            "[[budget]]\namount = 10\nwarning_pct = nan\n",
            ":3: budget[0].warning_pct: must be a finite number",
        ),
        ("[anomaly]\nsigma = inf\n", ":2: anomaly.sigma: must be a finite number"),
        (
            "[spike]\nratio = 4\ncritical_ratio = 2\n",
            ":3: spike.critical_ratio: must be >= ratio (4), got 2",
        ),
        ('[spike]\nwindow = "99999999d"\n', ":2: spike.window: bad window '99999999d': at most"),
    ],
)
def test_rules_errors_are_precise(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "llmtop-rules.toml"
    p.write_text(text)
    with pytest.raises(RulesError) as exc:
        load_rules(p)
    assert str(exc.value).startswith(f"{p}{message}"), str(exc.value)


def test_a_rules_file_saved_with_a_bom_reads(tmp_path: Path) -> None:
    p = tmp_path / "r.toml"
    p.write_bytes("\ufeff[spike]\nratio = 9\n".encode())  # "Invalid statement" at line 1
    assert load_rules(p).spike.ratio == 9


def test_a_raised_ratio_lifts_the_default_critical_ratio(tmp_path: Path) -> None:
    p = tmp_path / "r.toml"
    p.write_text("[spike]\nratio = 9\n")
    assert load_rules(p).spike.critical_ratio == 9


def test_rules_defaults_and_full_file(tmp_path: Path) -> None:
    assert load_rules(tmp_path / "missing.toml") == Rules()
    assert load_rules(None) == Rules()
    p = tmp_path / "llmtop-rules.toml"
    p.write_text(
        """
[anomaly]
group_by = ["feature", "workload", "team"]
min_change_usd = 2.5
[workloads]
realtime = "10m"
batch = { window = "8h" }
[spike]
ratio = 4
[runaway]
min_usd = 20
[rates]
error_rate_pct = 5
[[budget]]
name = "org"
amount = 3000
[[budget]]
scope = "feature=support-summarize"
period = "week"
amount = 200
warning_pct = 70
owner = "support-lead"
[owners]
"feature=support-summarize" = "team-support"
"""
    )
    r = load_rules(p)
    assert r.anomaly.group_by == ("feature", "workload", "team")
    assert r.anomaly.min_change_usd == 2.5 and r.spike.ratio == 4 and r.runaway.min_usd == 20
    assert r.workloads["realtime"] == 600 and r.workloads["batch"] == 8 * 3600
    assert r.rates.error_rate_pct == 5
    assert [(b.name, b.period, b.amount, b.scope_text) for b in r.budgets] == [
        ("org", "month", 3000, ""),
        ("weekly budget", "week", 200, "feature=support-summarize"),
    ]
    assert r.budgets[1].warning_pct == 70 and r.budgets[1].owner == "support-lead"
    assert r.owners[0][1] == "team-support"


# --- the likely cause read once per pass equals the cause read per alert ----------------------------


@pytest.mark.parametrize("scenario", ["prompt", "runaway", "storm"])
def test_shared_explain_reads_give_the_same_cause_as_per_alert_reads(
    db: Path, scenario: str
) -> None:
    """evaluate() reads the rows behind every cause analysis once (ExplainData) instead of once
    per alert; for every scope and window the result must be what the per-alert SQL gives."""
    rng = random.Random(11)
    if scenario == "prompt":
        _incident(db)
    elif scenario == "runaway":
        write(db, normal_tail(rng))
        write(db, records("support-summarize", NOW - 900, NOW, rng, inp=30000, customer="acme"))
    else:
        write(db, normal_tail(rng, skip=("classify",)))
        write(db, [rate_limited(r, 2) for r in records("classify", NOW - 600, NOW, rng)])
    r = Reader(db)
    try:
        cur = (NOW - 900, NOW)
        base = [(NOW - 900 - d * 86400, NOW - d * 86400) for d in range(1, 8)]
        scopes = [(), *((Clause(d, "=", v),) for d, v in _values(r))]
        ranges = compared_ranges(cur, base)
        # The read as evaluate() makes it for a crowd: restricted to the crowd's scopes (here the
        # customers: an alert outside the crowd must fall back to its own read, not a subset).
        crowd = [sc[0] for sc in scopes[1:] if sc[0].key == "customer"]
        outside = next(sc for sc in scopes[1:] if sc[0].key == "feature")
        assert crowd
        restricted = ExplainData(r, ranges, EXPLAIN_DIMS, only=crowd)
        for shared in ({}, {ranges: restricted}):
            for scope in scopes:
                a = explain(r, Rules(), scope, cur, base, 1 / 7)
                b = explain(r, Rules(), scope, cur, base, 1 / 7, shared=shared)
                assert [e.text for e in b.causes] == [e.text for e in a.causes], scope
                assert (b.owner, b.drill_dim, b.since) == (a.owner, a.drill_dim, a.since), scope
                for name in AGG_COLUMNS:
                    assert getattr(b.cur, name) == pytest.approx(getattr(a.cur, name)), scope
                    assert getattr(b.base, name) == pytest.approx(getattr(a.base, name)), scope
            assert len(shared) == 1  # one read served every scope
        assert not restricted.supports(()) and not restricted.supports(outside)
        assert all(restricted.supports((c,)) for c in crowd)
        full = ExplainData(r, ranges, EXPLAIN_DIMS)
        full.breakdown((), EXPLAIN_DIMS)
        assert restricted._agg is not None and len(restricted._agg[0]) < len(full._agg[0])
    finally:
        r.close()


def test_shared_onset_reads_give_the_same_series_and_since_as_per_alert_reads(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """evaluate() reads the onset lookback of a crowd of one-tag alerts once per tag
    (SharedSeries) instead of once per alert: every scope's series, and every alert's `since`,
    must be what its own read gives; a scope outside the crowd is not served."""
    from llmtop.alerts import evaluate as ev
    from llmtop.alerts.onset import SharedSeries
    from llmtop.store.alert_queries import Agg, aggregate

    rng = random.Random(11)
    write(db, normal_tail(rng))
    write(db, records("agent-step", NOW - 900, NOW, rng, inp=60000, every=10))
    r = Reader(db)
    try:
        start = NOW - 4 * 3600
        crowd = [Clause(d, "=", v) for d, v in _values(r) if d in ("customer", "feature")]
        crowd += [Clause("user", "=", u) for _, u in AGENT_USERS]
        shared = SharedSeries(r, start, NOW, crowd)
        for c in crowd:
            own = {i: g for i, _, g in aggregate(r, shared.ranges, (), (c,))}  # the scope's read
            want = [(a, b, own.get(i, Agg())) for i, a, b in shared.ranges]
            got = shared.series((c,))
            assert got is not None and len(got) == len(want) > 100, c
            for (a1, b1, g1), (a2, b2, g2) in zip(got, want, strict=True):
                assert (a1, b1) == (a2, b2)
                for name in AGG_COLUMNS:
                    assert getattr(g1, name) == pytest.approx(getattr(g2, name)), (c, name)
        assert sum(g.requests for _, _, g in shared.series((crowd[-1],)) or []) > 0
        assert shared.series((Clause("team", "=", "docs"),)) is None  # not in the crowd
        assert shared.series((Clause("customer", "=", None),)) is None
        assert shared.series((crowd[0], crowd[1])) is None
    finally:
        r.close()
    sinces = []
    for crowd_min in (1, 10**9):  # every alert in a crowd, and none
        monkeypatch.setattr(ev, "SHARED_READ_MIN", crowd_min)
        alerts = run(db)
        assert sum(a.rule == "runaway" for a in alerts) >= 2, [a.title for a in alerts]
        sinces.append({a.fingerprint: a.since for a in alerts})
    assert sinces[0] == sinces[1]


def _values(r: Reader) -> list[tuple[str, str]]:
    """A few real (dimension, value) pairs of the last 15 minutes, plus one that never occurs."""
    out = [("feature", "no-such-feature")]
    for d in ("feature", "customer", "model", "team"):
        rows = r.query(
            f"SELECT DISTINCT s.value FROM calls c JOIN strings s ON s.id = c.{d}"
            " WHERE c.started_at >= ? LIMIT 3",
            (NOW - 900,),
        )
        out += [(d, v) for (v,) in rows]
    return out


def test_shared_token_read_samples_a_long_baseline_but_never_the_window(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmtop.store import alert_queries

    _incident(db)
    monkeypatch.setattr(alert_queries, "TOKEN_SAMPLE", 100)
    r = Reader(db)
    try:
        ranges = [(0, NOW - 900, NOW), (1, NOW - 7 * 86400, NOW - 900)]
        full = alert_queries.token_values(r, ranges, limit=10**9)
        got = ExplainData(r, ranges, EXPLAIN_DIMS).tokens(())
        assert sorted(got[0][0]) == sorted(full[0][0])  # the window: every row
        n, m = len(full[1][0]), len(got[1][0])
        assert n > 1000 and 50 <= m <= 200, (n, m)  # the baseline: ~TOKEN_SAMPLE of them
        assert set(got[1][0]) <= set(full[1][0])
        # After the grouped read, the baseline's row count comes from it: the same sample.
        data = ExplainData(r, ranges, EXPLAIN_DIMS)
        data.breakdown((), EXPLAIN_DIMS)
        assert data.tokens(()) == got
    finally:
        r.close()


def test_agg_add_covers_every_column() -> None:
    from llmtop.store.alert_queries import Agg

    src = Agg(*range(1, len(AGG_COLUMNS) + 1))
    out = Agg()
    out.add(src, 2.0)
    out.add(src)
    assert [getattr(out, c) for c in AGG_COLUMNS] == [
        3.0 * i for i in range(1, len(AGG_COLUMNS) + 1)
    ]


def test_an_exhausted_explain_budget_fires_with_a_provisional_cause_filled_in_next_pass(
    db: Path,
) -> None:
    """The dashboard gives cause analysis a time budget per pass: past it, alerts still fire
    (title, severity, owner from the owners map) and their cause comes on a later pass."""
    _incident(db)
    rules = parse_rules('[owners]\n"feature=support-summarize" = "team-support"\n', Path("r.toml"))
    r = Reader(db)
    try:
        first = evaluate(r, rules, NOW, explain_budget=0.0)
        a = only(first, "anomaly", "feature=support-summarize")
        assert a.cause == "likely cause: being analysed (next pass)"
        assert a.owner == "team-support" and a.severity == "critical"
        later = evaluate(r, rules, NOW + 1, explain_budget=60.0)
        b = only(later, "anomaly", "feature=support-summarize")
        assert b.causes[0][0].startswith("new prompt_version v4")  # not the cached placeholder
        # `llmtop check` passes no budget: always the full analysis (fresh rules: no cache).
        fresh = parse_rules(
            '[owners]\n"feature=support-summarize" = "team-support"\n', Path("r.toml")
        )
        full = only(
            evaluate(r, fresh, NOW + 2, explain_budget=None), "anomaly", "feature=support-summarize"
        )
        assert full.cause == b.cause
    finally:
        r.close()


# --- incidents: one page per incident, its other alerts filed under it ----------------------------


def _storm(db: Path) -> None:
    """A prompt deploy that multiplies input 45x: the feature's band and burn rate break, and so
    does every customer's 7-day average (each customer's top cause is the same new version)."""
    rng = random.Random(9)
    write(db, normal_tail(rng, skip=("support-summarize",)))
    write(db, records("support-summarize", NOW - TAIL, NOW - 900, rng))
    write(
        db,
        records(
            "support-summarize", NOW - 900, NOW, rng, inp=400000, prompt_version="v4", every=20
        ),
    )


def test_a_crowd_read_counts_only_the_alerts_analysed_this_pass(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three customers' runaway alerts over the same ranges share one read; once their causes
    are cached, one of them analysed again reads its own rows, not the crowd's."""
    from llmtop.alerts import evaluate as ev
    from llmtop.alerts.cache import AlertCache
    from llmtop.store.alert_queries import ExplainData as Real

    _storm(db)
    monkeypatch.setattr(ev, "SHARED_READ_MIN", 3)
    crowds: list[int] = []

    def spy(reader: Reader, ranges: Any, dims: Any, only: Any = ()) -> Real:
        crowds.append(len(only))
        return Real(reader, ranges, dims, only)

    monkeypatch.setattr(ev, "ExplainData", spy)
    r, cache, rules = Reader(db), AlertCache(), Rules()  # one rules object, as the app keeps
    try:
        first = ev.evaluate(r, rules, NOW, cache=cache)
        runaway = [a for a in first if a.rule == "runaway" and a.scope.startswith("customer=")]
        assert len(runaway) == 3 and crowds == [3], crowds
        crowds.clear()
        key = next(k for k in cache.why if f"runaway|{runaway[0].scope}" in k)
        del cache.why[key]  # one alert due again, its neighbours cached
        again = ev.evaluate(r, rules, NOW + 1, cache=cache)
        assert crowds == [] and len(again) == len(first)
        assert {a.fingerprint: a.cause for a in again} == {a.fingerprint: a.cause for a in first}
    finally:
        r.close()


def test_an_incident_pages_once_with_its_other_alerts_filed_under_it(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _storm(db)
    # An unrelated incident at the same time must stay its own page.
    write(db, [rate_limited(r, 2) for r in records("classify", NOW - 600, NOW, random.Random(4))])
    alerts = run(db)
    root = "anomaly|feature=support-summarize"
    parents = {a.fingerprint: a.parent for a in alerts}
    assert parents[root] is None
    for fp in (
        "spike|feature=support-summarize",  # same scope, another rule
        "runaway|customer=globex",  # same top cause: new prompt_version v4
        "runaway|customer=initech",
        "runaway|customer=umbrella",
    ):
        assert parents[fp] == root, (fp, parents)
    others = [a for a in alerts if a.scope == "feature=classify"]
    assert others and all(a.parent in (None, *(o.fingerprint for o in others)) for a in others)
    assert any(a.parent is None for a in others)

    r = AlertStore(db)
    try:
        new, states = state.sync(r, alerts, NOW)
        assert root in {a.fingerprint for a in new}
        assert not {a.fingerprint for a in new} & {fp for fp, p in parents.items() if p}
        assert {s.fingerprint: s.parent for s in states} == parents  # kept in the database
        # Acking the page acks the incident, not the unrelated one.
        assert state.ack(r, root)
        _, states = state.sync(r, alerts, NOW + 5)
        by = {s.fingerprint: s.state for s in states}
        assert {by[fp] for fp, p in parents.items() if p == root} | {by[root]} == {"acked"}
        assert {by[a.fingerprint] for a in others} == {"open"}
    finally:
        r.close()

    assert cli.main(["--db", str(db), "--now", str(NOW), "--all"]) == 2  # acked above
    out = capsys.readouterr().out
    assert out.count("CRITICAL  feature=support-summarize") == 1
    related = sum(1 for p in parents.values() if p == root)
    assert related >= 4 and f"  related ({related}, same incident): " in out
    assert "CRITICAL  customer=globex" not in out
    assert cli.main(["--db", str(db), "--now", str(NOW), "--json", "--all"]) == 2
    objs = json.loads(capsys.readouterr().out)
    assert {o["fingerprint"]: o["parent"] for o in objs} == parents


def test_alerts_still_being_analysed_page_once_they_are_known_to_be_roots(db: Path) -> None:
    """A provisional alert has no cause yet, so nobody knows whether it belongs to an incident:
    it is shown at once but pages only after its analysis, and only if it is a root."""
    _storm(db)
    rules = Rules()
    r, store = Reader(db), AlertStore(db)
    try:
        first = evaluate(r, rules, NOW, explain_budget=0.0)
        assert len(first) >= 5 and all(a.pending for a in first)
        new, states = state.sync(store, first, NOW)
        assert new == []  # shown, not paged
        assert {s.fingerprint for s in states} == {a.fingerprint for a in first}
        later = evaluate(r, rules, NOW + 1, explain_budget=None)
        assert not any(a.pending for a in later)
        new, _ = state.sync(store, later, NOW + 1)
        assert [a.fingerprint for a in new] == ["anomaly|feature=support-summarize"]
        new, _ = state.sync(store, later, NOW + 2)
        assert new == []
    finally:
        r.close()
        store.close()


def test_mutual_naming_files_the_narrower_alert_under_the_broader() -> None:
    from llmtop.alerts.detectors import Candidate
    from llmtop.alerts.explain import Evidence, Why
    from llmtop.alerts.incidents import incidents

    def cand(rule: str, dim: str, val: str, sev: str = "critical") -> Candidate:
        return Candidate(rule, sev, (Clause(dim, "=", val),), "t", (0, 1), [], 1.0, 1.0)

    feat = cand("anomaly", "feature", "chat")
    user = cand("runaway", "user", "u-42")
    budget = cand("budget", "team", "core")
    lone = cand("anomaly", "feature", "search", "warning")
    analysed = [
        # The user's loop explains the feature's rise; the feature explains the user's.
        (feat, Why(causes=[Evidence("user=u-42 +$90", 90.0, "contributor", "user", value="u-42")]), True),
        (user, Why(causes=[Evidence("feature=chat +$95", 95.0, "contributor", "feature", value="chat")]), True),
        (budget, Why(causes=[Evidence("feature=chat +$95", 95.0, "contributor", "feature", value="chat")]), True),
        (lone, Why(causes=[Evidence("model=gpt-4o +$3", 3.0, "contributor", "model", value="gpt-4o")]), True),
    ]  # fmt: skip
    assert incidents(analysed) == {"runaway|user=u-42": "anomaly|feature=chat"}


def test_runaway_baseline_from_rollups_equals_the_raw_rows_late_rows_included(db: Path) -> None:
    from llmtop.alerts.cache import AlertCache
    from llmtop.alerts.detectors import runaway_history
    from llmtop.store.alert_queries import aggregate

    write(db, normal_tail(random.Random(13)))
    dims = ["customer", "user"]
    hour = NOW - 3600
    start = hour - 7 * DAY + 1234.5  # not on an hour: raw edges around the rollups

    def raw(r: Reader) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for _, keys, agg in aggregate(r, [(1, start, hour)], dims):
            for d, v in zip(dims, keys, strict=True):
                if v is not None:
                    out[(d, v)] = out.get((d, v), 0.0) + agg.spend
        return out

    r, cache = Reader(db), AlertCache()
    try:
        got = runaway_history(r, cache, dims, start, hour)
        want = raw(r)
        assert got.keys() == want.keys() and len(want) >= 10
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-9), k
        # A row arrives late, three days back: the next pass must count it.
        late = next(records("agent-step", NOW - 3 * DAY, NOW - 3 * DAY + 600, random.Random(1)))
        late.input_tokens *= 100
        write(db, [late])
        got = runaway_history(r, cache, dims, start, hour)
        want2 = raw(r)
        assert (
            want2[("customer", late.tags["customer"])] > want[("customer", late.tags["customer"])]
        )
        for k in want2:
            assert got[k] == pytest.approx(want2[k], rel=1e-9), k
    finally:
        r.close()


def _alert(scope: str, parent: str | None = None, *, pending: bool = False, sev: str = "critical") -> Alert:  # fmt: skip
    return Alert(
        fingerprint=f"runaway|{scope}",
        rule="runaway",
        severity=sev,
        scope=scope,
        title=f"{scope} spend",
        cause="new prompt_version v2",
        causes=(("new prompt_version v2", 1.0),),
        owner=None,
        since=NOW - 600,
        drill=(scope, "model"),
        parent=parent,
        pending=pending,
    )


def test_an_incident_whose_root_never_got_analysed_still_pages(db: Path) -> None:
    """Children of a root still awaiting analysis were announced by nobody: when that root
    stops firing before its page, the incident's new root must page."""
    r = AlertStore(db)
    try:
        root, c1, c2 = "feature=a", "customer=x", "customer=y"
        new, _ = state.sync(
            r,
            [_alert(root, pending=True), _alert(c1, f"runaway|{root}"), _alert(c2, f"runaway|{root}")],
            NOW,
        )  # fmt: skip
        assert new == []
        new, _ = state.sync(r, [_alert(c1), _alert(c2, f"runaway|{c1}")], NOW + 10)
        assert [a.fingerprint for a in new] == [f"runaway|{c1}"]
        # Once announced, a child stays quiet while its root pages on its behalf.
        new, _ = state.sync(r, [_alert(c1), _alert(c2, f"runaway|{c1}")], NOW + 20)
        assert new == []
    finally:
        r.close()


def test_a_critical_alert_makes_its_incidents_page_critical() -> None:
    """The deploy's feature stays the root of the customers it reached, even when only a
    customer's alert is critical (seen in the demo: a warning burn-spike filed under a critical
    customer hid the deploy); the root then pages as critical, so an alert of the incident
    turning critical re-pages it (sync's escalation)."""
    from llmtop.alerts.detectors import Candidate
    from llmtop.alerts.explain import Evidence, Why
    from llmtop.alerts.incidents import critical_roots, incidents

    v2 = Evidence("new prompt_version v2", 50.0, "version", "prompt_version", value="v2")
    feat = Candidate("anomaly", "warning", (Clause("feature", "=", "a"),), "t", (0, 1), [], 1, 1)
    cust = Candidate("runaway", "critical", (Clause("customer", "=", "x"),), "t", (0, 1), [], 1, 1)
    lone = Candidate("runaway", "critical", (Clause("customer", "=", "z"),), "t", (0, 1), [], 1, 1)
    analysed = [(feat, Why(causes=[v2]), True), (cust, Why(causes=[v2]), True)]
    got = incidents(analysed)
    assert got == {"runaway|customer=x": "anomaly|feature=a"}
    assert critical_roots(analysed, got) == {"anomaly|feature=a"}
    alone = [*analysed[:1], (lone, Why(causes=[]), True)]
    assert critical_roots(alone, incidents(alone)) == {"runaway|customer=z"}
    # What spends, when nothing changed, is no cause: two customers whose largest share is the
    # same feature are two incidents.
    share = Evidence("largest share: feature=chat $9.00 (90%)", 9.0, "contributor", "feature")
    other = Candidate("runaway", "critical", (Clause("customer", "=", "y"),), "t", (0, 1), [], 1, 1)
    assert incidents([(cust, Why(causes=[share]), True), (other, Why(causes=[share]), True)]) == {}


def test_an_alert_drill_down_quotes_a_tag_value_with_spaces_and_quotes(db: Path) -> None:
    """A customer named `acme "big" inc`: the drill-down filter an alert builds reads back as
    exactly that customer (it used to split at the space)."""
    from llmtop.store.filters import parse_filter

    name = 'acme "big" inc'
    rng = random.Random(5)
    write(db, normal_tail(rng))
    loop = [
        CallRecord(
            started_at=NOW - 3600 + 60 * k,
            model="claude-sonnet-4-5",
            provider="anthropic",
            input_tokens=40000,
            output_tokens=1000,
            tags={"feature": "agent-step", "team": "agents", "customer": name, "user": "u a1"},
        )
        for k in range(60)
    ]
    write(db, loop)
    alerts = run(db)
    # No history: the new-entity rule's alert (the runaway rule's when that rule is off).
    (a,) = [x for x in alerts if x.rule in ("runaway", "new") and "customer=" in x.scope]
    assert parse_filter(a.drill[0]) == (Clause("customer", "=", name),)
    assert parse_filter(a.scope) == (Clause("customer", "=", name),)


def test_trackers_of_rules_no_longer_read_are_dropped(db: Path) -> None:
    """A dashboard running for weeks while its rules file is edited keeps only the trackers its
    current rules read, and those stay warm across passes."""
    from llmtop.alerts.cache import TRACKER_IDLE, AlertCache

    cache = AlertCache()
    reader = Reader(db, readonly=True)
    try:
        evaluate(reader, Rules(spike=SpikeRule(group_by=("team",))), NOW, cache=cache)
        old = {k for k in cache.trackers if k[1] == "spike"}
        assert old
        rules = Rules()
        evaluate(reader, rules, NOW, cache=cache)
        kept = {k: t for k, t in cache.trackers.items() if k not in old}
        for k in range(8):  # passes over the next 3.5 hours: the runaway baseline's hourly reads
            evaluate(reader, rules, NOW + k * (TRACKER_IDLE + 1800) / 7, cache=cache)
        assert not old & set(cache.trackers)
        live = cache.trackers
        assert set(live) == set(live.read_at)
        assert all(live.now - t <= TRACKER_IDLE for t in live.read_at.values())
        # The ranges every pass reads were slid, never read cold again.
        steady = [k for k in kept if k[1] in ("rates", "new", "org_rate", "runaway")]
        assert steady and all(live[k] is kept[k] for k in steady)
    finally:
        reader.close()


def test_a_postgres_stores_rules_do_not_depend_on_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`llmtop-rules.toml` beside a file; for a URL it was `./postgresql:/host/...`, relative to
    wherever check ran: now llmtop's data directory, from any directory."""
    from llmtop.alerts.rules import default_rules_path
    from llmtop.store.db import data_dir
    from llmtop.store.pg_db import PgUrl

    assert default_rules_path(tmp_path / "x.db") == tmp_path / "llmtop-rules.toml"
    url = "postgresql://llmtop:pw@db.internal:5432/llmtop"
    seen = set()
    for where in (tmp_path, tmp_path.parent):
        monkeypatch.chdir(where)
        seen.add(default_rules_path(url))
        seen.add(default_rules_path(PgUrl(url)))
    assert seen == {data_dir() / "llmtop-rules.toml"}
