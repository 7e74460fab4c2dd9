"""The new-entity rule: a customer, user, feature or model with no rows in the previous `days`
days whose spend in the window is a notable share of the org's ("new customer X: $Y/h, Z% of
spend").

Why its own rule: every other rule compares a scope with its own past, and a brand-new customer
has none, so "10× its 7-day average" is undefined, and the runaway rule handled best exactly the
case that needs it least. A share of the org's spend in the same window is defined from the
first minute and means the same at $1/h and at $5,000/h.

History comes from the hourly rollups through the runaway rule's cached reader (one tracker per
rollup cube: customer and user in one, feature and model in the other), up to the last whole
hour before the window: a value first seen since then is still new (for up to an hour, after
which the runaway rule, with a 7-day average, takes over). The window is read from raw rows.

Registered in detectors.DETECTORS; detectors' types are imported in the function (detectors
imports this module).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from llmtop.alerts.explain import Evidence
from llmtop.store.alert_queries import Agg, aggregate
from llmtop.store.filters import format_window
from llmtop.store.reader import Reader
from llmtop.store.rollup import CUBE_DIMS_OF, CUBE_WHO

if TYPE_CHECKING:
    from llmtop.alerts.cache import AlertCache
    from llmtop.alerts.detectors import Candidate
    from llmtop.alerts.rules import Rules

DAY = 86400.0


def newcomers(
    reader: Reader, cache: AlertCache, rules: Rules, now: float, first: float
) -> list[Candidate]:
    from llmtop.alerts.detectors import Candidate, runaway_history, scope_of, usd

    nr = rules.new
    w = nr.window
    dims = list(nr.group_by)
    hour = math.floor((now - w) / 3600.0) * 3600.0
    b0 = max(first, hour - nr.days * DAY)
    if hour - b0 < DAY or not dims:
        return []  # under a day of history, everything is new
    # The history's rollup cubes each cover their own dimensions: one read per cube.
    who = [d for d in dims if d in CUBE_DIMS_OF[CUBE_WHO]]
    rest = [d for d in dims if d not in who]
    seen: set[tuple[str, str]] = set()
    for part in (who, rest):
        if part:
            seen.update(runaway_history(reader, cache, part, b0, hour))
    cur: dict[tuple[str, str], Agg] = {}
    org = 0.0
    # Rows since `hour` are not history: one that appeared 50 minutes ago is still new.
    for _idx, keys, agg in aggregate(reader, [(0, now - w, now)], dims):
        org += agg.spend
        for dim, val in zip(dims, keys, strict=True):
            if val is not None:
                cur.setdefault((dim, val), Agg()).add(agg)
    out: list[Candidate] = []
    if org <= 0:
        return out
    days = min(nr.days, round((hour - b0) / DAY))
    for (dim, val), agg in cur.items():
        if (dim, val) in seen or agg.requests < nr.min_requests or agg.spend < nr.min_usd:
            continue
        share = agg.spend / org * 100.0
        if share < nr.share_pct:
            continue
        per_hour = agg.spend * 3600.0 / w
        text = (
            f"new {dim} {val}: {usd(per_hour)}/h over the last {format_window(w)}, "
            f"{share:.0f}% of spend (none in the previous {days} days)"
        )
        out.append(
            Candidate(
                rule="new",
                severity="critical" if share >= nr.critical_share_pct else "warning",
                scope=scope_of(dim, val),
                title=text,
                cur=(now - w, now),
                base=[(b0, now - w)],
                scale=w / (now - w - b0),
                delta=agg.spend,
                extra=[Evidence(text, agg.spend, "contributor", dim, primary=True, value=val)],
            )
        )
    return out
