"""Likely cause: why the alerting window cost more than its baseline, ranked by dollars explained.

The alerting window is compared with the same rows' baseline (the windows the rule compared
against, scaled to one window) along every tag dimension at once. Evidence kinds:

- a prompt/route version with rows in the window and none in the baseline (a deploy);
- the tag value (feature, customer, user, model...) whose extra dollars are out of proportion to
  its usual share ("customer=acme +$9.80" — proportional growth of everything explains nothing);
- mechanisms: model-mix shift, cache-hit drop, p90 token growth, retry/fallback/error rates.

Ties are broken towards the actionable change (a deploy or a tenant) over the mechanism it caused,
so "new prompt_version v7" ranks above "p90 input tokens 2.1k → 12.4k" when both explain the same
money.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from llmtop.alerts.rules import Rules
from llmtop.store.alert_queries import (
    Agg,
    ExplainData,
    aggregate,
    error_breakdown,
    first_seen,
    token_values,
)
from llmtop.store.filters import Clause, format_filter
from llmtop.store.reader import Reader
from llmtop.store.snapshot import classify_error, quantile

EXPLAIN_DIMS: tuple[str, ...] = (
    "feature",
    "model",
    "customer",
    "user",
    "prompt_version",
    "route_version",
    "endpoint",
    "workload",
    "team",
)
VERSION_DIMS = ("prompt_version", "route_version")
#: How far before the alert's window a new version's first call is looked for: it said "new
#: prompt_version v2 since 19:38" (the 15-minute window's start) for a deploy at 19:29. As the
#: deploy rules, a version is new for 2 hours.
FIRST_SEEN_LOOKBACK = 7200.0
#: Tie-break weights: a change someone made beats the mechanism it triggered.
_WEIGHT = {"version": 1.2, "contributor": 1.0, "mechanism": 0.9, "rate": 0.9}


@dataclass
class Evidence:
    text: str
    dollars: float
    kind: str
    dim: str | None = None
    primary: bool = False
    #: The tag value it names (a version, a contributor, a model): how alerts of one incident
    #: are recognised (alerts.incidents). None for a mechanism with no single value.
    value: str | None = None
    #: When a new version first appeared (version evidence): alerts whose new versions appeared
    #: within one deploy window are one incident, across features (alerts.incidents).
    at: float | None = None


@dataclass
class Why:
    causes: list[Evidence] = field(default_factory=list)
    owner: str | None = None
    drill_dim: str = "model"
    since: float | None = None
    cur: Agg = field(default_factory=Agg)
    base: Agg = field(default_factory=Agg)

    @property
    def cause(self) -> str:
        if not self.causes:
            return "no single driver found: spend rose across the board"
        return "; ".join(e.text for e in self.causes[:3])


def fmt_tokens(n: float) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else f"{n:.0f}"


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def _rate(a: float, b: float) -> float:
    return a / b if b else 0.0


def fixed_dims(scope: Sequence[Clause]) -> set[str]:
    return {c.key for c in scope if c.op == "=" and c.value is not None}


def owner_from_map(rules: Rules, scope: Sequence[Clause]) -> str | None:
    """The most specific owners entry whose clauses all hold for `scope`."""
    have = set(scope)
    best: tuple[int, str] | None = None
    for clauses, owner in rules.owners:
        if set(clauses) <= have and (best is None or len(clauses) > best[0]):
            best = (len(clauses), owner)
    return best[1] if best else None


def compared_ranges(
    cur: tuple[float, float], base: Sequence[tuple[float, float]]
) -> tuple[tuple[int, float, float], ...]:
    """The ranges a cause analysis reads: 0 the alerting window, 1.. its baselines."""
    return ((0, cur[0], cur[1]), *((i + 1, a, b) for i, (a, b) in enumerate(base)))


def explain(
    reader: Reader,
    rules: Rules,
    scope: tuple[Clause, ...],
    cur: tuple[float, float],
    base: Sequence[tuple[float, float]],
    scale: float,
    *,
    extra: Sequence[Evidence] = (),
    focus: str | None = None,
    shared: dict[tuple[tuple[int, float, float], ...], ExplainData] | None = None,
) -> Why:
    """Compare `cur` with the baseline ranges (their sum times `scale` is one window's worth).

    `shared` (one dict per evaluation pass) lets every alert over the same ranges analyse rows
    read once instead of re-reading them: what keeps an alert storm from costing minutes.
    """
    fixed = fixed_dims(scope)
    dims = tuple(d for d in EXPLAIN_DIMS if d not in fixed)
    ranges = compared_ranges(cur, base)
    data: ExplainData | None = None
    if shared is not None:
        data = shared.get(ranges)
        if data is None:
            data = shared[ranges] = ExplainData(reader, ranges, EXPLAIN_DIMS)
        if not data.supports(scope):
            data = None
    why = Why()
    cur_by: dict[str, dict[str | None, Agg]] = {d: {} for d in dims}
    base_by: dict[str, dict[str | None, Agg]] = {d: {} for d in dims}
    base_raw_n: dict[str, dict[str | None, int]] = {d: {} for d in dims}
    if data is not None:
        cur_t, base_t, per = data.breakdown(scope, dims)
        why.cur.add(cur_t)
        why.base.add(base_t, scale)
        for d in dims:
            for v, (ca, ba, n) in per[d].items():
                if ca is not None:
                    cur_by[d][v] = ca
                if ba is not None:
                    base_by[d][v] = ba.scaled(scale)
                    base_raw_n[d][v] = n
    else:
        for idx, keys, agg in aggregate(reader, ranges, dims, scope):
            is_cur = idx == 0
            (why.cur if is_cur else why.base).add(agg, 1.0 if is_cur else scale)
            for d, k in zip(dims, keys, strict=True):
                target = cur_by[d] if is_cur else base_by[d]
                target.setdefault(k, Agg()).add(agg, 1.0 if is_cur else scale)
                if not is_cur:
                    base_raw_n[d][k] = base_raw_n[d].get(k, 0) + agg.requests
    c, b = why.cur, why.base
    delta = c.spend - b.spend
    base_cpr = _rate(b.spend, b.requests)
    items: list[Evidence] = list(extra)

    # Versions that began in the window.
    since: float | None = None
    for d in VERSION_DIMS:
        if d not in dims or b.requests == 0:
            continue
        for v, agg in cur_by[d].items():
            if v is None or agg.requests == 0 or base_raw_n[d].get(v, 0) > 0:
                continue
            extra_usd = agg.spend - agg.requests * base_cpr
            lookback = cur[0] - FIRST_SEEN_LOOKBACK
            t0 = first_seen(reader, d, v, lookback, cur[1], scope)
            if t0 is not None:
                since = t0 if since is None else min(since, t0)
            before = " before" if t0 is not None and t0 - lookback < 60 else ""
            at = f" since{before} {datetime.fromtimestamp(t0):%H:%M}" if t0 is not None else ""
            items.append(
                Evidence(
                    f"new {d} {v}{at} (not in the baseline): {int(agg.requests)} requests, "
                    f"{'+' if extra_usd >= 0 else '-'}${abs(extra_usd):.2f}",
                    extra_usd,
                    "version",
                    d,
                    value=v,
                    at=t0,
                )
            )
    why.since = since
    new_versions = {(e.dim, e.value) for e in items if e.kind == "version"}

    # Tag values carrying more of the increase than their usual share. Against no baseline at
    # all (a margin alert on a file younger than its month) every value is "$0.00 → $X": no
    # change explains anything, and who spends is said instead (_top_shares).
    if delta > 0 and b.requests > 0:
        for d in dims:
            best: tuple[float, str | None, Agg, Agg] | None = None
            for v, agg in cur_by[d].items():
                if v is None or (d, v) in new_versions:
                    continue
                bv = base_by[d].get(v, Agg())
                dv = agg.spend - bv.spend
                if dv <= 0:
                    continue
                if dv / delta - _rate(bv.spend, b.spend) < 0.25:
                    continue
                if best is None or dv > best[0]:
                    best = (dv, v, agg, bv)
            if best is None:
                continue
            dv, v, agg, bv = best
            if d == "model":
                cs, bs = _rate(agg.requests, c.requests), _rate(bv.requests, b.requests)
                if cs - bs >= 0.2:
                    items.append(
                        Evidence(
                            f"model mix: {v} {_pct(bs)} → {_pct(cs)} of requests (+${dv:.2f})",
                            dv,
                            "mechanism",
                            "model",
                            value=v,
                        )
                    )
                    continue
            items.append(
                Evidence(
                    f"{d}={v} +${dv:.2f} (${bv.spend:.2f} → ${agg.spend:.2f})",
                    dv,
                    "contributor",
                    d,
                    value=v,
                )
            )

    # Prompt-cache hit rate.
    hb, hc = _rate(b.cached, b.eligible), _rate(c.cached, c.eligible)
    if c.eligible and b.eligible and hb >= 0.1 and hb - hc >= 0.1 and hc <= hb * 0.67:
        share_b = _rate(b.cache_read_tokens, b.input_tokens)
        share_c = _rate(c.cache_read_tokens, c.input_tokens)
        lost = max(0.0, c.input_tokens * (share_b - share_c))
        full = _rate(c.input_usd, c.input_tokens - c.cache_read_tokens)
        cached = _rate(b.cache_read_usd, b.cache_read_tokens) if b.cache_read_tokens else full / 2
        items.append(
            Evidence(
                f"cache hit rate {_pct(hb)} → {_pct(hc)}",
                lost * max(0.0, full - cached),
                "mechanism",
                "route_version",
                primary=focus == "cache",
            )
        )

    # p90 token growth (prompt/context growth, verbose output).
    toks = data.tokens(scope) if data is not None else token_values(reader, ranges, scope)
    cur_t = toks.get(0, ([], []))
    base_t: tuple[list[int], list[int]] = ([], [])
    for idx, (ins, outs) in toks.items():
        if idx:
            base_t[0].extend(ins)
            base_t[1].extend(outs)
    for j, (label, usd, ntok) in enumerate(
        (
            ("input", c.input_usd + c.cache_read_usd, c.input_tokens),
            ("output", c.output_usd, c.output_tokens),
        )
    ):
        cv, bv_ = sorted(cur_t[j]), sorted(base_t[j])
        pc, pb = quantile(cv, 0.9), quantile(bv_, 0.9)
        if pc is None or pb is None or pb <= 0 or pc < 1.5 * pb:
            continue
        mean_c, mean_b = sum(cv) / len(cv), sum(bv_) / len(bv_)
        dollars = max(0.0, (mean_c - mean_b) * len(cv) * _rate(usd, ntok))
        items.append(
            Evidence(
                f"p90 {label} tokens {fmt_tokens(pb)} → {fmt_tokens(pc)}",
                dollars,
                "mechanism",
                "prompt_version",
            )
        )

    # Retry / fallback / error rates.
    for label, num_c, num_b, usd_c, usd_b in (
        ("retry", c.retries, b.retries, c.retry_spend, b.retry_spend),
        ("fallback", c.fallbacks, b.fallbacks, c.fallback_spend, b.fallback_spend),
        ("error", c.failures, b.failures, c.failed_spend, b.failed_spend),
    ):
        rc, rb = _rate(num_c, c.requests), _rate(num_b, b.requests)
        if (c.requests < 10 or rc - rb < 0.05 or rc < 1.5 * rb) and focus != label:
            continue
        text = f"{label} rate {_pct(rb)} → {_pct(rc)}"
        if label in ("error", "retry") and c.failures:
            top = _top_error(reader, cur, scope)
            if top:
                text += f" ({top})" if label == "error" else f" (after {top})"
        expected = c.requests * _rate(usd_b, b.requests)
        items.append(
            Evidence(text, max(0.0, usd_c - expected), "rate", "model", primary=focus == label)
        )

    items.sort(key=lambda e: (not e.primary, -max(e.dollars, 0.0) * _WEIGHT[e.kind], e.text))
    why.causes = [e for e in items if e.primary or e.dollars > 0.005 or e.kind == "rate"]
    if not why.causes and c.spend > 0:
        why.causes = _top_shares(cur_by, c)
    # Drill by the first cause's tag that the scope leaves free: "customer=X by customer" is
    # one row (a new customer's own evidence names its scope's tag).
    why.drill_dim = next(
        (e.dim for e in why.causes if e.dim and e.dim not in fixed),
        next((d for d in ("feature", "model") if d not in fixed), "model"),
    )
    why.owner = _owner(rules, scope, cur_by, base_by, delta, why.causes)
    return why


def _top_error(reader: Reader, cur: tuple[float, float], scope: Sequence[Clause]) -> str | None:
    by: dict[str, int] = {}
    models: dict[str, dict[str, int]] = {}
    for cls, code, model, n in error_breakdown(reader, cur[0], cur[1], scope):
        k = classify_error(cls, code)
        by[k] = by.get(k, 0) + n
        if model:
            models.setdefault(k, {})[model] = models.setdefault(k, {}).get(model, 0) + n
    if not by:
        return None
    k, n = max(by.items(), key=lambda kv: kv[1])
    m = models.get(k)
    on = f" on {max(m.items(), key=lambda kv: kv[1])[0]}" if m else ""
    return f"{k} ×{n}{on}"


def _top_shares(cur_by: dict[str, dict[str | None, Agg]], c: Agg) -> list[Evidence]:
    """No change explains it (e.g. a budget burning at its usual rate): say who spends it."""
    out: list[Evidence] = []
    for d in ("feature", "customer", "model"):
        vals = [(a.spend, v) for v, a in cur_by.get(d, {}).items() if v is not None]
        if not vals:
            continue
        spend, v = max(vals)
        if spend > 0:
            out.append(
                Evidence(
                    f"largest share: {d}={v} ${spend:.2f} ({_pct(spend / c.spend)})",
                    spend,
                    "contributor",
                    d,
                )
            )
    out.sort(key=lambda e: -e.dollars)
    return out[:2]


def _owner(
    rules: Rules,
    scope: tuple[Clause, ...],
    cur_by: dict[str, dict[str | None, Agg]],
    base_by: dict[str, dict[str | None, Agg]],
    delta: float,
    causes: Sequence[Evidence],
) -> str | None:
    """owners map for the scope, then for the feature behind it, then the dominant `team` tag."""
    o = owner_from_map(rules, scope)
    if o:
        return o
    fixed = {c.key: c.value for c in scope if c.op == "=" and c.value is not None}
    feature = fixed.get("feature")
    if feature is None:
        feature = _dominant(cur_by.get("feature", {}), base_by.get("feature", {}), delta)
        if feature is not None:
            o = owner_from_map(rules, (Clause("feature", "=", feature),))
            if o:
                return o
    team = fixed.get("team") or _dominant(cur_by.get("team", {}), base_by.get("team", {}), delta)
    if team is None:
        return None
    return owner_from_map(rules, (Clause("team", "=", team),)) or team


def _dominant(cur: dict[str | None, Agg], base: dict[str | None, Agg], delta: float) -> str | None:
    """The value behind most of the increase, or of the spend when nothing increased."""
    best: tuple[float, str] | None = None
    for v, a in cur.items():
        if v is None:
            continue
        score = a.spend - base.get(v, Agg()).spend if delta > 0 else a.spend
        if best is None or score > best[0]:
            best = (score, v)
    return best[1] if best else None


def scope_text(scope: Sequence[Clause]) -> str:
    return format_filter(scope)


def finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0
