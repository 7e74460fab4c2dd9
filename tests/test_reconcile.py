"""`llmtop reconcile`: provider exports against our rows; a seeded 5% drift on one model and day
is the only row flagged."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from llmtop.review.reconcile import matches, read_provider

from llmtop.cli import main
from tests.builders import payload, write
from tests.review_db import q

FIX = Path(__file__).parent / "fixtures" / "reconcile"
DAY0 = 1_779_926_400.0  # 2026-05-28T00:00Z


def test_samples_parse() -> None:
    kind, o = read_provider(FIX / "openai_costs.json")
    assert kind == "openai costs (json)"
    assert o == {("2026-05-28", "gpt-4o-2024-08-06"): 3.75, ("2026-05-28", "gpt-4o-mini"): 0.1}
    kind, a = read_provider(FIX / "anthropic_cost_report.json")
    assert kind == "anthropic cost report (json)"
    assert a == {("2026-05-28", "claude-sonnet-4-5-20250929"): pytest.approx(2.0)}  # cents
    kind, c = read_provider(FIX / "usage.csv")
    assert kind == "csv" and c == o
    assert matches("gpt-4o-2024-08-06", "gpt-4o") and not matches("gpt-4o-mini", "gpt-4o")
    assert matches("claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5")


def test_finds_a_seeded_drift_and_nothing_else(
    llmtop_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = []
    for d in range(3):
        for i in range(20):
            t = DAY0 + d * 86400 + 3600 + i * 600
            rows.append(payload(start=t, model="gpt-4o", input_tokens=2000 + i, output_tokens=300))
            rows.append(
                payload(start=t + 1, model="gpt-4o-mini", input_tokens=900, output_tokens=100 + i)
            )
    write(llmtop_db, rows)
    ours = q(
        llmtop_db,
        "SELECT date(started_at, 'unixepoch'), model, total(cost_usd) FROM requests GROUP BY 1, 2",
    )
    assert len(ours) == 6
    buckets: dict[str, list] = {}
    for day, model, usd in ours:
        name = "gpt-4o-2024-08-06" if model == "gpt-4o" else model
        if (day, model) == ("2026-05-29", "gpt-4o"):
            usd *= 1.05  # the seeded drift
        start = int(DAY0 + (int(day[-2:]) - 28) * 86400)
        # split into input/output line items, as OpenAI reports them
        buckets.setdefault(day, [start, []])[1] += [
            {"amount": {"value": usd * 0.7, "currency": "usd"}, "line_item": f"{name}, input"},
            {"amount": {"value": usd * 0.3, "currency": "usd"}, "line_item": f"{name}, output"},
        ]
    doc = {
        "object": "page",
        "data": [
            {"object": "bucket", "start_time": s, "end_time": s + 86400, "results": r}
            for s, r in buckets.values()
        ],
    }
    f = tmp_path / "costs.json"
    f.write_text(json.dumps(doc))
    assert main(["reconcile", str(f), "--json"]) == 1
    got = json.loads(capsys.readouterr().out)["rows"]
    assert len(got) == 6
    flagged = [(r["day"], r["model"]) for r in got if r["flagged"]]
    assert flagged == [("2026-05-29", "gpt-4o-2024-08-06")]
    (bad,) = [r for r in got if r["flagged"]]
    assert bad["delta_pct"] == pytest.approx(1 / 1.05 - 1, rel=1e-6)
    assert bad["reason"].startswith("missing calls")
    assert main(["reconcile", str(f), "--tolerance", "6%"]) == 0
    assert "0 of 6 rows beyond 6.0%" in capsys.readouterr().out


def test_bad_files_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "x.csv"
    f.write_text("when,what\n1,2\n")
    assert main(["reconcile", str(f)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"llmtop reconcile: {f}:1: header: needs a day column (date, usage_date_utc, day, start_time)"
    )


@pytest.mark.parametrize(
    "bucket",
    [
        {"start_time": "x", "results": [{"amount": {"value": 1}, "line_item": "gpt-4o"}]},
        {"start_time": 1e30, "results": [{"amount": {"value": 1}, "line_item": "gpt-4o"}]},
        {"start_time": 1, "results": [{"amount": {"value": "abc"}, "line_item": "gpt-4o"}]},
        {"start_time": 1, "results": [{"amount": 3, "line_item": "gpt-4o"}]},
        {"starting_at": "x", "results": [{"amount": "12", "model": "claude"}]},
        "x",
    ],
)
def test_a_badly_typed_cost_export_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bucket: object
) -> None:
    """Each of these was a traceback and exit 1 ("something flagged")."""
    f = tmp_path / "costs.json"
    f.write_text(json.dumps({"data": [bucket] if bucket != "x" else "x"}))
    assert main(["reconcile", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"llmtop reconcile: {f}: "), err


def test_litellms_cost_unknown_is_not_zero(
    llmtop_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No row has LiteLLM's own cost: its column says n/a (JSON null), never $0.00."""
    write(llmtop_db, [payload(start=DAY0 + 3600, model="gpt-4o", input_tokens=1000)])
    conn = sqlite3.connect(llmtop_db)
    conn.execute("UPDATE calls SET litellm_cost_nusd = NULL")  # stored as nano-dollars
    conn.commit()
    conn.close()
    f = tmp_path / "u.csv"
    f.write_text("date,model,cost_usd\n2026-05-28,gpt-4o,0.01\n")
    main(["reconcile", str(f), "--json"])
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["litellm_usd"] is None and row["calls"] == 1
    main(["reconcile", str(f)])
    line = next(x for x in capsys.readouterr().out.splitlines() if "gpt-4o" in x)
    assert "n/a" in line, line


def test_credits_nan_and_unbilled_models(
    llmtop_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A credit (a negative line) is compared by its size, not passed as within tolerance; nan
    and inf are one line, not `$nan` and exit 0; a model llmtop saw on the invoice's days from
    its provider but the invoice never names is flagged ("not on the invoice")."""
    t = DAY0 + 3600
    write(
        llmtop_db,
        [
            payload(start=t + i, model="gpt-4o", input_tokens=2000, output_tokens=300)
            for i in range(5)
        ]
        + [payload(start=t + 9, model="o3-mini", input_tokens=20000, output_tokens=9000)],
    )
    ((ours,),) = q(llmtop_db, "SELECT total(cost_usd) FROM requests WHERE model = 'gpt-4o'")
    f = tmp_path / "usage.csv"
    f.write_text(f"date,model,cost_usd\n2026-05-28,gpt-4o,{-ours}\n")
    assert main(["reconcile", str(f), "--json"]) == 1
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["gpt-4o"]["flagged"] and rows["gpt-4o"]["delta_pct"] == pytest.approx(-2.0)
    extra = rows["o3-mini"]
    assert extra["flagged"] and extra["provider_usd"] is None and extra["calls"] == 1
    assert extra["reason"] == "not on the invoice: llmtop saw 1 call"
    for bad in ("nan", "inf"):
        f.write_text(f"date,model,cost_usd\n2026-05-28,gpt-4o,{bad}\n")
        assert main(["reconcile", str(f)]) == 2
        err = capsys.readouterr().err
        assert err == (
            f"llmtop reconcile: {f}:2: date/cost_usd: not a date and an amount"
            f" ('2026-05-28', '{bad}')\n"
        )
