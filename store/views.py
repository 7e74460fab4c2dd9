"""What the read side returns: plain frozen dataclasses, no SQL, no connection.

The dashboard's widgets and `llmtop check` render these and nothing else, so a new storage
backend only has to fill them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmtop.store.filters import DIMENSIONS, Clause

#: Groups a snapshot carries, biggest spend first (the rest are counted, see Snapshot).
MAX_GROUPS = 500


@dataclass(frozen=True)
class Totals:
    requests: int = 0
    spend: float = 0.0
    failures: int = 0
    retries: int = 0
    fallbacks: int = 0
    unpriced: int = 0
    unmetered: int = 0
    response_cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    failed_spend: float = 0.0
    retry_spend: float = 0.0
    saved_response_cache: float = 0.0


@dataclass(frozen=True)
class Burn:
    per_hour_now: float
    per_hour_window: float
    per_hour_baseline: float | None
    today: float
    month: float
    #: At the month's rate so far, over the part of it the file covers; None under an hour.
    month_projection: float | None
    #: Over the last 5 minutes, as per_hour_now.
    requests_per_min: float
    spark: tuple[float, ...]


@dataclass(frozen=True)
class CacheStats:
    hit_rate: float | None
    read_share: float | None
    saved_prompt_cache: float
    saved_response_cache: float
    response_cache_hits: int


@dataclass(frozen=True)
class ErrorStats:
    error_rate: float | None
    retry_rate: float | None
    fallback_rate: float | None
    by_class: tuple[tuple[str, int], ...]
    failed_spend: float
    retry_spend: float
    spark: tuple[float, ...]


@dataclass(frozen=True)
class TokenStats:
    input_p50: float | None
    input_p90: float | None
    output_p50: float | None
    output_p90: float | None
    out_in_ratio: float | None
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    ttft_p50: float | None
    ttft_p95: float | None


@dataclass(frozen=True)
class GroupRow:
    key: str | None
    spend: float
    share: float
    delta: float | None  # relative change of spend vs the previous window; None if it had none
    requests: int
    cost_per_request: float
    cost_per_1k: float
    tokens_per_request: float
    cache_hit: float
    retry: float
    error: float
    p95_latency_ms: float | None
    unpriced: int


@dataclass(frozen=True)
class Snapshot:
    now: float
    start: float
    end: float
    group_by: str
    clauses: tuple[Clause, ...]
    totals: Totals
    burn: Burn
    cache: CacheStats
    errors: ErrorStats
    tokens: TokenStats
    groups: tuple[GroupRow, ...]
    dropped: int
    max_id: int
    dimensions: tuple[str, ...] = DIMENSIONS
    #: How many groups the window has; only the MAX_GROUPS biggest spenders are in `groups`.
    groups_total: int = 0
    #: Spend of the groups left out.
    rest_spend: float = 0.0
    #: Rows in the window (and filter) whose values were out of range or repaired (`invalid`).
    invalid: int = 0
    #: Figures the source cannot give (Reader.unavailable: a LiteLLM proxy's own table has no
    #: unpriced/unmetered checks, drop counts or cache saving): shown "n/a", never as 0.
    unavailable: frozenset[str] = frozenset()
    #: The earliest row's start in the file(s), None when empty: a Δ against a window before it
    #: has nothing to compare with ("—"), which is not the same as a group that is new ("new").
    first_row: float | None = None


@dataclass(frozen=True)
class RequestRow:
    id: int
    started_at: float
    model: str | None
    feature: str | None
    status: str
    error_class: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: float | None
    latency_ms: float | None
    attempt: int
    trace_id: str | None
    unpriced: bool
    unmetered: bool
    source: str = ""  # which database, when several are open (MultiReader)


@dataclass(frozen=True)
class RequestDetail:
    fields: tuple[tuple[str, Any], ...]
    attempts: tuple[RequestRow, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class TaskStats:
    """Tasks (the calls sharing a correlation_id) of one feature, or of everything (key None),
    over a range. Store.outcomes fills it; the report and the dashboard's tasks panel show it."""

    key: str | None
    tasks: int
    succeeded: int
    failed: int
    recorded: int  # outcomes from record_outcome or the outcome tag (the rest are inferred)
    calls: int
    spend: float  # every task's spend, failed ones included
    failed_spend: float  # the failed tasks' share of it

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.tasks if self.tasks else None

    @property
    def cost_per_success(self) -> float | None:
        """Every task's spend over the successful ones: three tries per success cost three."""
        return self.spend / self.succeeded if self.succeeded else None


@dataclass(frozen=True)
class TaskBoard:
    """The dashboard's tasks panel: tasks per feature over the range and filter it was read for.

    Read on its own cadence (a raw-row read: tui/widgets/review_row.py), so it carries the
    range it answers for and how long it took, which sets when it is read again."""

    start: float
    end: float
    clauses: tuple[Clause, ...]
    features: tuple[TaskStats, ...]  # biggest spend first
    total: TaskStats
    seconds: float = 0.0


@dataclass(frozen=True)
class CustomerMargin:
    """A customer's LLM cost this calendar month against the plan price they pay a month."""

    customer: str
    revenue: float  # a month
    month_to_date: float
    projected: float  # straight-line to the month's end

    @property
    def share(self) -> float:
        return self.month_to_date / self.revenue

    @property
    def projected_share(self) -> float:
        return self.projected / self.revenue


@dataclass(frozen=True)
class MarginBoard:
    """The dashboard's margin panel: every customer with a plan, highest projected share first,
    and the shares the margin rule warns and pages at (percent)."""

    month_start: float
    now: float
    customers: tuple[CustomerMargin, ...]
    share_pct: float = 60.0
    critical_pct: float = 100.0
