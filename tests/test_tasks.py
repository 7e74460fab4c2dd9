"""Cost per successful task: the calls of a correlation_id are one task; outcomes recorded by
the app (record_outcome), tagged on a call (the proxy's way), or inferred from the last call."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from llmtop.collector import record_outcome
from llmtop.pricing import cost
from llmtop.store.outcomes import task_stats, total_tasks
from llmtop.store.reader import Reader

from tests.builders import payload, write

T = 1_760_000_000.0


def c(inp: int, out: int) -> float:
    return cost("gpt-4o-mini", input_tokens=inp, output_tokens=out).total_usd or 0.0


def test_cost_per_successful_task_by_hand(llmtop_db: Path) -> None:
    def call(i: int, cid: str, feature: str, inp: int, out: int, **kw: object) -> dict:
        return payload(
            start=T + i,
            input_tokens=inp,
            output_tokens=out,
            feature=feature,
            correlation_id=cid,
            **kw,
        )

    rows = [
        # A (search): a rate-limited try, then a success; the app records success.
        call(
            0,
            "A",
            "search",
            1000,
            0,
            status="failure",
            error_class="RateLimitError",
            error_code="429",
        ),
        call(1, "A", "search", 1000, 200),
        # B (search): one call that worked, but the app says the task failed.
        call(2, "B", "search", 3000, 100),
        # C (search): the proxy way: the final call is tagged outcome=failure.
        call(3, "C", "search", 500, 50, llmtop={"outcome": "failure"}),
        # D (chat): two calls, the last failed, nothing recorded: inferred failure.
        call(4, "D", "chat", 700, 70),
        call(5, "D", "chat", 700, 0, status="failure", error_class="Timeout", error_code="408"),
        # E (chat): one successful call, nothing recorded: inferred success.
        call(6, "E", "chat", 400, 40),
        # no correlation_id: not a task
        payload(start=T + 7, input_tokens=9999, output_tokens=9, feature="chat"),
    ]
    assert write(llmtop_db, rows) == len(rows)
    assert record_outcome("A", True, reason="answered")
    assert record_outcome("B", False)
    con = sqlite3.connect(llmtop_db)
    failed_cost = dict(
        con.execute(
            "SELECT correlation_id, cost_usd FROM requests WHERE status = 'failure'"
        ).fetchall()
    )
    con.close()
    # A failed call is billed for nothing here (no usage came back): $0.
    assert failed_cost == {"A": 0.0, "D": 0.0}

    a, b, cc = c(1000, 200), c(3000, 100), c(500, 50)
    d, e = c(700, 70), c(400, 40)
    r = Reader(llmtop_db, readonly=True)
    stats = {s.key: s for s in task_stats(r, T - 1, T + 100)}
    r.close()
    search, chat = stats["search"], stats["chat"]
    assert (search.tasks, search.succeeded, search.failed, search.recorded, search.calls) == (
        3,
        1,
        2,
        3,
        4,
    )
    assert search.spend == pytest.approx(a + b + cc, rel=1e-9)
    assert search.cost_per_success == pytest.approx(a + b + cc, rel=1e-9)  # 3 tasks' spend / 1
    assert search.failed_spend == pytest.approx(b + cc, rel=1e-9)
    assert (chat.tasks, chat.succeeded, chat.failed, chat.recorded, chat.calls) == (2, 1, 1, 0, 3)
    assert chat.cost_per_success == pytest.approx(d + e, rel=1e-9)
    assert search.success_rate == pytest.approx(1 / 3)
    t = total_tasks(list(stats.values()))
    assert (t.tasks, t.succeeded) == (5, 2)
    assert t.cost_per_success == pytest.approx((a + b + cc + d + e) / 2, rel=1e-9)

    # String ids too big to pack beside a row id: the same figures through the lookup path.
    con = sqlite3.connect(llmtop_db)
    with con:
        con.execute("INSERT INTO strings (id, value) VALUES (?, 'huge id')", (1 << 61,))
    con.close()
    r = Reader(llmtop_db, readonly=True)
    assert task_stats(r, T - 1, T + 100) == sorted(
        stats.values(), key=lambda s: (-s.spend, s.key or "")
    )
    r.close()


def test_the_latest_outcome_wins_and_bad_calls_never_raise(
    llmtop_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(llmtop_db, [payload(start=T, feature="f", correlation_id="X")])
    assert record_outcome("X", False)
    assert record_outcome("X", True)
    r = Reader(llmtop_db, readonly=True)
    (s,) = task_stats(r, T - 1, T + 10)
    r.close()
    assert (s.tasks, s.succeeded, s.recorded) == (1, 1, 1)
    assert record_outcome("", True) is False
    assert record_outcome("Y", "yes") is False  # type: ignore[arg-type]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "llmtop: record_outcome: ValueError: correlation_id must be a non-empty string, got ''",
        "llmtop: record_outcome: ValueError: success must be True or False, got 'yes'",
    ]


def test_outcomes_go_with_the_raw_rows_they_judge(llmtop_db: Path) -> None:
    from llmtop.store.maintenance import prune

    now = T + 100 * 86400
    write(
        llmtop_db,
        [payload(start=T, correlation_id="old"), payload(start=now, correlation_id="new")],
    )
    from llmtop.store.outcomes import write_outcome

    write_outcome(llmtop_db, "old", True, at=T + 1)
    write_outcome(llmtop_db, "new", True, at=now + 1)
    assert prune(llmtop_db, older_than=90 * 86400, now=now + 2) == 1
    con = sqlite3.connect(llmtop_db)
    assert con.execute("SELECT correlation_id FROM outcomes").fetchall() == [("new",)]
    # A task's latest outcome is read from the index alone (m010).
    plan = con.execute(
        "EXPLAIN QUERY PLAN SELECT success FROM outcomes WHERE correlation_id = 'x'"
        " ORDER BY id DESC LIMIT 1"
    ).fetchall()
    con.close()
    assert "COVERING INDEX outcomes_latest" in str(plan)


def test_the_fold_and_sort_threads_give_the_grouping_s_figures(llmtop_db: Path) -> None:
    """A SQLite reader sums tasks per (feature, outcome) in a temp table (store.outcomes._fold);
    any other reader, e.g. a subclass, groups by sorting: the two agree, with sort threads on,
    with features missing, outcomes recorded, and twice on one connection."""

    class Grouping(Reader):  # `type(reader) is Reader` is what chooses the fold
        pass

    rows = [
        payload(
            start=T + i,
            **({"feature": f"f{i % 5}"} if i % 7 else {}),
            correlation_id=f"c{i // 4}",
            input_tokens=100 + i,
            output_tokens=10,
            **({"status": "failure", "error_class": "Timeout"} if i % 9 == 0 else {}),
        )
        for i in range(400)
    ]
    write(llmtop_db, rows)
    for k in range(0, 100, 3):
        assert record_outcome(f"c{k}", k % 2 == 0)
    g = Grouping(llmtop_db, readonly=True)
    want = task_stats(g, T - 1, T + 1000)
    g.close()
    r = Reader(llmtop_db, readonly=True)
    for threads in (0, 2, 0):
        got = task_stats(r, T - 1, T + 1000, threads=threads)
        assert [(s.key, s.tasks, s.succeeded, s.recorded, s.calls) for s in got] == [
            (s.key, s.tasks, s.succeeded, s.recorded, s.calls) for s in want
        ]
        assert [s.spend for s in got] == pytest.approx([s.spend for s in want], rel=1e-12)
    assert r.query("PRAGMA threads") == [(0,)]  # the caller's setting is given back
    r.close()
    assert sum(s.tasks for s in want) == 100 and None in {s.key for s in want}
    assert sum(s.recorded for s in want) == 34
