"""The weekly cost review's numbers: `build_report(reader, period, rules)` → `Report`.

Every sum comes from the store's rollups plus raw rows at the ragged edges (store.engine's
Tracker, the dashboard's own path), so a month at 10M rows reads a few thousand rollup rows;
test_report holds each number to SQL over the raw rows. Two parts cannot come from rollups: the
tasks (raw rows grouped by correlation_id: ~5 s of CPU for a week at 10M rows) and the movers'
cause analyses. The tasks read runs on a second connection in a thread of its own (SQLite works
without the GIL), beside everything else, so the report takes about the longer of the two. The likely causes of the top movers are
the alert engine's own analysis (alerts.explain), run on the period against the period before.
Rendering is elsewhere (report_render): this module only computes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmtop.alerts.budgets import period_bounds
from llmtop.alerts.explain import explain
from llmtop.alerts.rules import Rules
from llmtop.review.common import Period
from llmtop.review.margin import CustomerMargin, margins
from llmtop.store.alert_queries import first_row_at
from llmtop.store.engine import Spec, Tracker, total
from llmtop.store.filters import Clause, format_filter, where_sql
from llmtop.store.incidents import IncidentRow, incidents_between
from llmtop.store.outcomes import TaskStats, sort_threads, task_stats, total_tasks
from llmtop.store.reader import Reader
from llmtop.store.rollup import (
    F_CACHED,
    F_CR,
    F_ELIGIBLE,
    F_FAIL,
    F_FAILED_SPEND,
    F_FALLBACK,
    F_N,
    F_RC_HITS,
    F_RETRY,
    F_RETRY_SPEND,
    F_SAVED_RC,
    F_SPEND,
    F_UNMETERED,
    F_UNPRICED,
    Agg,
)

#: The dimensions the review breaks spend down by.
REPORT_DIMS: tuple[str, ...] = ("team", "feature", "model", "environment")
#: Movers analysed for a likely cause (each is one cause analysis: the costly part at 10M rows).
MOVERS = 3
#: A mover must have moved at least this much to be worth a cause analysis.
MIN_MOVE_USD = 0.01


@dataclass(frozen=True)
class Line:
    """One value of a dimension: this period, the one before, and the change."""

    key: str | None
    spend: float
    prev_spend: float
    requests: int
    failures: int

    @property
    def delta(self) -> float:
        return self.spend - self.prev_spend

    @property
    def delta_pct(self) -> float | None:
        return self.delta / self.prev_spend if self.prev_spend else None

    @property
    def cost_per_request(self) -> float | None:
        return self.spend / self.requests if self.requests else None


@dataclass(frozen=True)
class Mover:
    dim: str
    key: str | None
    spend: float
    prev_spend: float
    causes: tuple[str, ...]
    owner: str | None

    @property
    def delta(self) -> float:
        return self.spend - self.prev_spend


@dataclass(frozen=True)
class BudgetLine:
    name: str
    scope: str
    period: str
    amount: float
    spent: float
    projected: float  # at the current period's average rate, by the period's end
    status: str  # ok, warning, critical, over pace
    owner: str | None


@dataclass(frozen=True)
class Report:
    period: Period
    generated_at: float
    filter: str
    spend: float
    prev_spend: float
    requests: int
    prev_requests: int
    failures: int
    retries: int
    failed_spend: float  # failed attempts
    retry_spend: float  # retries and fallbacks
    #: None: the source cannot say (Reader.unavailable: a LiteLLM proxy's own table), never 0.
    unpriced: int | None
    unmetered: int | None
    invalid: int
    cache_hit_rate: float | None
    saved_prompt_cache: float | None
    saved_response_cache: float
    response_cache_hits: int
    breakdowns: dict[str, tuple[Line, ...]]
    movers: tuple[Mover, ...]
    budgets: tuple[BudgetLine, ...]
    tasks: tuple[TaskStats, ...]
    tasks_total: TaskStats
    incidents: tuple[IncidentRow, ...]
    margins: tuple[CustomerMargin, ...] = ()
    daily: tuple[tuple[float, float], ...] = ()  # (UTC day start, spend)
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: The earliest row of the data (None: none, or the source cannot say). When it is after
    #: the previous period's start, that period is not all in the data: its figures and the
    #: changes are not shown (the dashboard's Δ says "—" for the same reason), not "$0.00" and
    #: "+$1,160" on every line of a day-old file.
    data_start: float | None = None
    #: Fallback attempts (beside `retries`): "retries and fallbacks" counted retries only.
    fallbacks: int = 0

    @property
    def previous_covered(self) -> bool:
        return covers(self.data_start, self.period.previous)

    @property
    def delta(self) -> float:
        return self.spend - self.prev_spend

    @property
    def delta_pct(self) -> float | None:
        return self.delta / self.prev_spend if self.prev_spend else None


Savings = Callable[[str, int], "float | None"]

#: Share of the previous period the data may miss at its start and still be compared with (a
#: file begun a few minutes after it, its first call a little after the hour, covers it).
COVER_SLACK = 0.02


def covers(data_start: float | None, span: tuple[float, float]) -> bool:
    """Whether data starting at `data_start` holds all of `span` (None: cannot say, so yes)."""
    a, b = span
    return data_start is None or data_start <= a + COVER_SLACK * (b - a)


def _groups(
    reader: Reader,
    dims: tuple[str, ...],
    a: float,
    b: float,
    clauses: Sequence[Clause],
    fields: tuple[int, ...] | None = None,
    width: int = 0,
) -> dict[Any, Agg]:
    where, params = where_sql(clauses)
    spec = Spec(
        dims=dims,
        where=where,
        params=tuple(params),
        keys=frozenset(c.key for c in clauses),
        fields=fields,
        width=width,
    )
    return Tracker(spec).update(reader.source(), a, b, 0, time.time())


def _budgets(reader: Reader, rules: Rules, now: float) -> list[BudgetLine]:
    out = []
    for bud in rules.budgets:
        start, end = period_bounds(now, bud.period)
        spent = reader.spend_between(start, now, bud.scope)
        elapsed = max(now - start, 1.0)
        projected = spent / elapsed * (end - start)
        pct = spent / bud.amount * 100.0
        status = "ok"
        if pct >= bud.critical_pct:
            status = "critical"
        elif pct >= bud.warning_pct:
            status = "warning"
        elif bud.projection and projected > bud.amount:
            status = "over pace"
        out.append(
            BudgetLine(
                bud.name,
                bud.scope_text or "all spend",
                bud.period,
                bud.amount,
                spent,
                projected,
                status,
                bud.owner,
            )
        )
    return out


class TasksAside:
    """`task_stats` over [a, b) on a connection of its own in a thread, started at once, its
    sort helped by the other cores (the report is a one-off that may take the machine);
    `result` waits for it. A reader that cannot open a second connection of its kind (anything but a
    SQLite Reader) is read in `result`, in the caller's thread."""

    def __init__(self, reader: Reader, a: float, b: float, clauses: Sequence[Clause]) -> None:
        self.args = (a, b, tuple(clauses))
        self.reader = reader
        self.out: list[TaskStats] | None = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        if type(reader) is Reader:
            self.thread = threading.Thread(
                target=self._run, name="llmtop-report-tasks", daemon=True
            )
            self.thread.start()

    def _run(self) -> None:
        try:
            side = Reader(self.reader.path, readonly=True)
            try:
                self.out = task_stats(side, *self.args, threads=sort_threads())
            finally:
                side.close()
        except BaseException as exc:  # handed to the caller by result()
            self.error = exc

    def result(self) -> list[TaskStats]:
        if self.thread is None:
            return task_stats(self.reader, *self.args)
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.out is not None
        return self.out


