"""`llmtop metrics`: a real exporter process on a simulator database, scraped over HTTP.

Every total is checked against SQL over the `requests` view; rows written while it runs show on
the next scrape, and counters never go down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.review_db import T0, build, q


@pytest.fixture(scope="module")
def simdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("metrics") / "sim.db"
    build(db, days=2)
    return db


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            series = (s.name, tuple(sorted(s.labels.items())))
            assert series not in seen, f"duplicate series {series}"  # Prometheus refuses those
            seen.add(series)
            out[s.name].append((s.labels, s.value))
    return out


def total(got: dict[str, list[tuple[dict[str, str], float]]], name: str, **match: str) -> float:
    return sum(v for labels, v in got[name] if all(labels.get(k) == m for k, m in match.items()))


def sql(db: Path, expr: str, where: str = "1") -> float:
    return q(db, f"SELECT TOTAL({expr}) FROM requests WHERE {where}")[0][0]


class Exporter:
    def __init__(self, db: Path, *args: str) -> None:
        env = {**os.environ, "LLMTOP_DB": str(db)}
        for k in list(env):
            if k.startswith("OTEL_"):
                env.pop(k)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmtop", "metrics", "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "serving" in line, line + self.proc.stderr.read()  # type: ignore[union-attr]
        self.url = line.split(" at ")[1].strip()

    def scrape(self) -> tuple[str, dict[str, list[tuple[dict[str, str], float]]]]:
        with urllib.request.urlopen(self.url, timeout=30) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
        return text, samples(text)


@pytest.fixture
def exporter(simdb: Path) -> Iterator[Exporter]:
    e = Exporter(simdb, "--labels", "model,provider,feature")
    yield e
    if e.proc.poll() is None:
        e.proc.kill()
        e.proc.wait(10)


def check_totals(db: Path, got: dict[str, Any]) -> None:
    n = q(db, "SELECT count(*) FROM requests")[0][0]
    assert total(got, "llmtop_requests_total") == n
    for status in ("success", "failure"):
        want = sql(db, "1", f"status = '{status}'")
        assert total(got, "llmtop_requests_total", status=status) == want
    assert total(got, "llmtop_errors_total") == sql(db, "1", "status = 'failure'")
    assert total(got, "llmtop_cost_usd_total") == pytest.approx(sql(db, "cost_usd"), rel=1e-9)
    for kind in ("input", "output", "cache_read", "cache_write", "reasoning"):
        assert total(got, "llmtop_tokens_total", gen_ai_token_type=kind) == sql(
            db, f"{kind}_tokens"
        )
    assert total(got, "llmtop_retries_total") == sql(db, "is_retry")
    assert total(got, "llmtop_fallbacks_total") == sql(db, "is_fallback")
    assert total(got, "llmtop_cache_hits_total") == sql(db, "cache_hit")
    assert total(got, "llmtop_cache_saved_usd_total") == pytest.approx(
        sql(db, "saved_usd", "cache_hit = 1"), rel=1e-9, abs=1e-12
    )
    assert total(got, "llmtop_unpriced_requests_total") == sql(db, "unpriced")
    dur = "gen_ai_client_operation_duration_seconds"
    assert total(got, f"{dur}_count") == sql(db, "latency_ms IS NOT NULL")
    assert total(got, f"{dur}_sum") == pytest.approx(sql(db, "latency_ms") / 1000, rel=1e-9)
    one_second = sum(
        v for labels, v in got[f"{dur}_bucket"] if labels["le"] in ("1.28",)
    )  # a bucket's count is every row at or under its bound
    assert one_second == sql(db, "latency_ms <= 1280")
    use = "gen_ai_client_token_usage"
    assert total(got, f"{use}_sum", gen_ai_token_type="input") == sql(db, "input_tokens")
    assert total(got, f"{use}_count", gen_ai_token_type="output") == n


def test_scraped_totals_equal_sql_and_grow_with_new_rows(simdb: Path, exporter: Exporter) -> None:
    text, got = exporter.scrape()
    assert n_rows(simdb) > 1000
    check_totals(simdb, got)
    # Per label: spend per model and feature, with the semantic-convention label names.
    for model, feature, spend in q(
        simdb, "SELECT model, feature, TOTAL(cost_usd) FROM requests GROUP BY 1, 2"
    ):
        got_spend = total(
            got, "llmtop_cost_usd_total", gen_ai_request_model=model, feature=feature or "(none)"
        )
        assert got_spend == pytest.approx(spend, rel=1e-9, abs=1e-12)
    assert "# TYPE gen_ai_client_operation_duration_seconds histogram" in text
    assert {labels["gen_ai_provider_name"] for labels, _ in got["llmtop_cost_usd_total"]} == {
        p for (p,) in q(simdb, "SELECT DISTINCT provider FROM requests")
    }
    before = total(got, "llmtop_requests_total")
    # The app keeps writing: the next scrape adds exactly the new rows.
    build(simdb, days=1, seed=9)
    _, again = exporter.scrape()
    check_totals(simdb, again)
    assert total(again, "llmtop_requests_total") > before


def n_rows(db: Path) -> int:
    return q(db, "SELECT count(*) FROM requests")[0][0]


def test_sigterm_stops_cleanly(exporter: Exporter) -> None:
    exporter.proc.send_signal(signal.SIGTERM)
    assert exporter.proc.wait(30) == 0


def test_cardinality_cap_folds_the_rest_into_other(simdb: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "llmtop", "metrics", "--db", str(simdb), "--once"]
        + ["--labels", "customer", "--max-series", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    got = samples(res.stdout)
    customers = {labels["customer"] for labels, _ in got["llmtop_cost_usd_total"]}
    assert len(customers) == 4 and "(other)" in customers
    assert q(simdb, "SELECT count(DISTINCT customer) FROM requests")[0][0] > 4
    assert total(got, "llmtop_cost_usd_total") == pytest.approx(sql(simdb, "cost_usd"), rel=1e-9)
    assert total(got, "llmtop_requests_total") == n_rows(simdb)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--labels", "model,colour"], "unknown label 'colour'"),
        (["--listen", "localhost"], "expected HOST:PORT"),
    ],
)
def test_bad_arguments_one_line(simdb: Path, args: list[str], message: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "llmtop", "metrics", "--db", str(simdb), "--once", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and message in res.stderr, res.stderr


def test_missing_database_one_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "llmtop", "metrics", "--db", str(tmp_path / "none.db"), "--once"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert T0  # the simulator's fixed clock is what the totals above were written at


def test_examples_use_only_served_metrics_and_labels(simdb: Path) -> None:
    """The sample alert rules and Grafana panels name series `llmtop metrics` really serves."""
    import json
    import re

    import yaml

    res = subprocess.run(
        [sys.executable, "-m", "llmtop", "metrics", "--db", str(simdb), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    got = samples(res.stdout)
    labels = {k for series in got.values() for lbls, _ in series for k in lbls}
    examples = Path(__file__).resolve().parents[1] / "examples"
    rules = yaml.safe_load((examples / "prometheus" / "llmtop-alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    panels = json.loads((examples / "grafana" / "llmtop-panels.json").read_text())["panels"]
    exprs += [t["expr"] for p in panels for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        for name in re.findall(r"\b((?:llmtop|gen_ai)_[a-z_]+)", expr):
            assert name in got or name in labels, f"{name} in {expr!r} is not served"
        for by in re.findall(r"by \(([^)]*)\)", expr):
            for label in (x.strip() for x in by.split(",")):
                assert label in labels | {"le"}, f"label {label} in {expr!r} is not served"
