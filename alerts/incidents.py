"""Incidents: which firing alerts are one problem, and which of them pages.

An incident is a tree of alerts with one root: the broadest scope (a deploy's feature, not the
customers it reached). Only roots page; the rest are filed under them (Alert.parent).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from llmtop.alerts.detectors import Candidate, fingerprint
from llmtop.alerts.explain import Why
from llmtop.alerts.model import Alert


def suppress(cands: list[Candidate]) -> list[Candidate]:
    """Drop a broad alert when a feature alert of the same rule explains most of it."""
    keep: list[Candidate] = []
    for c in cands:
        keys = {cl.key for cl in c.scope}
        broad = not c.scope or keys == {"workload"}
        if broad and not c.rule.startswith("budget"):
            wl = c.scope[0].value if c.scope else None
            narrow = [
                o.delta
                for o in cands
                if o.rule == c.rule
                and {cl.key for cl in o.scope} == {"feature"}
                and (wl is None or o.workload in (None, wl))
            ]
            if narrow and max(narrow) >= 0.5 * c.delta:
                continue
        keep.append(c)
    return keep


#: Scope dimensions of one tenant: their alerts are filed under a broader alert of the same
#: incident, never the other way round.
NARROW_DIMS = frozenset({"customer", "user", "correlation_id"})
#: Which alert of one scope is the root: a fixed order, not the dollars each rule's own window
#: explains (a feature's band and its burn rate explain nearly the same money, and a root that
#: flips between them with every pass is an incident that seems to change under the on-call).
RULE_ORDER = (
    "anomaly",
    "cost_per_call",
    "spike",
    "runaway",
    "new",
    "error_rate",
    "retry_rate",
    "fallback_rate",
    "cache_hit_drop",
    "margin",
)
#: New prompt or route versions first seen this close together are one deploy: their alerts are
#: one incident, whichever features they are on.
DEPLOY_WINDOW = 600.0
#: Cause dimensions that name a change someone shipped.
CHANGE_DIMS = frozenset({"prompt_version", "route_version"})


def severity_of(severities: Iterable[str]) -> str:
    """The one severity of an incident: critical if any alert filed under it is.

    Everything that shows an incident's severity (the toast, the alerts panel, `llmtop check`, a
    notification) takes it from here, through the root alert evaluate() gives this severity and
    alerts.state's Incident.severity, so no two of them can disagree."""
    return "critical" if "critical" in set(severities) else "warning"


def breadth(c: Candidate) -> int:
    """2 the whole org, 1 a feature, workload, team, model..., 0 one customer or user."""
    keys = {cl.key for cl in c.scope}
    return 2 if not keys else (0 if keys & NARROW_DIMS else 1)


def _rule_rank(rule: str) -> int:
    return len(RULE_ORDER) - RULE_ORDER.index(rule) if rule in RULE_ORDER else 0


def _top_dollars(why: Why) -> float:
    return round(max((e.dollars for e in why.causes), default=0.0), 2)


def root_rank(c: Candidate, why: Why, weight: float | None = None) -> tuple[int, float, int, str]:
    """Which alert of an incident is its root: the broadest scope (a deploy's feature, not the
    customers it reached), then the scope whose alerts explain the most dollars (`weight`: the
    most any alert of that scope explains, to the cent), then the rule (RULE_ORDER), then the
    fingerprint: a total order that depends on nothing but the alerts themselves."""
    w = _top_dollars(why) if weight is None else weight
    return (breadth(c), w, _rule_rank(c.rule), fingerprint(c.rule, c.scope_text))


def critical_roots(
    analysed: Sequence[tuple[Candidate, Why, bool]], parents: dict[str, str]
) -> set[str]:
    """Roots of the incidents holding a critical alert (severity_of): they page as critical, so
    the page carries the incident's severity and an alert of it turning critical escalates."""
    members: dict[str, list[str]] = {}
    for c, _why, _done in analysed:
        fp = fingerprint(c.rule, c.scope_text)
        members.setdefault(parents.get(fp, fp), []).append(c.severity)
    return {root for root, sevs in members.items() if severity_of(sevs) == "critical"}