def build_report(
    reader: Reader,
    period: Period,
    rules: Rules | None = None,
    *,
    clauses: Sequence[Clause] = (),
    savings: Savings | None = None,
    causes: bool = True,
    now: float | None = None,
) -> Report:
    """Everything the review shows for `period`, compared with the period just before it.

    `savings` prices prompt-cache reads (pricing.cache_read_saving; None: counted as $0).
    `now` is when budgets are judged (default: the period's end).
    """
    rules = rules or Rules()
    a, b = period.start, period.end
    pa, pb = period.previous
    tasks_read = TasksAside(reader, a, b, clauses)
    with reader.read_transaction():
        cur_t = total(_groups(reader, (), a, b, clauses))
        prev_groups = _groups(reader, (), pa, pb, clauses, fields=(F_SPEND,))
        prev_t = total(prev_groups)
        breakdowns: dict[str, tuple[Line, ...]] = {}
        for dim in REPORT_DIMS:
            cur = _groups(reader, (dim,), a, b, clauses, fields=(F_SPEND, F_FAIL))
            prev = _groups(reader, (dim,), pa, pb, clauses, fields=(F_SPEND,))
            keys = set(cur) | set(prev)
            lines = [
                Line(
                    k[0],
                    cur[k].v[F_SPEND] if k in cur else 0.0,
                    prev[k].v[F_SPEND] if k in prev else 0.0,
                    int(cur[k].v[F_N]) if k in cur else 0,
                    int(cur[k].v[F_FAIL]) if k in cur else 0,
                )
                for k in keys
            ]
            lines.sort(key=lambda x: (-x.spend, -x.prev_spend, x.key or ""))
            breakdowns[dim] = tuple(lines)
        saved_prompt = 0.0
        if savings is not None:
            for k, g in _groups(reader, ("price_key",), a, b, clauses, fields=(F_CR,)).items():
                if k[0] and g.v[F_CR] > 0:
                    s = savings(k[0], int(g.v[F_CR]))
                    saved_prompt += s or 0.0
        daily = _groups(reader, (), a, b, clauses, fields=(F_SPEND,), width=86400)
        invalid = reader.invalid(a, b, clauses)
        incidents = incidents_between(reader, a, b)
        budgets = _budgets(reader, rules, b if now is None else now)
        plan_margins = margins(reader, rules, b if now is None else now, clauses)
    try:
        data_start = first_row_at(reader)
    except Exception:  # a source that cannot say (the comparison is then shown as read)
        data_start = None
    movers: list[Mover] = []
    if causes and covers(data_start, period.previous):
        movers = _movers(reader, rules, breakdowns, period, clauses, prev_t.v[F_N] > 0)
    tasks = tasks_read.result()
    v = cur_t.v
    gone = reader.unavailable
    return Report(
        period=period,
        generated_at=time.time(),
        filter=format_filter(clauses),
        spend=v[F_SPEND],
        prev_spend=prev_t.v[F_SPEND],
        requests=int(v[F_N]),
        prev_requests=int(prev_t.v[F_N]),
        failures=int(v[F_FAIL]),
        retries=int(v[F_RETRY]),
        failed_spend=v[F_FAILED_SPEND],
        retry_spend=v[F_RETRY_SPEND],
        unpriced=None if "unpriced" in gone else int(v[F_UNPRICED]),
        unmetered=None if "unmetered" in gone else int(v[F_UNMETERED]),
        invalid=invalid,
        cache_hit_rate=v[F_CACHED] / v[F_ELIGIBLE] if v[F_ELIGIBLE] else None,
        saved_prompt_cache=None if "saved_usd" in gone else saved_prompt,
        saved_response_cache=v[F_SAVED_RC],
        response_cache_hits=int(v[F_RC_HITS]),
        breakdowns=breakdowns,
        movers=tuple(movers),
        budgets=tuple(budgets),
        tasks=tuple(tasks),
        tasks_total=total_tasks(tasks),
        incidents=tuple(incidents),
        margins=tuple(plan_margins),
        daily=tuple(sorted((float(k), g.v[F_SPEND]) for k, g in daily.items())),
        data_start=data_start,
        fallbacks=int(v[F_FALLBACK]),
    )


