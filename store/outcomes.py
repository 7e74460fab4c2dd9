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
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from llmtop.store.filters import Clause, where_sql
from llmtop.store.reader import Reader
from llmtop.store.schema import open_db
from llmtop.store.views import TaskStats

__all__ = ["OUTCOME_TAG", "TaskStats", "task_stats", "total_tasks", "write_outcome"]

OUTCOME_TAG = "outcome"


def write_outcome(
    path: str | Path,
    correlation_id: str,
    success: bool,
    tags: Mapping[str, str] | None = None,
    at: float | None = None,
) -> None:
    """One outcome row in its own short transaction (the collector's writer batches calls; an
    outcome is one row per task, rare enough to write directly)."""
    conn = open_db(path)
    try:
        with conn:
            conn.execute(
                "INSERT INTO outcomes (correlation_id, at, success, tags_json) VALUES (?, ?, ?, ?)",
                (
                    correlation_id,
                    time.time() if at is None else at,
                    1 if success else 0,
                    json.dumps(dict(tags), sort_keys=True) if tags else None,
                ),
            )
    finally:
        conn.close()


def _has_outcomes(reader: Reader) -> bool:
    return bool(
        reader.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outcomes'")
    )


def _tasks_sql(reader: Reader, where: str) -> str:
    """The per-feature task sums over [?, ?) under `where`.

    Why packed keys: a task's feature is its first call's and its inferred outcome its last
    call's status. Reading those back by id (two lookups per task) cost as much as the grouping
    itself, so each call's id carries them in one integer instead: min(id * K + feature) is the
    first call with its feature, max(id * 2 + failed) the last with its status. K is a power of
    two above every string id; when ids are too big for that to fit in 63 bits, the lookups are
    used instead.
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
        return f"""
        WITH t AS (
            SELECT c.correlation_id AS cid, min(c.id * {k} + coalesce(c.feature, {k - 1})) AS f,
                max(c.id * 2 + (c.status != 0)) AS l, count(*) AS calls,
                total(c.cost_usd) AS cost, {tagged} AS tagged
            FROM calls c
            WHERE c.started_at >= ? AND c.started_at < ? AND c.correlation_id IS NOT NULL
                AND {where}
            GROUP BY c.correlation_id
        ), k AS (
            SELECT nullif(t.f % {k}, {k - 1}) AS feature, t.calls, t.cost,
                coalesce({recorded}, t.tagged, 1 - t.l % 2) AS ok,
                ({recorded} IS NOT NULL OR t.tagged IS NOT NULL) AS known
            FROM t
        )
        SELECT feature, count(*), total(ok), total(known), total(calls), total(cost),
            total(CASE WHEN ok = 0 THEN cost END)
        FROM k GROUP BY feature
        """
    return f"""
    WITH t AS (
        SELECT c.correlation_id AS cid, min(c.id) AS first_id, max(c.id) AS last_id,
            count(*) AS calls, total(c.cost_usd) AS cost, {tagged} AS tagged
        FROM calls c
        WHERE c.started_at >= ? AND c.started_at < ? AND c.correlation_id IS NOT NULL AND {where}
        GROUP BY c.correlation_id
    ), o AS (
        SELECT t.first_id, t.last_id, t.calls, t.cost, {recorded} AS recorded, t.tagged FROM t
    ), k AS (
        SELECT f.feature AS feature, o.calls, o.cost,
            coalesce(o.recorded, o.tagged, CASE l.status WHEN 0 THEN 1 ELSE 0 END) AS ok,
            (o.recorded IS NOT NULL OR o.tagged IS NOT NULL) AS known
        FROM o JOIN calls f ON f.id = o.first_id JOIN calls l ON l.id = o.last_id
    )
    SELECT feature, count(*), total(ok), total(known), total(calls), total(cost),
        total(CASE WHEN ok = 0 THEN cost END)
    FROM k GROUP BY feature
    """


def task_stats(
    reader: Reader, start: float, end: float, clauses: Sequence[Clause] = ()
) -> list[TaskStats]:
    """Per feature (the feature of a task's first call), biggest spend first."""
    where, params = where_sql(clauses)
    sql = _tasks_sql(reader, where)
    rows = reader.query(sql, (start, end, *params))
    names = reader.strings({r[0] for r in rows if r[0] is not None})
    out = [
        TaskStats(
            key=names.get(r[0]) if r[0] is not None else None,
            tasks=int(r[1]),
            succeeded=int(r[2]),
            failed=int(r[1] - r[2]),
            recorded=int(r[3]),
            calls=int(r[4]),
            spend=float(r[5]),
            failed_spend=float(r[6]),
        )
        for r in rows
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
