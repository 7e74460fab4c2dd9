"""Snapshot assembly: one or more databases' mergeable partials → the dashboard's Snapshot.

Why partials: a database answers with sums and histograms that add up (store/engine.py), so one
file and several merged files (MultiReader) share this one code path, and string ids and row
ids never leave the file they belong to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from llmtop.store.engine import Spec, Tracker, merge_groups
from llmtop.store.filters import DIMENSIONS, Clause, where_sql
from llmtop.store.rollup import (
    F_CACHED,
    F_CR,
    F_ELIGIBLE,
    F_FAIL,
    F_FAILED_SPEND,
    F_FALLBACK,
    F_IN,
    F_N,
    F_OUT,
    F_RC_HITS,
    F_RETRY,
    F_RETRY_SPEND,
    F_SAVED_RC,
    F_SPEND,
    F_UNMETERED,
    F_UNPRICED,
    INPUT,
    LATENCY,
    OUTPUT,
    TTFT,
    Agg,
)
from llmtop.store.views import (
    MAX_GROUPS,
    Burn,
    CacheStats,
    ErrorStats,
    GroupRow,
    Snapshot,
    TokenStats,
    Totals,
)

#: Dollars saved by `tokens` cached-read tokens under a price key (full input rate minus the
#: cached rate), or None when the key is not priced. Passed in by the caller (the dashboard
#: passes pricing's), so the store never imports pricing.
Savings = Callable[[str, int], float | None]


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile of already sorted values (what htop-style tools report)."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    return float(sorted_values[rank - 1])


def _rate(num: float, den: float) -> float | None:
    return num / den if den else None


def classify_error(error_class: str | None, error_code: str | None) -> str:
    """The buckets an on-call engineer acts on differently."""
    cls = (error_class or "").lower()
    code = error_code or ""
    if code == "429" or "ratelimit" in cls:
        return "429 rate limit"
    if "timeout" in cls or code == "408":
        return "timeout"
    if "contextwindow" in cls:
        return "context window"
    if "contentpolicy" in cls or "contentfilter" in cls:
        return "content filter"
    if code.startswith("5") or "internalserver" in cls or "serviceunavailable" in cls:
        return "5xx"
    return "other"


_NICE_WIDTHS = (
    10,
    20,
    30,
    60,
    120,
    180,
    240,
    300,
    360,
    600,
    720,
    900,
    1200,
    1800,
    3600,
    7200,
    10800,
    14400,
    21600,
    28800,
    43200,
    86400,
)


def spark_width(window: float, buckets: int) -> int:
    """A sparkline bin size that rollup buckets divide, close to window/buckets."""
    w = window / buckets
    for n in _NICE_WIDTHS:
        if n >= w:
            return n
    return math.ceil(w / 86400) * 86400


def view_trackers(
    group_by: str, clauses: Sequence[Clause], window: float, buckets: int
) -> dict[str, Tracker]:
    where, params = where_sql(clauses)
    keys = frozenset(c.key for c in clauses)
    dims = () if group_by == "source" else (group_by,)

    def spec(**kw: Any) -> Spec:
        return Spec(where=kw.pop("where", where), params=tuple(params), keys=keys, **kw)

    fail_where = f"({where}) AND c.status = 1"
    out = {
        "totals": Tracker(spec(hist="all")),
        "main": Tracker(spec(dims=dims, hist="latency")),
        "prev": Tracker(spec(dims=dims, fields=(F_SPEND,))),
        "errors": Tracker(
            Spec(
                dims=("error_class", "error_code"),
                where=fail_where,
                params=tuple(params),
                keys=keys | {"status"},
                fields=(),
            )
        ),
        "price": Tracker(spec(dims=("price_key",), fields=(F_CR,))),
        "spark": Tracker(spec(width=spark_width(window, buckets), fields=(F_SPEND, F_FAIL))),
        "recent": Tracker(spec(fields=(F_SPEND,))),
        "today": Tracker(spec(fields=(F_SPEND,))),
        "month": Tracker(spec(fields=(F_SPEND,))),
    }
    for d in range(1, 8):
        out[f"base{d}"] = Tracker(spec(fields=(F_SPEND,)))
    return out


@dataclass
class Partial:
    """One database's share of a snapshot, before merging (see MultiReader)."""

    totals: Agg
    main: dict[Any, Agg]
    prev: dict[Any, Agg]
    errors: dict[Any, Agg]
    price: dict[Any, Agg]
    spark: dict[Any, Agg]
    recent: Agg
    base: tuple[float | None, ...]
    today: float
    month: float
    dropped: int
    max_id: int
    dimensions: tuple[str, ...]
    invalid: int = 0
    #: The earliest row's start (None: no rows): where a comparison has history to compare with.
    first: float | None = None


