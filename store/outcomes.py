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
        )
        SELECT nullif(t.f % {k}, {k - 1}) AS feature,
            coalesce({recorded}, t.tagged, 3 - t.l % 2) AS g,
            count(*), total(t.calls), total(t.cost)
        FROM t GROUP BY 1, 2
        """
    return f"""
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
    """


def task_stats(
    reader: Reader, start: float, end: float, clauses: Sequence[Clause] = ()
) -> list[TaskStats]:
    """Per feature (the feature of a task's first call), biggest spend first."""
    where, params = where_sql(clauses)
    sql = _tasks_sql(reader, where)
    by: dict[int | None, list[float]] = {}
    for feature, g, n, calls, cost in reader.query(sql, (start, end, *params)):
        # g: 1/0 an outcome given (recorded or tagged) success/failure; 3/2 inferred
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
