"""`llmtop whatif`: totals equal `llmtop.pricing.cost()` per raw row summed by hand, on a
simulator database; unpriced targets are unpriced (never $0); bad input is one line, exit 2."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from llmtop.pricing import cost

from llmtop.cli import main
from tests.review_db import T0, build, q

START = T0 - 2 * 86400.0


@pytest.fixture(scope="module")
def sim_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("whatif") / "sim.db"
    build(path, days=3)
    return path


def run(db: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["whatif", "--db", str(db), "--window", "2d", "--until", str(T0), *args])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(db: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    rc, out, err = run(db, capsys, *args, "--json")
    assert rc == 0, err
    return json.loads(out)


def raw_rows(db: Path, where: str = "1") -> list[tuple[Any, ...]]:
    return q(
        db,
        "SELECT feature, model, provider, price_key, input_tokens, output_tokens,"
        " cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, cache_hit"
        f" FROM requests WHERE started_at >= ? AND started_at < ? AND {where}",
        (START, T0),
    )


def by_hand(
    db: Path, swaps: dict[str, str], *, batch: bool = False, cache: bool = True
) -> tuple[dict[str, float], dict[str, float]]:
    """Now and what-if per feature: cost() on each row that changes, its recorded cost else."""
    now: dict[str, float] = defaultdict(float)
    new: dict[str, float] = defaultdict(float)
    for feat, model, prov, pkey, it, ot, cr, cw, rt, usd, hit in raw_rows(db):
        if usd is None:  # unmetered or unpriced now: in neither column
            continue
        now[feat] += usd
        if model not in swaps and not batch and cache:
            new[feat] += usd
        elif hit or (it == 0 and ot == 0):
            new[feat] += 0.0
        else:
            target = swaps.get(model)
            c = cost(
                target or model,
                input_tokens=it,
                output_tokens=ot,
                cache_read_tokens=cr if cache else 0,
                cache_write_tokens=cw if cache else 0,
                reasoning_tokens=rt,
                batch=batch,
                provider=None if target else prov,
                price_key=target or pkey,
            )
            assert c.total_usd is not None
            new[feat] += c.total_usd
    return now, new


def check(doc: dict[str, Any], now: dict[str, float], new: dict[str, float]) -> None:
    lines = {f["key"]: f for f in doc["features"]}
    assert set(lines) == set(now)
    for feat in now:
        assert lines[feat]["now_usd"] == pytest.approx(now[feat], rel=1e-9, abs=1e-12)
        assert lines[feat]["whatif_usd"] == pytest.approx(new[feat], rel=1e-9, abs=1e-12)
    assert doc["total"]["now_usd"] == pytest.approx(sum(now.values()), rel=1e-9)
    assert doc["total"]["whatif_usd"] == pytest.approx(sum(new.values()), rel=1e-9)


def test_swap_totals_equal_cost_per_row(sim_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    swaps = {"gpt-4o": "gpt-4o-mini", "claude-sonnet-4-5": "claude-haiku-4-5"}
    doc = run_json(sim_db, capsys, *(f"--swap={a}={b}" for a, b in swaps.items()))
    now, new = by_hand(sim_db, swaps)
    check(doc, now, new)
    (spend,) = q(
        sim_db,
        "SELECT sum(cost_usd) FROM calls WHERE started_at >= ? AND started_at < ?",
        (START, T0),
    )[0]
    assert doc["total"]["now_usd"] == pytest.approx(spend, rel=1e-9)
    assert doc["total"]["whatif_usd"] < 0.7 * spend  # both swaps are to cheaper models
    per_swap = {s["model"]: s for s in doc["swaps"]}
    (n4o,) = q(
        sim_db,
        "SELECT count(*) FROM requests WHERE model = 'gpt-4o' AND started_at >= ?"
        " AND started_at < ?",
        (START, T0),
    )[0]
    assert per_swap["gpt-4o"]["calls"] == n4o > 100
    assert per_swap["gpt-4o"]["price_key"] == "gpt-4o-mini"
    assert per_swap["gpt-4o"]["mismatch"] is None  # chat for chat


def test_a_swap_to_another_kind_of_model_says_so(
    sim_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gpt-4o → an embedding model printed "-99%" as if it were an option."""
    doc = run_json(sim_db, capsys, "--swap=gpt-4o=text-embedding-3-small")
    (swap,) = doc["swaps"]
    assert swap["mismatch"] == (
        "gpt-4o is a chat model and text-embedding-3-small an embedding model: this prices"
        " the tokens, not whether it can do the job"
    )


