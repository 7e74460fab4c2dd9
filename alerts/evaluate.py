"""Evaluate the rules against the database at one instant: `evaluate(reader, rules, now)`.

Paging state lives elsewhere (`alerts.state`), and everything a pass reuses from the last is in
the AlertCache its caller passes (none: a fresh one), so `llmtop check`, the TUI and the tests
all get the same answer for the same `now`. The likely-cause analysis runs only for conditions
that actually fire, which keeps a quiet pass well under the TUI's refresh interval.
"""

from __future__ import annotations

import time

from llmtop.alerts.budgets import budget
from llmtop.alerts.cache import AlertCache, file_key
from llmtop.alerts.detectors import DETECTORS, RATE_RULES, Candidate, fingerprint
from llmtop.alerts.explain import (
    EXPLAIN_DIMS,
    Evidence,
    Why,
    compared_ranges,
    explain,
    owner_from_map,
)
from llmtop.alerts.incidents import breadth, critical_roots, incidents, suppress
from llmtop.alerts.model import Alert
from llmtop.alerts.onset import onset, shared_series
from llmtop.alerts.rules import Rules
from llmtop.store.alert_queries import ExplainData, first_row_at
from llmtop.store.reader import Reader

#: A firing alert's likely-cause analysis is reused this long (it is the costly part of a pass:
#: during an incident at 10M rows, seconds per alert with a 7-day baseline). The alert's own
#: numbers are recomputed every pass; the evidence behind them moves slowly.
EXPLAIN_TTL = 120.0
#: Alerts over one set of ranges from which their causes are read together (see evaluate).
SHARED_READ_MIN = 8


def evaluate(
    reader: Reader,
    rules: Rules,
    now: float,
    *,
    explain_budget: float | None = None,
    cache: AlertCache | None = None,
) -> list[Alert]:
    """Every alert firing at `now`, critical first, each with its likely cause and owner.

    `explain_budget` (seconds; the dashboard's, not `llmtop check`'s): once the cause analyses
    of this pass have taken that long, the remaining alerts fire with a provisional cause (the
    broadest and biggest got theirs first), and the next pass fills the rest in. During an incident on a big
    file the page must not wait for the 50th customer's analysis.

    `cache`: what the caller's previous passes left to reuse (see AlertCache); none, a fresh one.
    """
    cache = AlertCache() if cache is None else cache
    cache.trackers.begin_pass(now)
    first = first_row_at(reader)
    if first is None:
        return []
    cands: list[Candidate] = []
    for name, detect in DETECTORS:
        if getattr(rules, name).enabled:
            cands += detect(reader, cache, rules, now, first)
    for b in rules.budgets:
        c = budget(reader, cache, b, now, first)
        if c is not None:
            cands.append(c)
    alerts: list[Alert] = []
    analysed: list[tuple[Candidate, Why, bool]] = []
    firing = suppress(cands)
    fkey = file_key(reader)

    def why_key(c: Candidate) -> tuple[object, ...]:
        return (*fkey, fingerprint(c.rule, c.scope_text), id(rules))

    def fresh(c: Candidate) -> bool:
        cached = cache.why.get(why_key(c))
        return cached is not None and 0 <= now - cached[0] < EXPLAIN_TTL

    # Alerts over the same ranges share one read of their rows (an incident fires a feature and
    # then every customer and user it touched); that read costs a few per-alert reads, so it is
    # only worth it for a crowd, and it is restricted to the crowd's scopes (their tenants' rows).
    # A crowd counts only alerts analysed this pass: one user joining an incident whose 80 other
    # alerts are cached reads its own rows, not the 80 tenants'.
    due = [c for c in firing if not fresh(c)]
    ranges_of = {id(c): compared_ranges(c.cur, c.base) for c in firing}
    crowds: dict[tuple[tuple[int, float, float], ...], list[Candidate]] = {}
    for c in due:
        crowds.setdefault(ranges_of[id(c)], []).append(c)
    shared = {
        ranges: ExplainData(
            reader, ranges, EXPLAIN_DIMS, only=[c.scope[0] for c in crowd if len(c.scope) == 1]
        )
        for ranges, crowd in crowds.items()
        if len(crowd) >= SHARED_READ_MIN
    }
    # The same for the onsets' lookbacks (read lazily: a pass out of budget may need none).
    series = shared_series(reader, due, now, first, SHARED_READ_MIN)
    spent = 0.0

    # Never-analysed alerts first (one left pending does not page; a stale cause can wait), and
    # among them broad ones: they are the roots that page.
    firing.sort(
        key=lambda c: (why_key(c) in cache.why, -breadth(c), c.severity != "critical", -c.delta)
    )
    for c in firing:
        focus = c.rule.split("_")[0] if c.rule in RATE_RULES else None
        ckey = why_key(c)
        cached = cache.why.get(ckey)
        data = shared.get(ranges_of[id(c)])
        over_budget = (
            explain_budget is not None
            and spent >= explain_budget
            and not (data is not None and data.loaded)  # its rows are read already: cheap
        )
        done = True
        if cached is not None and (fresh(c) or over_budget):
            why = cached[1]  # out of budget, a stale analysis rather than none
        elif over_budget:
            done = False
            why = Why(
                causes=[Evidence("likely cause: being analysed (next pass)", 0.0, "rate")],
                owner=owner_from_map(rules, c.scope),
            )  # not cached: the next pass analyses it
        else:
            t0 = time.monotonic()
            why = explain(
                reader,
                rules,
                c.scope,
                c.cur,
                c.base,
                c.scale,
                extra=c.extra,
                focus=focus,
                shared=shared if data is not None else None,
            )
            # When the condition started, from the scope's rows (its `since`; alerts/onset.py):
            # part of the analysis, so it is cached with it and costs nothing on later passes.
            why.since = onset(reader, rules, c, why, now, first, series)
            spent += time.monotonic() - t0
            cache.remember_why(ckey, now, why)
        analysed.append((c, why, done))
    parents = incidents(analysed)
    critical = critical_roots(analysed, parents)
    for c, why, done in analysed:
        scope = c.scope_text
        fp = fingerprint(c.rule, scope)
        alerts.append(
            Alert(
                fingerprint=fp,
                rule=c.rule,
                severity="critical" if fp in critical else c.severity,
                scope=scope,
                title=c.title,
                cause=why.cause,
                causes=tuple((e.text, round(e.dollars, 4)) for e in why.causes),
                owner=c.owner or why.owner,
                since=why.since if why.since is not None else c.cur[0],
                drill=(scope, why.drill_dim),
                parent=parents.get(fp),
                pending=not done,
                base=tuple((float(a), float(b)) for a, b in c.base),
            )
        )
    alerts.sort(key=lambda a: (a.severity != "critical", a.rule, a.scope))
    cache.trackers.end_pass()
    return alerts
