"""The new-entity rule: a customer, user, feature or model with no rows in the previous `days`
days whose spend in the window is a notable share of the org's ("new customer X: $Y/h, Z% of
spend").

Why its own rule: every other rule compares a scope with its own past, and a brand-new customer
has none, so "10× its 7-day average" is undefined, and the runaway rule handled best exactly the
case that needs it least. A share of the org's spend in the same window is defined from the
first minute and means the same at $1/h and at $5,000/h.

A handful of calls is not a share: a small tenant that signed up this morning and made 3 calls
in a quarter hour "is" 6% of a $1/h org's spend for that quarter hour. The share judged is the
entity's spend share scaled by the Poisson lower confidence bound of its call count
(`CONFIDENCE`): 3 calls are consistent with 0.8, so those 6% count as 1.6%; 25 calls at 12% count
as 8%. And since a new entity is diluted by every minute of the window before it appeared, it is
judged on the last 5, 10 and 15 minutes (the window and shorter: its rate since it started) and,
for low-volume orgs where 15 minutes hold too few calls to prove anything, on windows doubling up
to MAX_WINDOW; the best-supported one is reported.

History comes from the hourly rollups through the runaway rule's cached reader (one tracker per
rollup cube: customer and user in one, feature and model in the other), up to the last whole
hour before the longest window: a value first seen since then is still new (for an hour or two,
after which the runaway rule, with a 7-day average, takes over). The windows are read through
sliding trackers kept in the AlertCache.

Registered in detectors.DETECTORS; detectors' types are imported in the function (detectors
imports this module).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from llmtop.alerts.explain import Evidence
from llmtop.alerts.scale import poisson_lower
from llmtop.store.alert_queries import sliding_spend
from llmtop.store.filters import format_window
from llmtop.store.reader import Reader
from llmtop.store.rollup import CUBE_DIMS_OF, CUBE_WHO

if TYPE_CHECKING:
    from llmtop.alerts.cache import AlertCache
    from llmtop.alerts.detectors import Candidate
    from llmtop.alerts.rules import Rules

DAY = 86400.0
#: Confidence of the lower bound on a new entity's call count that its share is judged at.
CONFIDENCE = 0.95
#: Windows shorter than the rule's that are also judged (a new entity's rate since it started).
SHORT_WINDOWS = (300.0, 600.0)
#: The longest window a low-volume new entity is judged over.
MAX_WINDOW = 3600.0


def windows(w: float) -> list[float]:
    out = [x for x in SHORT_WINDOWS if x < w] + [w]
    while out[-1] * 2 <= max(w, MAX_WINDOW):
        out.append(out[-1] * 2)
    return out


def newcomers(
    reader: Reader, cache: AlertCache, rules: Rules, now: float, first: float
) -> list[Candidate]:
    from llmtop.alerts.detectors import Candidate, runaway_history, scope_of, usd

    nr = rules.new
    ws = windows(nr.window)
    hour = math.floor((now - ws[-1]) / 3600.0) * 3600.0
    b0 = max(first, hour - nr.days * DAY)
    dims = list(nr.group_by)
    if hour - b0 < DAY or not dims:
        return []  # under a day of history, everything is new
    # The history's rollup cubes each cover their own dimensions: one read per cube.
    who = [d for d in dims if d in CUBE_DIMS_OF[CUBE_WHO]]
    rest = [d for d in dims if d not in who]
    seen: set[tuple[str, str]] = set()
    for part in (who, rest):
        if part:
            seen.update(runaway_history(reader, cache, part, b0, hour))
    cur: dict[tuple[str, str], dict[int, list[float]]] = {}
    org = [0.0] * len(ws)
    # Rows since `hour` are not history: one that appeared 50 minutes ago is still new. Read
    # through sliding trackers: a pass costs the rows that entered or left each window since the
    # last one, not the hour of rows the longest window holds.
    ranges = [(k, now - x, now) for k, x in enumerate(ws)]
    for idx, keys, spend, n in sliding_spend(reader, cache.trackers, "new", ranges, dims):
        org[idx] += spend
        for dim, val in zip(dims, keys, strict=True):
            if val is not None and (dim, val) not in seen:
                g = cur.setdefault((dim, val), {}).setdefault(idx, [0.0, 0])
                g[0] += spend
                g[1] += n
    out: list[Candidate] = []
    days = min(nr.days, round((hour - b0) / DAY))
    for (dim, val), by_idx in cur.items():
        best: tuple[float, float, int] | None = None  # (supported share, share, window index)
        for k, (spend, n) in by_idx.items():
            if n < nr.min_requests or spend < nr.min_usd or org[k] <= 0:
                continue
            share = spend / org[k] * 100.0
            low = share * poisson_lower(int(n), 1.0 - CONFIDENCE) / n
            if low >= nr.share_pct and (best is None or low > best[0]):
                best = (low, share, k)
        if best is None:
            continue
        _low, share, k = best
        w, spend = ws[k], by_idx[k][0]
        per_hour = spend * 3600.0 / w
        text = (
            f"new {dim} {val}: {usd(per_hour)}/h over the last {format_window(w)}, "
            f"{share:.0f}% of spend (none in the previous "
            f"{'day' if days == 1 else f'{days} days'})"
        )
        out.append(
            Candidate(
                rule="new",
                severity="critical" if share >= nr.critical_share_pct else "warning",
                scope=scope_of(dim, val),
                title=text,
                cur=(now - w, now),
                # Its baseline is the history: it has no rows before `hour` (that is what made
                # it new), so only [hour, now - w) can hold any, and the cause analysis reads
                # just that (a week of a big file is seconds per alert); the scale still spreads
                # them over the whole history.
                base=[(hour, now - w)],
                scale=w / (now - w - b0),
                delta=spend,
                extra=[Evidence(text, spend, "contributor", dim, primary=True, value=val)],
            )
        )
    return out
