"""`llmtop check` shares the dashboard's alert state, and the engine's incidents on databases
written through the real collector: acks and snoozes honoured (`--all` shows them), one page per
incident across cron runs, the same incidents on every run, `since` when each rule's condition
started, one incident per deploy across features and across passes."""

# ruff: noqa: F811  (db, history: test_alerts.py's fixtures, imported)
from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from llmtop.alerts import cli, state
from llmtop.alerts.cache import AlertCache
from llmtop.alerts.evaluate import evaluate
from llmtop.alerts.incidents import severity_of
from llmtop.alerts.notify import sync_events
from llmtop.alerts.rules import Rules
from llmtop.store.alert_state import AlertStore
from llmtop.store.reader import Reader

from tests.test_alerts import (  # noqa: F401  (history, db: fixtures)
    NOW,
    TAIL,
    db,
    history,
    normal_tail,
    rate_limited,
    records,
    run,
    write,
)

ROOT = Path(__file__).resolve().parents[1]


def _deploy(db: Path, feature: str = "support-summarize", at: float = NOW - 900, **change: object) -> None:  # fmt: skip
    """A prompt deploy on one feature at `at` that multiplies its input; the others normal."""
    rng = random.Random(9)
    write(db, normal_tail(rng, skip=(feature,)))
    write(db, records(feature, NOW - TAIL, at, rng))
    write(db, records(feature, at, NOW + 3600, rng, **(change or {"inp": 48000, "prompt_version": "v4"})))  # fmt: skip


def check(db: Path, *args: str, now: float = NOW) -> int:
    return cli.main(["--db", str(db), "--now", str(now), *args])


