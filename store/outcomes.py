"""Tasks and their outcomes: the calls sharing a correlation_id are one task, and what one
successful task costs is the number product and finance reason about.

Where a task's outcome comes from, first match wins:
1. `outcomes` (m008): what the app recorded with `llmtop.collector.record_outcome`, latest first;
2. an `outcome` tag (success/failure) on any of its calls: the proxy's way, e.g. metadata
   `{"llmtop": {"outcome": "success"}}` or the request tag `outcome:success` on the final call;
3. otherwise inferred: the task succeeded when its last call did. `TaskStats.recorded` says how
   many outcomes were not inferred, so a report can say how much of the rate is a guess.

Cost per successful task counts every task's spend (failed tasks included) over the successful
ones: a workflow that needs three tries per success costs three tries per success. A task is
counted by its calls inside the range read; one straddling the range's start is split.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from llmtop.store.db import DatabaseError
from llmtop.store.filters import Clause, where_sql
from llmtop.store.pg_db import PgUrl, is_pg_url
from llmtop.store.reader import Reader
from llmtop.store.schema import open_db
from llmtop.store.views import TaskStats

__all__ = [
    "OUTCOME_TAG",
    "TaskStats",
    "sort_threads",
    "task_stats",
    "total_tasks",
    "write_outcome",
]

OUTCOME_TAG = "outcome"

#: At most this many threads sort one tasks read (see task_stats).
MAX_SORT_THREADS = 4


def sort_threads() -> int:
    """Helper threads for a one-off tasks read (the report): one per core beyond the reader's,
    up to MAX_SORT_THREADS. The dashboard sorts on its reader's thread alone: it shares the
    cores with the screen."""
    return max(0, min(MAX_SORT_THREADS, (os.cpu_count() or 1) - 1))


def write_outcome(
    path: str | Path,
    correlation_id: str,
    success: bool,
    tags: Mapping[str, str] | None = None,
    at: float | None = None,
) -> None:
    """One outcome row in its own short transaction (the collector's writer batches calls; an
    outcome is one row per task, rare enough to write directly). A postgresql:// URL writes to
    the shared store (never to a LiteLLM proxy's own database: one DatabaseError line)."""
    row = (
        correlation_id,
        time.time() if at is None else at,
        1 if success else 0,
        json.dumps(dict(tags), sort_keys=True) if tags else None,
    )
    if is_pg_url(path):
        _write_outcome_pg(path if isinstance(path, PgUrl) else PgUrl(str(path)), row)
        return
    conn = open_db(path)
    try:
        with conn:
            conn.execute(
                "INSERT INTO outcomes (correlation_id, at, success, tags_json) VALUES (?, ?, ?, ?)",
                row,
            )
    finally:
        conn.close()


def _write_outcome_pg(target: PgUrl, row: tuple[object, ...]) -> None:
    from llmtop.store.pg_db import connect, driver, one_line  # psycopg only when used
    from llmtop.store.pg_schema import migrate
    from llmtop.store.pg_spendlogs_map import refuse_writes

    conn = connect(target, autocommit=True)
    try:
        refuse_writes(conn, target, "record_outcome")
        migrate(conn, target)
        conn.execute(
            "INSERT INTO outcomes (correlation_id, at, success, tags_json) VALUES (%s, %s, %s, %s)",
            row,
        )
    except driver().Error as exc:
        raise DatabaseError(one_line(target, exc)) from None
    finally:
        conn.close()


def _has_outcomes(reader: Reader) -> bool:
    return bool(
        reader.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outcomes'")
    )


def _task_rows(reader: Reader, where: str, params: Sequence[object]) -> list[tuple]:
    """The per-feature task sums over [start, end) under `where`: rows of (feature, g, tasks,
    calls, cost), g being 1/0 for an outcome given (recorded or tagged) success/failure, 3/2
    for one inferred.

    Why packed keys: a task's feature is its first call's and its inferred outcome its last
    call's status. Reading those back by id (two lookups per task) cost as much as the grouping
    itself, so each call's id carries them in one integer instead: min(id * K + feature) is the
    first call with its feature, max(id * 2 + failed) the last with its status. K is a power of
    two above every string id; when ids are too big for that to fit in 63 bits, the lookups are
    used instead.

    Why a fold into a temp table on SQLite: the tasks (1.8M in a week at 10M rows) fall into a
    few hundred (feature, g) pairs, and SQLite groups only by sorting; an upsert per task into
    a table of those pairs costs 0.65 s less than sorting them (4.6 s -> 4.0 s). PostgreSQL
    groups by hashing and reads the plain GROUP BY.
    """
    recorded = (
        "(SELECT o.success FROM outcomes o WHERE o.correlation_id = t.cid ORDER BY o.id DESC"
        " LIMIT 1)"
        if _has_outcomes(reader)
        else "NULL"
    )
    tagged = f"""max(CASE WHEN c.tags_json IS NULL THEN NULL
                ELSE CASE json_extract(c.tags_json, '$.{OUTCOME_TAG}')
                    WHEN 'success' THEN 1 WHEN 'failure' THEN 0 END END)"""
    top_string, top_id = reader.query(
        "SELECT (SELECT coalesce(max(id), 0) FROM strings), (SELECT coalesce(max(id), 0) FROM calls)"
    )[0]
    k = 1 << max(1, int(top_string) + 1).bit_length()
    if (int(top_id) + 1) * k < 1 << 62:
        tasks = f"""
        WITH t AS (
            SELECT c.correlation_id AS cid, min(c.id * {k} + coalesce(c.feature, {k - 1})) AS f,
                max(c.id * 2 + (c.status != 0)) AS l, count(*) AS calls,
                total(c.cost_usd) AS cost, {tagged} AS tagged
            FROM calls c
            WHERE c.started_at >= ? AND c.started_at < ? AND c.correlation_id IS NOT NULL
                AND {where}
            GROUP BY c.correlation_id
        )"""
        g = f"coalesce({recorded}, t.tagged, 3 - t.l % 2)"
        if type(reader) is Reader:
            return _fold(reader, tasks, f"t.f % {k} * 4 + {g}", k, params)
        return reader.query(
            f"""{tasks}
            SELECT nullif(t.f % {k}, {k - 1}) AS feature, {g} AS g,
                count(*), total(t.calls), total(t.cost)
            FROM t GROUP BY 1, 2""",
            params,
        )
    return reader.query(
        f"""
    WITH t AS (
        SELECT c.correlation_id AS cid, min(c.id) AS first_id, max(c.id) AS last_id,
            count(*) AS calls, total(c.cost_usd) AS cost, {tagged} AS tagged
        FROM calls c
        WHERE c.started_at >= ? AND c.started_at < ? AND c.correlation_id IS NOT NULL AND {where}
        GROUP BY c.correlation_id
    )
    SELECT f.feature, coalesce({recorded}, t.tagged, 3 - (l.status != 0)) AS g,
        count(*), total(t.calls), total(t.cost)
    FROM t JOIN calls f ON f.id = t.first_id JOIN calls l ON l.id = t.last_id
    GROUP BY 1, 2
    """,
        params,
    )


def _fold(reader: Reader, tasks: str, key: str, k: int, params: Sequence[object]) -> list[tuple]:
    """The tasks of `tasks` (a WITH defining t) summed per `key` (feature * 4 + g) in a temp
    table (see _task_rows); the table is the connection's own and is emptied after."""
    reader.query(
        "CREATE TEMP TABLE IF NOT EXISTS llmtop_task_fold"
        " (k INTEGER PRIMARY KEY, n INTEGER, calls INTEGER, cost REAL)"
    )
    reader.query("DELETE FROM temp.llmtop_task_fold")  # whatever a failed read left
    try:
        reader.query(
            f"""{tasks}
            INSERT INTO temp.llmtop_task_fold (k, n, calls, cost)
            SELECT {key}, 1, t.calls, t.cost FROM t WHERE 1
            ON CONFLICT (k) DO UPDATE SET n = n + 1, calls = calls + excluded.calls,
                cost = cost + excluded.cost""",
            params,
        )
        return reader.query(
            f"SELECT nullif(k / 4, {k - 1}), k % 4, n, calls, cost FROM temp.llmtop_task_fold"
        )
    finally:
        reader.query("DELETE FROM temp.llmtop_task_fold")


def task_stats(
    reader: Reader,
    start: float,
    end: float,
    clauses: Sequence[Clause] = (),
    *,
    threads: int = 0,
) -> list[TaskStats]:
    """Per feature (the feature of a task's first call), biggest spend first.

    `threads`: helper threads SQLite's sorter may use for the grouping by correlation_id (a
    week at 10M rows: 5.3 s on one core, 3.8-4.0 s with `PRAGMA threads = 2`, the same CPU;
    benchmarks/review.py). Splitting the read into parts on several connections in Python
    threads gained nothing: SQLite's connections in one process share a page-cache mutex, and
    two parts took twice the CPU. Only SQLite readers take it; PostgreSQL plans its own.
    """
    where, params = where_sql(clauses)
    sort = threads > 0 and type(reader) is Reader
    before = reader.query("PRAGMA threads")[0][0] if sort else 0
    try:
        if sort:
            reader.query(f"PRAGMA threads = {int(threads)}")
        # One snapshot: the packed keys are sized by the largest string id, read first.
        with reader.read_transaction():
            rows = _task_rows(reader, where, (start, end, *params))
    finally:
        if sort:
            reader.query(f"PRAGMA threads = {int(before)}")
    by: dict[int | None, list[float]] = {}
    for feature, g, n, calls, cost in rows:
        acc = by.setdefault(feature, [0, 0, 0, 0, 0.0, 0.0])
        acc[0] += n
        acc[1] += n if g % 2 else 0
        acc[2] += n if g < 2 else 0
        acc[3] += calls
        acc[4] += cost
        acc[5] += 0.0 if g % 2 else cost
    names = reader.strings({k for k in by if k is not None})
    out = [
        TaskStats(
            key=names.get(k) if k is not None else None,
            tasks=int(a[0]),
            succeeded=int(a[1]),
            failed=int(a[0] - a[1]),
            recorded=int(a[2]),
            calls=int(a[3]),
            spend=float(a[4]),
            failed_spend=float(a[5]),
        )
        for k, a in by.items()
    ]
    out.sort(key=lambda s: (-s.spend, s.key or ""))
    return out


def total_tasks(stats: Sequence[TaskStats]) -> TaskStats:
    return TaskStats(
        key=None,
        tasks=sum(s.tasks for s in stats),
        succeeded=sum(s.succeeded for s in stats),
        failed=sum(s.failed for s in stats),
        recorded=sum(s.recorded for s in stats),
        calls=sum(s.calls for s in stats),
        spend=sum(s.spend for s in stats),
        failed_spend=sum(s.failed_spend for s in stats),
    )
