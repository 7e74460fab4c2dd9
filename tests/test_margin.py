"""Margin per customer: `[plans]` (or a plans CSV) in the rules file, and the margin rule that
fires when a customer's month-to-date cost passes a share of their plan price."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from llmtop.alerts.evaluate import evaluate
from llmtop.alerts.rules import RulesError, parse_rules
from llmtop.store.reader import Reader

from tests.builders import payload, write

T = 1_781_000_000.0  # 2026-06-09, a week into the month (UTC)


def rules_text(plan: float, extra: str = "") -> str:
    return (
        "[anomaly]\nenabled = false\n[spike]\nenabled = false\n[runaway]\nenabled = false\n"
        f"[rates]\nenabled = false\n{extra}[plans]\nacme = {plan!r}\n"
    )


def margin_alerts(db: Path, plan: float, now: float) -> list:
    rules = parse_rules(rules_text(plan), Path("rules.toml"))
    r = Reader(db, readonly=True)
    try:
        return [a for a in evaluate(r, rules, now) if a.rule == "margin"]
    finally:
        r.close()


def test_fires_at_60_percent_and_not_before(llmtop_db: Path) -> None:
    rows = [
        payload(start=T + i * 60, input_tokens=1000, output_tokens=200, customer="acme")
        for i in range(10)
    ] + [payload(start=T + 5, input_tokens=50_000, output_tokens=0, customer="other")]
    write(llmtop_db, rows)
    con = sqlite3.connect(llmtop_db)
    costs = [
        c for (c,) in con.execute("SELECT cost_usd FROM requests WHERE customer='acme' ORDER BY id")
    ]
    con.close()
    s9, s10 = sum(costs[:9]), sum(costs)
    plan = s10 / 0.60 * (1 - 1e-9)  # the 10th call takes acme to 60% of its plan
    assert s9 / plan < 0.55
    # after 9 calls (54%): nothing; after the 10th (60%): a warning naming the customer
    assert margin_alerts(llmtop_db, plan, T + 9 * 60 - 1) == []
    (a,) = margin_alerts(llmtop_db, plan, T + 9 * 60 + 30)
    assert a.severity == "warning" and a.scope == "customer=acme"
    assert "60% of its" in a.title and "(alert at 60%)" in a.title
    # just under the threshold: still nothing, at 100% and beyond: critical
    assert margin_alerts(llmtop_db, s10 / 0.5999, T + 3600) == []
    (a,) = margin_alerts(llmtop_db, s10, T + 3600)
    assert a.severity == "critical"


def test_plans_csv_and_bad_input(tmp_path: Path) -> None:
    (tmp_path / "plans.csv").write_text(
        'customer,plan,monthly_revenue\nacme,pro,"$1,200"\nglobex,team,300\n'
    )
    r = parse_rules(
        '[margin]\nshare_pct = 50\nplans_csv = "plans.csv"\n[plans]\ninitech = 99.5\n',
        tmp_path / "rules.toml",
    )
    assert dict(r.plans) == {"acme": 1200.0, "globex": 300.0, "initech": 99.5}
    assert r.margin.share_pct == 50
    bad = [
        ("[plans]\nacme = -5\n", "rules.toml:2: plans.acme: must be > 0 (dollars a month), got -5"),
        (
            "[margin]\nshare_pct = 120\n",
            "rules.toml:2: margin.share_pct: must be <= critical_pct (100)",
        ),
        ('[margin]\nplans_csv = "nope.csv"\n', "rules.toml:2: margin.plans_csv: cannot read"),
        ("[margin]\nsharepct = 1\n", "rules.toml:2: margin.sharepct: unknown key"),
    ]
    for text, want in bad:
        with pytest.raises(RulesError) as e:
            parse_rules(text, tmp_path / "rules.toml")
        assert str(e.value).replace(str(tmp_path) + "/", "").startswith(want), str(e.value)
    (tmp_path / "bad.csv").write_text("customer,monthly_revenue\nacme,lots\n")
    with pytest.raises(RulesError) as e:
        parse_rules('[margin]\nplans_csv = "bad.csv"\n', tmp_path / "rules.toml")
    assert (
        str(e.value)
        == f"{tmp_path}/bad.csv:2: monthly_revenue: must be a number > 0 (dollars), got 'lots'"
    )


def test_two_customers_over_their_plans_are_two_incidents(llmtop_db: Path) -> None:
    """Both served by the same prompt version: the one's alert was filed under the other's, so
    the second customer never paged."""
    rows = [
        payload(start=T - 3 * 86400 + i * 600, input_tokens=1000, output_tokens=200,
                customer=c, prompt_version="v1")
        for i in range(400)
        for c in ("duff", "hooli", "acme")
    ]  # fmt: skip
    write(llmtop_db, rows)
    text = rules_text(1.0).replace("acme = 1.0", "duff = 0.001\nhooli = 0.001")
    rules = parse_rules(text, Path("rules.toml"))
    r = Reader(llmtop_db, readonly=True)
    try:
        alerts = [a for a in evaluate(r, rules, T + 3600) if a.rule == "margin"]
    finally:
        r.close()
    assert sorted(a.scope for a in alerts) == ["customer=duff", "customer=hooli"]
    assert [a.parent for a in alerts] == [None, None]
    # The month before is older than the file: no change to name ("prompt_version=v1 +$0.11
    # ($0.00 → $0.11)" was every value against nothing), so who spends it.
    for a in alerts:
        assert a.causes and all(t.startswith("largest share: ") for t, _ in a.causes), a.causes