def test_check_honours_acks_and_snoozes_and_all_shows_them(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _deploy(db)
    assert check(db) == 2
    out = capsys.readouterr().out
    assert out.startswith("CRITICAL  feature=support-summarize  (new page)"), out
    assert out.count("\nCRITICAL  ") + out.count("\nWARNING  ") == 0  # one incident
    root = "anomaly|feature=support-summarize"
    store = AlertStore(db)
    try:
        assert state.ack(store, root)  # the on-call acks it in a dashboard
    finally:
        store.close()
    assert check(db, now=NOW + 60) == 0
    out = capsys.readouterr().out
    assert "CRITICAL" not in out and "(1 acked or snoozed incident not shown; --all)" in out
    assert check(db, "--all", now=NOW + 120) == 2
    assert capsys.readouterr().out.startswith("CRITICAL  feature=support-summarize  (acked)")
    assert check(db, "--json", now=NOW + 130) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert check(db, "--json", "--all", now=NOW + 140) == 2
    objs = json.loads(capsys.readouterr().out)
    assert {o["state"] for o in objs} == {"acked"} and objs[0]["fingerprint"] == root
    assert len({o["incident"] for o in objs}) == 1
    # Another process holds the write lock past the wait: the pass is not recorded, but the
    # acks recorded so far still hold, and one line says so.
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        os.environ["LLMTOP_BUSY_TIMEOUT_MS"] = "100"
        assert check(db, now=NOW + 150) == 0
    finally:
        del os.environ["LLMTOP_BUSY_TIMEOUT_MS"]
        holder.execute("ROLLBACK")
        holder.close()
    captured = capsys.readouterr()
    assert "CRITICAL" not in captured.out
    (line,) = captured.err.splitlines()
    assert line.startswith("llmtop check: alert state not recorded (acks applied): ")
    # A snooze that has run out pages again.
    store = AlertStore(db)
    try:
        assert state.snooze(store, root, NOW + 600)
    finally:
        store.close()
    assert check(db, now=NOW + 300) == 0
    assert check(db, now=NOW + 601) == 2
    assert "(new page)" in capsys.readouterr().out


def test_an_open_incident_quiet_this_instant_is_listed_until_it_resolves(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An incident whose alerts stop firing stays open for RESOLVE_AFTER: check lists it,
    marked quiet, with its exit code (it said "no alerts firing", exit 0, between two critical
    runs of one incident), and its recorded severity holds in --json; then it resolves."""
    rng = random.Random(9)
    write(db, normal_tail(rng, skip=("support-summarize",)))
    write(db, records("support-summarize", NOW - TAIL, NOW - 900, rng))
    write(db, records("support-summarize", NOW - 900, NOW, rng, inp=48000, prompt_version="v4"))
    write(db, records("support-summarize", NOW, NOW + 3600, rng))  # rolled back at NOW
    # The spike rule alone: it stops firing minutes after the rollback (the anomaly rule's cost
    # per call since the change is judged for two hours).
    rules = db.parent / "spike-only.toml"
    rules.write_text("[anomaly]\nenabled = false\n")
    runs = []
    for t in range(0, 1500, 150):
        code = check(db, "--json", "--config", str(rules), now=NOW + t)
        runs.append((t, code, json.loads(capsys.readouterr().out)))
        if runs[-1][2] and runs[-1][2][0]["quiet_for"]:  # and the text says so
            assert check(db, "--config", str(rules), now=NOW + t) == code
            assert "feature=support-summarize  (quiet " in capsys.readouterr().out
    quiet = [(t, code, objs) for t, code, objs in runs if objs and objs[0]["quiet_for"]]
    first, paged = runs[0][1], runs[0][2]
    assert first in (1, 2) and not paged[0]["quiet_for"], runs[0]
    assert quiet, [(t, code) for t, code, _ in runs]
    for _t, code, objs in quiet:
        assert code == first and [o["severity"] for o in objs] == [paged[0]["severity"]]
        assert objs[0]["scope"] == "feature=support-summarize"
        assert objs[0]["incident"] == paged[0]["incident"]
    # Listed until it resolves, and then not again: no gap that says "no alerts firing".
    listed = [bool(objs) for _, _, objs in runs]
    assert listed == sorted(listed, reverse=True) and not listed[-1], listed


def test_two_cron_runs_page_an_incident_once(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _deploy(db)
    log = tmp_path / "events.jsonl"
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[notify]\ncommand = ["sh", "-c", "cat >> {log}; echo >> {log}"]\n')
    args = ("--new", "--config", str(rules))
    assert check(db, *args) == 2
    first = capsys.readouterr().out
    assert first.startswith("CRITICAL  feature=support-summarize  (new page)")
    assert check(db, *args, now=NOW + 300) == 0
    assert capsys.readouterr().out == ""  # cron mails nothing
    # The dashboard sees the same state: nothing left to page there either.
    store = AlertStore(db)
    try:
        res = state.sync_pass(store, run(db, now=NOW + 360), NOW + 360)
        assert res.pages == [] and len({s.incident for s in res.states}) == 1
    finally:
        store.close()
    events = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    assert [e["event"] for e in events] == ["page"]


def test_check_gives_the_same_incidents_on_every_run(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs in processes with different hash seeds (set order) on the same data: the same
    incidents, in the same order, with the same roots and members."""
    _deploy(db)
    write(db, [rate_limited(r, 2) for r in records("classify", NOW - 600, NOW, random.Random(4))])
    outs = []
    for seed in ("1", "2"):
        copy = tmp_path / f"run{seed}.db"
        copy.write_bytes(db.read_bytes())  # fresh state each: every incident is new
        if seed == "1":  # this process's hash seed
            assert check(copy, "--json") == 2
            text = capsys.readouterr().out
        else:
            env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
            p = subprocess.run(
                [sys.executable, "-m", "llmtop", "check", "--db", str(copy), "--now", str(NOW), "--json"],
                capture_output=True, text=True, env=env, timeout=120,
            )  # fmt: skip
            assert p.returncode == 2, p.stderr
            text = p.stdout
        outs.append([(o["fingerprint"], o["parent"], o["severity"]) for o in json.loads(text)])
    assert outs[0] == outs[1]
    roots = [fp for fp, parent, _ in outs[0] if parent is None]
    assert len(roots) == 2 and roots[0] == "anomaly|feature=support-summarize", outs[0]


def test_since_is_when_each_rules_condition_started(db: Path) -> None:
    """Not the start of the window the rule compared: a runaway loop 25 minutes old on a 1-hour
    window, a burn spike 15 minutes old on a 5-minute window, an error storm 10 minutes old on a
    15-minute window."""
    rng = random.Random(21)
    write(db, normal_tail(rng, skip=("classify", "kb-answer")))
    write(db, records("kb-answer", NOW - TAIL, NOW - 900, rng))
    write(db, records("kb-answer", NOW - 900, NOW + 600, rng, every=4))
    write(db, records("classify", NOW - TAIL, NOW - 600, rng))
    write(db, [rate_limited(r, 1) for r in records("classify", NOW - 600, NOW, rng)])
    loop = [
        r
        for r in records("agent-step", NOW - 1500, NOW, rng, every=30, inp=40000)
        if r.tags["customer"] == "acme"
    ]
    write(db, loop)
    alerts = {(a.rule, a.scope): a for a in run(db)}
    want = {
        ("runaway", "customer=acme"): NOW - 1500,
        ("spike", "feature=kb-answer"): NOW - 900,
        ("error_rate", "feature=classify"): NOW - 600,
    }
    for key, started in want.items():
        assert key in alerts, sorted(alerts)
        assert alerts[key].since == pytest.approx(started, abs=120), (key, alerts[key].since - NOW)


def test_one_deploy_is_one_incident_over_every_pass(db: Path) -> None:
    """A prompt deploy that also loses a feature's prompt cache fires its band, its burn rate
    and its cache-hit drop, each root in turn as their numbers move: it used to page as two or
    three incidents. Evaluated every minute for 15 minutes, as the dashboard does: one page and
    at most one escalation."""
    _deploy(db, "kb-answer", inp=90000, cache=False, prompt_version="v4")
    r, store, cache = Reader(db), AlertStore(db), AlertCache()
    kinds = []
    try:
        for k in range(16):
            t = NOW - 840 + 60 * k
            fired = evaluate(r, Rules(), t, explain_budget=3.0, cache=cache)
            kinds += [(e.kind, e.fingerprint) for e in sync_events(store, fired, t)[2]]
        incidents = {s.incident for s in state.states(store, NOW + 60) if s.state != "resolved"}
    finally:
        r.close()
        store.close()
    assert [k for k, _ in kinds if k == "page"] == ["page"], kinds
    assert len([k for k, _ in kinds if k == "escalate"]) <= 1, kinds
    assert len(incidents) == 1


def test_one_deploy_across_two_features_is_one_incident(db: Path) -> None:
    """One release ships a prompt version on one feature and a route version on another,
    minutes apart: one incident, whose root is the feature that costs the most."""
    rng = random.Random(31)
    write(db, normal_tail(rng, skip=("support-summarize", "kb-answer")))
    write(db, records("support-summarize", NOW - TAIL, NOW - 900, rng))
    write(db, records("support-summarize", NOW - 900, NOW, rng, inp=48000, prompt_version="v4"))
    write(db, records("kb-answer", NOW - TAIL, NOW - 780, rng))
    write(db, records("kb-answer", NOW - 780, NOW, rng, cache=False, route_version="r13"))
    alerts = run(db)
    scopes = {a.scope for a in alerts}
    assert {"feature=support-summarize", "feature=kb-answer"} <= scopes, alerts
    roots = [a for a in alerts if a.parent is None and not a.rule.startswith("budget")]
    assert len(roots) == 1, [(a.rule, a.scope, a.cause) for a in roots]
    assert roots[0].severity == severity_of(a.severity for a in alerts)


def test_a_budgets_since_is_when_its_spend_crossed_the_warning_level(
    db: Path, tmp_path: Path
) -> None:
    from llmtop.alerts.budgets import period_bounds
    from llmtop.alerts.rules import load_rules
    from llmtop.store.filters import parse_filter

    write(db, normal_tail(random.Random(11)))
    scope = parse_filter("team=support")
    start = period_bounds(NOW, "day")[0]
    r = Reader(db)
    try:
        amount = r.spend_between(start, NOW, scope) / 0.9  # 90% used: past the 80% warning
        lo, hi = start, NOW  # when the day's spend reached 80%, by bisection on the rows
        while hi - lo > 1:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if r.spend_between(start, mid, scope) < 0.8 * amount else (lo, mid)
    finally:
        r.close()
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[[budget]]\nname = "support daily"\nscope = "team=support"\nperiod = "day"\namount = {amount}\n')  # fmt: skip
    (a,) = [x for x in run(db, load_rules(rules)) if x.rule.startswith("budget")]
    assert a.severity == "warning"
    assert a.since == pytest.approx(hi, abs=300), (a.since - NOW, hi - NOW)


#: A demo's support-summarize spend in the 30-second buckets of the hour before 04:27:33 (from
#: 03:27:30; the last one 3 s long), prompt v2 shipped at 04:26:05, against its normal of
#: $6.03/h: noise of about half the normal from one bucket to the next, no bias.
DEMO_BUCKETS = (
    0.0467, 0.0517, 0.0325, 0.0071, 0.1119, 0.0205, 0.0371, 0.0329, 0.0972, 0.0212, 0.042,
    0.0337, 0.0446, 0.0828, 0.0549, 0.0628, 0.0843, 0.1297, 0.0786, 0.0489, 0.0737, 0.0538,
    0.0635, 0.0492, 0.0177, 0.0381, 0.0182, 0.0717, 0.0393, 0.0082, 0.0488, 0.0465, 0.0101,
    0.0642, 0.0243, 0.0757, 0.0091, 0.04, 0.0245, 0.0785, 0.0613, 0.0937, 0.0601, 0.0219,
    0.0833, 0.0166, 0.0939, 0.0506, 0.0223, 0.0534, 0.0235, 0.0817, 0.0761, 0.0963, 0.0266,
    0.1233, 0.0339, 0.0297, 0.0574, 0.0947, 0.0692, 0.043, 0.0111, 0.0415, 0.0835, 0.095,
    0.0842, 0.0719, 0.0665, 0.0635, 0.0707, 0.0816, 0.0, 0.0485, 0.0965, 0.0535, 0.0824,
    0.0919, 0.0619, 0.0272, 0.0561, 0.0203, 0.0876, 0.0374, 0.054, 0.0434, 0.0444, 0.0178,
    0.1048, 0.1141, 0.0724, 0.0249, 0.0422, 0.0395, 0.0335, 0.0732, 0.0791, 0.0132, 0.0441,
    0.0386, 0.0086, 0.0278, 0.0299, 0.0749, 0.0101, 0.0275, 0.0168, 0.0745, 0.0307, 0.0351,
    0.0, 0.0561, 0.0624, 0.0123, 0.0415, 0.0156, 0.0131, 0.0872, 0.7796, 0.3113, 0.0,
)  # fmt: skip


def test_since_is_not_pulled_back_by_an_hour_of_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """The change point of a noisy normal and a two-minute burst is the burst: without the
    drift allowance the noise before it summed to as much, and the demo's spike said "since
    03:48" for a deploy at 04:26."""
    from llmtop.alerts import onset
    from llmtop.store.alert_queries import Agg

    rate = 6.034305 / 3600
    seconds = [30.0] * (len(DEMO_BUCKETS) - 1) + [3.0]
    series = [Agg(spend=x) for x in DEMO_BUCKETS]

    def change_point() -> int | None:
        per = onset.spend_excess(rate)
        return onset.change_point([per(g, s) for g, s in zip(series, seconds, strict=True)])

    assert change_point() in (117, 118)  # 04:26:00 or 04:26:30
    monkeypatch.setattr(onset, "SLACK", 0.0)
    assert change_point() == 41  # 03:48:00, as it was


def test_a_new_versions_since_is_its_first_call_before_the_window(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deploy 25 minutes ago judged over a 15-minute window: the cause names the deploy's
    minute, not the window's start ("new prompt_version v2 since 19:38" for a 19:29 deploy)."""
    from datetime import datetime

    at = NOW - 1500
    _deploy(db, at=at)
    assert check(db) in (1, 2)
    out = capsys.readouterr().out
    assert "new prompt_version v4 since " in out, out
    assert f"new prompt_version v4 since {datetime.fromtimestamp(at):%H:%M} " in out, out


def test_check_and_export_read_a_database_on_a_read_only_mount(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backup copy or a volume mounted read-only: SQLite cannot make the -shm file a WAL
    database read with mode=ro needs, and check, report and export said "unable to open
    database file". They read it (immutable: nobody can write it there)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a read-only bind mount")
    _deploy(db)
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(db, ro / "copy.db")
    r = subprocess.run(["mount", "--bind", str(ro), str(ro)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot bind-mount here: {r.stderr.strip()}")
    try:
        r = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr
        assert not os.access(ro, os.W_OK) or os.statvfs(ro).f_flag & os.ST_RDONLY
        assert check(ro / "copy.db") == 2
        out = capsys.readouterr()
        assert out.out.startswith("CRITICAL  feature=support-summarize"), out
        exp = subprocess.run(
            [
                sys.executable,
                "-m",
                "llmtop",
                "export",
                "--db",
                str(ro / "copy.db"),
                "--until",
                str(NOW),
                "--window",
                "1h",
            ],
            capture_output=True,
            text=True,
        )
        assert exp.returncode == 0, exp.stderr
        assert exp.stdout.startswith("id,trace_id,") and exp.stdout.count("\n") > 10
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)  # -l: a handle still open
