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
    month_projection: float
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