#: Time the month's rows must cover before they are projected to its end.
MIN_PROJECTION_SPAN = 3600.0


def assemble(
    parts: Sequence[Partial],
    *,
    now: float,
    window: float,
    group_by: str,
    clauses: Sequence[Clause],
    buckets: int = 30,
    savings: Savings | None = None,
) -> Snapshot:
    """Merge the partials of one or more databases into what the dashboard shows.

    `savings` prices the prompt-cache reads (see Savings); without it they count as $0 saved.
    """
    start = now - window
    main = merge_groups([p.main for p in parts])
    tot = Agg()
    for p in parts:
        tot.merge(p.totals)
    v = tot.v
    totals = Totals(
        requests=int(v[F_N]),
        spend=v[F_SPEND],
        failures=int(v[F_FAIL]),
        retries=int(v[F_RETRY]),
        fallbacks=int(v[F_FALLBACK]),
        unpriced=int(v[F_UNPRICED]),
        unmetered=int(v[F_UNMETERED]),
        response_cache_hits=int(v[F_RC_HITS]),
        input_tokens=int(v[F_IN]),
        output_tokens=int(v[F_OUT]),
        cache_read_tokens=int(v[F_CR]),
        failed_spend=v[F_FAILED_SPEND],
        retry_spend=v[F_RETRY_SPEND],
        saved_response_cache=v[F_SAVED_RC],
    )

    width = spark_width(window, buckets)
    spark_groups = merge_groups([p.spark for p in parts])
    b0 = int(start // width) * width
    bins = range(b0, int(now // width) * width + 1, width)
    spark = tuple(spark_groups[b].v[F_SPEND] if b in spark_groups else 0.0 for b in bins)
    err_spark = tuple(float(spark_groups[b].v[F_FAIL]) if b in spark_groups else 0.0 for b in bins)

    recent_s = min(300.0, window)
    recent = Agg()
    for p in parts:
        recent.merge(p.recent)
    base_days = [
        [p.base[d] for p in parts if p.base[d] is not None] for d in range(len(parts[0].base))
    ]
    base_vals = [sum(x) for x in base_days if x]  # type: ignore[misc]
    month = sum(p.month for p in parts)
    local = datetime.fromtimestamp(now)
    month0 = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (month0 + timedelta(days=32)).replace(day=1)
    # Rates over the time the file(s) cover, not over days before the first row: a 7-day average
    # of a day-old file was a seventh of its rate, and a month projection of a file started
    # yesterday spread its spend over the whole month so far.
    first = min((p.first for p in parts if p.first is not None), default=None)
    covered = min(window, now - first) if first is not None and now > first else window
    month_from = max(month0.timestamp(), first) if first is not None else month0.timestamp()
    month_covered = now - month_from
    burn = Burn(
        per_hour_now=recent.v[F_SPEND] * 3600.0 / recent_s,
        per_hour_window=totals.spend * 3600.0 / covered,
        per_hour_baseline=sum(base_vals) / len(base_vals) if base_vals else None,
        today=sum(p.today for p in parts),
        month=month,
        month_projection=(
            month + month / month_covered * (next_month.timestamp() - now)
            if month_covered >= MIN_PROJECTION_SPAN
            else None
        ),
        requests_per_min=recent.v[F_N] * 60.0 / recent_s,
        spark=spark,
    )

    # Prompt-cache savings: cached reads priced at the full input rate minus what they cost.
    saved_prompt = 0.0
    price = merge_groups([p.price for p in parts])
    if savings is not None:
        for k, g in price.items():
            if k[0] and g.v[F_CR] > 0:
                saved = savings(k[0], int(g.v[F_CR]))
                if saved is not None:
                    saved_prompt += saved
    cache = CacheStats(
        hit_rate=_rate(v[F_CACHED], v[F_ELIGIBLE]),
        read_share=_rate(totals.cache_read_tokens, totals.input_tokens),
        saved_prompt_cache=saved_prompt,
        saved_response_cache=totals.saved_response_cache,
        response_cache_hits=totals.response_cache_hits,
    )

    by_class: dict[str, int] = {}
    for (ec, code), g in merge_groups([p.errors for p in parts]).items():
        k = classify_error(ec, code)
        by_class[k] = by_class.get(k, 0) + int(g.v[F_N])
    errors = ErrorStats(
        error_rate=_rate(totals.failures, totals.requests),
        retry_rate=_rate(totals.retries, totals.requests),
        fallback_rate=_rate(totals.fallbacks, totals.requests),
        by_class=tuple(sorted(by_class.items(), key=lambda kv: -kv[1])),
        failed_spend=totals.failed_spend,
        retry_spend=totals.retry_spend,
        spark=err_spark,
    )

    def whole(x: float | None) -> float | None:  # token counts are integers
        return None if x is None else float(round(x))

    tokens = TokenStats(
        input_p50=whole(tot.quantile(INPUT, 0.5)),
        input_p90=whole(tot.quantile(INPUT, 0.9)),
        output_p50=whole(tot.quantile(OUTPUT, 0.5)),
        output_p90=whole(tot.quantile(OUTPUT, 0.9)),
        out_in_ratio=_rate(v[F_OUT], v[F_IN]),
        latency_p50=tot.quantile(LATENCY, 0.5),
        latency_p95=tot.quantile(LATENCY, 0.95),
        latency_p99=tot.quantile(LATENCY, 0.99),
        ttft_p50=tot.quantile(TTFT, 0.5),
        ttft_p95=tot.quantile(TTFT, 0.95),
    )

    prev = merge_groups([p.prev for p in parts])
    # Biggest spenders only: grouping by user on a busy proxy gives tens of thousands of groups,
    # which no one reads and a terminal table cannot redraw every second.
    ranked = sorted(
        main.items(), key=lambda kv: (-kv[1].v[F_SPEND], -kv[1].v[F_N], str(kv[0][0] or ""))
    )
    top, rest = ranked[:MAX_GROUPS], ranked[MAX_GROUPS:]
    groups = []
    for key, g in top:
        gv = g.v
        n = int(gv[F_N])
        spend = gv[F_SPEND]
        pg = prev.get(key)
        pv = pg.v[F_SPEND] if pg is not None else 0.0
        label = key[0]
        groups.append(
            GroupRow(
                key=None if label is None else str(label),
                spend=spend,
                share=spend / totals.spend if totals.spend else 0.0,
                delta=(spend - pv) / pv if pv else None,
                requests=n,
                cost_per_request=spend / n if n else 0.0,
                cost_per_1k=spend * 1000.0 / n if n else 0.0,
                tokens_per_request=(gv[F_IN] + gv[F_OUT]) / n if n else 0.0,
                cache_hit=gv[F_CACHED] / gv[F_ELIGIBLE] if gv[F_ELIGIBLE] else 0.0,
                retry=gv[F_RETRY] / n if n else 0.0,
                error=gv[F_FAIL] / n if n else 0.0,
                p95_latency_ms=g.quantile(LATENCY, 0.95),
                unpriced=int(gv[F_UNPRICED]),
            )
        )
    dims: list[str] = []
    for p in parts:
        dims.extend(d for d in p.dimensions if d not in dims)
    if len(parts) > 1 and "source" not in dims:
        dims.append("source")
    return Snapshot(
        now=now,
        start=start,
        end=now,
        group_by=group_by,
        clauses=tuple(clauses),
        totals=totals,
        burn=burn,
        cache=cache,
        errors=errors,
        tokens=tokens,
        groups=tuple(groups),
        dropped=sum(p.dropped for p in parts),
        max_id=sum(p.max_id for p in parts),
        dimensions=tuple(dims),
        groups_total=len(ranked),
        rest_spend=sum(g.v[F_SPEND] for _, g in rest),
        invalid=sum(p.invalid for p in parts),
        first_row=min((p.first for p in parts if p.first is not None), default=None),
    )


def empty_partial() -> Partial:
    """No rows: what a source filter matching no database contributes (an empty screen)."""
    return Partial(
        totals=Agg(),
        main={},
        prev={},
        errors={},
        price={},
        spark={},
        recent=Agg(),
        base=(None,) * 7,
        today=0.0,
        month=0.0,
        dropped=0,
        max_id=0,
        dimensions=DIMENSIONS,
    )