class _Facts:
    """What relates one alert to others (see incidents)."""

    def __init__(self, c: Candidate, why: Why, done: bool) -> None:
        self.fp = fingerprint(c.rule, c.scope_text)
        self.scope = c.scope_text
        top3 = why.causes[:3]
        self.named = {(e.dim, e.value) for e in top3 if e.dim and e.value is not None}
        first = why.causes[0] if done and why.causes else None
        self.top = (first.dim, first.value) if first and first.dim and first.value else None
        self.own = (c.scope[0].key, c.scope[0].value) if len(c.scope) == 1 else None
        self.changes = {(d, v) for d, v in self.named if d in CHANGE_DIMS}
        self.deploys = sorted(e.at for e in top3 if e.kind == "version" and e.at is not None)

    def related(self, o: _Facts) -> bool:
        return (
            self.scope == o.scope
            or (o.own is not None and o.own in self.named)
            or (self.own is not None and self.own in o.named)
            or (self.top is not None and self.top == o.top)
            or bool(self.changes & o.changes)
            or any(abs(a - b) <= DEPLOY_WINDOW for a in self.deploys for b in o.deploys)
        )


def _policy(rule: str) -> bool:
    """A rule that watches a limit someone set (budgets, plans), not a change in the traffic."""
    return rule.startswith("budget") or rule == "margin"


def incidents(analysed: Sequence[tuple[Candidate, Why, bool]]) -> dict[str, str]:
    """Fingerprint -> fingerprint of its incident's root, for alerts that are not roots.

    Two firing alerts are one incident when they watch the same scope (a feature's band and its
    burn rate), when one's likely causes name the other's scope ("feature=search +$40" on a
    customer's alert), when their top causes are the same tag value, when their causes name the
    same prompt or route version (one change, on any number of features), or when the new
    versions behind them appeared within DEPLOY_WINDOW of each other (one deploy). Only evidence
    of a change names a value: "largest share" (what spends, when nothing changed) ties nobody
    together. An incident is every alert connected to another by these ties (so the answer does
    not depend on the order the alerts come in), filed flat under one root (root_rank). Budget
    and margin alerts stay on their own: a budget is a policy with its own owner, not a symptom,
    and two customers over their plans are two accounts to call, not one incident (they were
    filed under one another when the same prompt version served both).
    """
    items = sorted(
        ((_Facts(c, why, done), c, why) for c, why, done in analysed if not _policy(c.rule)),
        key=lambda t: t[0].fp,
    )  # fmt: skip
    up = list(range(len(items)))

    def find(i: int) -> int:
        while up[i] != i:
            up[i] = up[up[i]]
            i = up[i]
        return i

    for i, (fi, _, _) in enumerate(items):
        for j in range(i + 1, len(items)):
            if fi.related(items[j][0]):
                a, b = find(i), find(j)
                if a != b:
                    up[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(find(i), []).append(i)
    roots: dict[str, str] = {}
    for members in groups.values():
        weight: dict[str, float] = {}
        for i in members:
            f, _, why = items[i]
            weight[f.scope] = max(weight.get(f.scope, 0.0), _top_dollars(why))
        root = max(
            members, key=lambda i: root_rank(items[i][1], items[i][2], weight[items[i][0].scope])
        )
        for i in members:
            if i != root:
                roots[items[i][0].fp] = items[root][0].fp
    return roots


def grouped(alerts: Sequence[Alert]) -> list[tuple[Alert, list[Alert]]]:
    """The incidents of one evaluation: (root, the alerts filed under it), critical incidents
    first, then the longest-running, then by fingerprint; inside, critical first, then by rule
    and scope. A total order on the alerts' own fields: the same alerts give the same list, in
    any order they come (what `llmtop check` prints and the dashboard lists)."""
    by_fp = {a.fingerprint: a for a in alerts}
    under: dict[str, list[Alert]] = {}
    for a in alerts:
        root = a.parent if a.parent in by_fp else None
        if root is not None:
            under.setdefault(root, []).append(a)
    roots = [a for a in alerts if a.parent is None or a.parent not in by_fp]
    roots.sort(key=lambda a: (a.severity != "critical", a.since, a.fingerprint))
    return [
        (r, sorted(under.get(r.fingerprint, []), key=lambda a: (a.severity != "critical", a.rule, a.scope, a.fingerprint)))
        for r in roots
    ]  # fmt: skip