def _movers(
    reader: Reader,
    rules: Rules,
    breakdowns: dict[str, tuple[Line, ...]],
    period: Period,
    clauses: Sequence[Clause],
    has_previous: bool = True,
) -> list[Mover]:
    """The biggest movers in dollars among features, teams and models, each with the alert
    engine's likely cause (what changed between the two periods, ranked by dollars)."""
    cands = [
        (dim, line)
        for dim in ("feature", "team", "model")
        for line in breakdowns.get(dim, ())
        if line.key is not None and abs(line.delta) >= MIN_MOVE_USD
    ]
    cands.sort(key=lambda x: -abs(x[1].delta))
    out: list[Mover] = []
    for dim, line in cands[:MOVERS]:
        if not has_previous:
            # Nothing to compare with (the file is younger than two periods): an analysis would
            # only restate who spends, at the cost of reading the whole period per mover.
            why = ("no calls in the previous period to compare with",)
            out.append(Mover(dim, line.key, line.spend, line.prev_spend, why, None))
            continue
        if line.delta <= 0:
            out.append(Mover(dim, line.key, line.spend, line.prev_spend, ("spend fell",), None))
            continue
        scope = (*clauses, Clause(dim, "=", line.key))
        why = explain(
            reader,
            rules,
            tuple(scope),
            (period.start, period.end),
            [period.previous],
            1.0,
        )
        texts = tuple(e.text for e in why.causes[:3]) or (why.cause,)
        out.append(Mover(dim, line.key, line.spend, line.prev_spend, texts, why.owner))
    return out
