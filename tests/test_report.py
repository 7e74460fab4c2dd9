"""`llmtop report`: every number equals SQL over the raw rows of a simulator database."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from llmtop.alerts.rules import parse_rules
from llmtop.pricing import cache_read_saving
from llmtop.review.common import parse_period
from llmtop.review.report_data import REPORT_DIMS, build_report
from llmtop.store.reader import Reader

from llmtop.cli import main
from tests.review_db import T0, build, q


@pytest.fixture(scope="module")
def sim_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "sim.db"
    build(path)
    con = sqlite3.connect(path)
    with con:
        con.execute(
            "INSERT INTO alerts (fingerprint, rule, severity, scope, title, cause, owner,"
            " first_seen, last_seen, state) VALUES ('f1', 'spike', 'critical',"
            " 'feature=support-summarize', 'support-summarize spend 8x', 'new prompt_version v2',"
            " 'support-lead', ?, ?, 'acked'), ('f0', 'anomaly', 'warning', 'feature=chat',"
            " 'old one', NULL, NULL, ?, ?, 'resolved')",
            (T0 - 86000, T0 - 3600, T0 - 30 * 86400, T0 - 29 * 86400),
        )
    con.close()
    return path


def test_report_numbers_equal_sql(sim_db: Path) -> None:
    period = parse_period("week", T0)
    a, b = period.start, period.end
    pa, pb = period.previous
    rules = parse_rules(
        '[[budget]]\nname = "support"\nscope = "team=support"\namount = 100\nowner = "sue"\n'
        "[plans]\n"
        + "\n".join(
            f'"{c}" = 50' for (c,) in q(sim_db, "SELECT DISTINCT customer FROM requests LIMIT 3")
        ),
        Path("rules.toml"),
    )
    r = Reader(sim_db, readonly=True)
    rep = build_report(r, period, rules, savings=cache_read_saving, causes=True, now=T0)
    r.close()

    def one(sql: str, lo: float = a, hi: float = b) -> tuple:
        return q(
            sim_db, f"SELECT {sql} FROM requests WHERE started_at >= ? AND started_at < ?", (lo, hi)
        )[0]

    spend, n, fails, retries, failed_spend, retry_spend, unpriced, unmetered = one(
        "total(cost_usd), count(*), total(status='failure'), total(is_retry),"
        " total(CASE WHEN status='failure' THEN cost_usd END),"
        " total(CASE WHEN is_retry=1 OR is_fallback=1 THEN cost_usd END), total(unpriced), total(unmetered)"
    )
    assert n > 10_000
    assert rep.spend == pytest.approx(spend, rel=1e-9) and rep.requests == n
    assert (rep.failures, rep.retries, rep.unpriced, rep.unmetered) == (
        fails,
        retries,
        unpriced,
        unmetered,
    )
    assert rep.failed_spend == pytest.approx(failed_spend, abs=1e-9)
    assert rep.retry_spend == pytest.approx(retry_spend, rel=1e-9)
    assert rep.prev_spend == pytest.approx(one("total(cost_usd)", pa, pb)[0], rel=1e-9)
    assert rep.invalid == one("count(invalid)")[0]
    assert rep.fallbacks == one("total(is_fallback)")[0] and rep.fallbacks > 0

    for dim in REPORT_DIMS:
        cur = {
            k: (s, c)
            for k, s, c in q(
                sim_db,
                f"SELECT {dim}, total(cost_usd), count(*) FROM requests WHERE started_at >= ? AND started_at < ? GROUP BY 1",
                (a, b),
            )
        }
        prev = dict(
            q(
                sim_db,
                f"SELECT {dim}, total(cost_usd) FROM requests WHERE started_at >= ? AND started_at < ? GROUP BY 1",
                (pa, pb),
            )
        )
        got = {x.key: x for x in rep.breakdowns[dim]}
        assert set(got) == set(cur) | set(prev)
        for k, x in got.items():
            assert x.spend == pytest.approx(cur.get(k, (0.0, 0))[0], rel=1e-9, abs=1e-12)
            assert x.requests == cur.get(k, (0.0, 0))[1]
            assert x.prev_spend == pytest.approx(prev.get(k, 0.0), rel=1e-9, abs=1e-12)
    # the incident's feature moved most, and the cause names its new prompt version
    feat = next(m for m in rep.movers if m.dim == "feature")
    assert feat.key == "support-summarize" and "prompt_version v2" in feat.causes[0]

    saved = sum(
        cache_read_saving(pk, int(tok)) or 0.0
        for pk, tok in q(
            sim_db,
            "SELECT price_key, total(cache_read_tokens) FROM requests WHERE started_at >= ? AND started_at < ? AND cache_hit = 0 AND price_key IS NOT NULL GROUP BY 1",
            (a, b),
        )
        if tok
    )
    assert saved > 0 and rep.saved_prompt_cache == pytest.approx(saved, rel=1e-9)
    elig, cached = one(
        "total(cache_hit=0 AND status='success' AND input_tokens>0), total(cache_hit=0 AND status='success' AND input_tokens>0 AND cache_read_tokens>0)"
    )
    assert rep.cache_hit_rate == pytest.approx(cached / elig)
    assert sum(v for _, v in rep.daily) == pytest.approx(spend, rel=1e-9)

    # tasks: calls of a correlation_id, the feature of the first, success = the last call's
    tasks = q(
        sim_db,
        """
        WITH t AS (SELECT correlation_id, min(id) f, max(id) l, total(cost_usd) cost FROM requests
                   WHERE started_at >= ? AND started_at < ? AND correlation_id IS NOT NULL GROUP BY 1)
        SELECT ff.feature, count(*), total(ll.status = 'success'), total(t.cost)
        FROM t JOIN requests ff ON ff.id = t.f JOIN requests ll ON ll.id = t.l GROUP BY 1""",
        (a, b),
    )
    got_t = {s.key: s for s in rep.tasks}
    assert set(got_t) == {k for k, *_ in tasks}
    for k, nt, ok, cost in tasks:
        s = got_t[k]
        assert (s.tasks, s.succeeded) == (nt, ok)
        assert s.cost_per_success == pytest.approx(cost / ok, rel=1e-9)

    (bud,) = rep.budgets
    month0 = 1_777_593_600.0  # 2026-05-01 UTC
    spent = q(
        sim_db,
        "SELECT total(cost_usd) FROM requests WHERE team = 'support' AND started_at >= ? AND started_at < ?",
        (month0, T0),
    )[0][0]
    assert bud.spent == pytest.approx(spent, rel=1e-9) and bud.owner == "sue"
    assert bud.projected == pytest.approx(spent / (T0 - month0) * 31 * 86400, rel=1e-9)
    for m in rep.margins:
        mtd = q(
            sim_db,
            "SELECT total(cost_usd) FROM requests WHERE customer = ? AND started_at >= ? AND started_at < ?",
            (m.customer, month0, T0),
        )[0][0]
        assert m.month_to_date == pytest.approx(mtd, rel=1e-9) and m.revenue == 50
    (inc,) = rep.incidents  # the month-old one is not in this week
    assert (inc.owner, inc.state, inc.acked) == ("support-lead", "acked", True)


def test_formats(sim_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["report", "--db", str(sim_db), "--until", str(T0), "--no-causes"]
    assert main([*base, "--format", "json", "--out", str(tmp_path / "r.json")]) == 0
    d = json.loads((tmp_path / "r.json").read_text())
    spend = q(
        sim_db,
        "SELECT total(cost_usd) FROM requests WHERE started_at >= ? AND started_at < ?",
        (T0 - 7 * 86400, T0),
    )[0][0]
    assert d["spend"] == pytest.approx(spend, rel=1e-9)
    assert d["breakdowns"]["feature"][0]["key"] == "support-summarize"
    assert "delta_pct" in d["breakdowns"]["feature"][0] and "cost_per_success" in d["tasks_total"]
    assert main([*base, "--format", "html", "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert page.count("<svg") == 2 and "<script src" not in page
    # nothing is fetched when it opens: the only URLs are the SVG namespace and pygal's comment
    urls = set(re.findall(r"https?://[^\"' )<>-]+", page))
    assert urls <= {
        "http://www.w3.org/2000/svg",
        "http://pygal.org",
        "http://github.com/Kozea/pygal",
    }
    assert main(base) == 0
    md = capsys.readouterr().out
    assert md.startswith("# LLM cost review: last 7 days") and "## Spend by feature" in md
    assert main([*base, "--period", "2026-05-20..2026-05-10"]) == 2
    assert capsys.readouterr().err.strip() == (
        "llmtop report: --period 2026-05-20..2026-05-10: the end date must be after the start date"
    )


def test_a_previous_period_the_data_does_not_hold_is_not_compared(sim_db: Path) -> None:
    """A file younger than two periods: no movers (an analysis against an empty baseline would
    read the whole period per mover to say nothing), and the previous figures and changes are
    "—" with the headline saying why, not "$0.00" and "+$1,160.54" on every line (the
    dashboard's Δ says "—" for the same reason)."""
    from llmtop.review.report_render import to_json, to_markdown

    r = Reader(sim_db, readonly=True)
    rep = build_report(r, parse_period("month", T0), causes=True, now=T0)
    r.close()
    assert rep.prev_spend == 0 and not rep.previous_covered and rep.movers == ()
    md = to_markdown(rep)
    assert "no comparison: the data starts " in md and "Top movers" not in md, md[:400]
    feature_rows = [x for x in md.splitlines() if x.startswith("| support-summarize |")]
    assert feature_rows and feature_rows[0].count("| — ") == 3, feature_rows
    assert json.loads(to_json(rep))["previous_covered"] is False
    # The week: the data holds the previous week whole, its first call a few seconds after it.
    r = Reader(sim_db, readonly=True)
    week = build_report(r, parse_period("week", T0), causes=False, now=T0)
    r.close()
    assert week.previous_covered and "vs the previous 7 days" in to_markdown(week)
