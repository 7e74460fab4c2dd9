"""Tasks per feature and margin per customer, as the dashboard's panels and the report read them.

Why apart from the snapshot: a task is the calls sharing a correlation_id, so its figures come
from raw rows grouped by correlation_id (no rollup can hold them), which at 10M rows costs
seconds for a long window. The dashboard reads these on a slower cadence of their own
(tui/widgets/review_row.py) rather than on every refresh. Margins are cheap (the customer
rollup cube) and ride along. Several files (MultiReader) are read one by one and added up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from llmtop.store.engine import Spec, Tracker
from llmtop.store.filters import Clause, label_matches
from llmtop.store.outcomes import task_stats, total_tasks
from llmtop.store.reader import MultiReader, Reader
from llmtop.store.rollup import F_SPEND
from llmtop.store.views import CustomerMargin, MarginBoard, TaskBoard, TaskStats


def file_readers(
    reader: Reader | MultiReader, clauses: Sequence[Clause] = ()
) -> list[tuple[Reader, tuple[Clause, ...]]]:
    """Each file's reader with the clauses it answers (a `source` clause picks files)."""
    if isinstance(reader, MultiReader):
        mine = [c for c in clauses if c.key == "source"]
        rest = tuple(c for c in clauses if c.key != "source")
        return [
            (r, rest)
            for label, r in zip(reader.labels, reader.readers, strict=True)
            if label_matches(label, mine)
        ]
    return [(reader, tuple(clauses))]


def _add(a: TaskStats, b: TaskStats) -> TaskStats:
    return TaskStats(
        key=a.key,
        tasks=a.tasks + b.tasks,
        succeeded=a.succeeded + b.succeeded,
        failed=a.failed + b.failed,
        recorded=a.recorded + b.recorded,
        calls=a.calls + b.calls,
        spend=a.spend + b.spend,
        failed_spend=a.failed_spend + b.failed_spend,
    )


def task_board(
    reader: Reader | MultiReader, start: float, end: float, clauses: Sequence[Clause] = ()
) -> TaskBoard:
    """Tasks per feature in [start, end) under a filter, biggest spend first."""
    t0 = time.perf_counter()
    by: dict[str | None, TaskStats] = {}
    for r, rest in file_readers(reader, clauses):
        for s in task_stats(r, start, end, rest):
            by[s.key] = _add(by[s.key], s) if s.key in by else s
    features = sorted(by.values(), key=lambda s: (-s.spend, s.key or ""))
    return TaskBoard(
        start=start,
        end=end,
        clauses=tuple(clauses),
        features=tuple(features),
        total=total_tasks(features),
        seconds=time.perf_counter() - t0,
    )


def spend_by_customer(reader: Reader | MultiReader, start: float, end: float) -> dict[str, float]:
    """Spend per customer over [start, end), from the customer rollup cube (raw rows only at
    the ragged edges)."""
    out: dict[str, float] = {}
    for r, _ in file_readers(reader):
        groups = Tracker(Spec(dims=("customer",), fields=(F_SPEND,))).update(
            r.source(), start, end, 0, time.time()
        )
        for k, g in groups.items():
            if k[0] is not None:
                out[k[0]] = out.get(k[0], 0.0) + g.v[F_SPEND]
    return out


def margin_board(
    reader: Reader | MultiReader,
    plans: Mapping[str, float],
    month: tuple[float, float],
    now: float,
    *,
    share_pct: float = 60.0,
    critical_pct: float = 100.0,
) -> MarginBoard:
    """Every customer with a plan: cost from the month's start to `now`, its share of the plan,
    and the straight-line projection to the month's end; highest projected share first. A plan
    is per customer, so the share is of the customer's whole spend (no filter applies)."""
    start, end = month
    spent = spend_by_customer(reader, start, now) if plans else {}
    scale = (end - start) / max(now - start, 1.0)
    rows = [
        CustomerMargin(c, rev, spent.get(c, 0.0), spent.get(c, 0.0) * scale)
        for c, rev in plans.items()
    ]
    rows.sort(key=lambda m: (-m.projected_share, m.customer))
    return MarginBoard(start, now, tuple(rows), share_pct, critical_pct)