def test_batch_tier_without_cache_equals_cost_per_row(
    sim_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = run_json(sim_db, capsys, "--tier", "batch", "--cache", "off")
    now, new = by_hand(sim_db, {}, batch=True, cache=False)
    check(doc, now, new)
    assert doc["total"]["repriced"] > 0.9 * doc["total"]["calls"]


def test_swapping_a_model_onto_itself_changes_nothing(
    sim_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every token kind must be passed through (cache reads and writes: Claude's rows), or
    # repricing a model as itself would move its cost.
    models = [m for (m,) in q(sim_db, "SELECT DISTINCT model FROM requests") if m]
    doc = run_json(sim_db, capsys, *(f"--swap={m}={m}" for m in models))
    assert doc["total"]["repriced"] > 0.9 * doc["total"]["calls"]
    for line in doc["features"]:
        assert line["whatif_usd"] == pytest.approx(line["now_usd"], rel=1e-9, abs=1e-12)


def test_glob_and_filter(sim_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exact = run_json(sim_db, capsys, "--swap", "claude-sonnet-4-5=gpt-4o-mini")
    glob = run_json(sim_db, capsys, "--swap", "claude-sonnet-*=gpt-4o-mini")
    assert glob["total"] == exact["total"]
    chat = run_json(sim_db, capsys, "--swap", "gpt-4o=gpt-4o-mini", "--filter", "feature=chat")
    whole = run_json(sim_db, capsys, "--swap", "gpt-4o=gpt-4o-mini")
    (line,) = [f for f in whole["features"] if f["key"] == "chat"]
    assert [f["key"] for f in chat["features"]] == ["chat"]
    assert chat["total"]["whatif_usd"] == pytest.approx(line["whatif_usd"], rel=1e-12)


def test_unpriced_target_is_reported_never_zero(
    sim_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = run_json(sim_db, capsys, "--swap", "o3-mini=no-such-model-9")
    (swap,) = doc["swaps"]
    assert swap["price_key"] is None and "no-such-model-9" in swap["unpriced_reason"]
    assert swap["whatif_usd"] is None and swap["unpriced_target"] > 0
    assert doc["total"]["whatif_usd"] is None
    o3 = {f for (f,) in q(sim_db, "SELECT DISTINCT feature FROM requests WHERE model='o3-mini'")}
    for line in doc["features"]:
        if line["key"] in o3:
            assert line["whatif_usd"] is None and line["delta_usd"] is None
        else:
            assert line["whatif_usd"] == pytest.approx(line["now_usd"])
    rc, out, _ = run(sim_db, capsys, "--swap", "o3-mini=no-such-model-9")
    assert rc == 0
    assert "no-such-model-9 is unpriced" in out
    total = next(x for x in out.splitlines() if x.startswith("total"))
    assert "unpriced" in total and "$0.00" not in total
    # and it says what it cannot know
    assert "output tokens" in out and "quality" in out and "Cached tokens" in out


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--swap", "gpt-4o"], "--swap 'gpt-4o': use MODEL=OTHER"),
        (["--swap", "=gpt-4o-mini"], "--swap '=gpt-4o-mini': use MODEL=OTHER"),
        (["--swap", "gpt-4o="], "--swap 'gpt-4o=': use MODEL=OTHER"),
        (["--swap", "a=b", "--swap", "a=c"], "--swap 'a=c': a is already swapped"),
        ([], "nothing to change"),
        (["--swap", "a=b", "--window", "soon"], "--window"),
    ],
)
def test_bad_input_is_one_line(
    sim_db: Path, capsys: pytest.CaptureFixture[str], args: list[str], problem: str
) -> None:
    rc, out, err = run(sim_db, capsys, *args)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"llmtop whatif: {problem}")
