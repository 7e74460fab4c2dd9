"""Incidents: which firing alerts are one problem, and which of them pages.

An incident is a tree of alerts with one root: the broadest scope (a deploy's feature, not the
customers it reached). Only roots page; the rest are filed under them (Alert.parent).
"""

from __future__ import annotations

from collections.abc import Sequence

from llmtop.alerts.detectors import Candidate, fingerprint
from llmtop.alerts.explain import Why


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


def breadth(c: Candidate) -> int:
    """2 the whole org, 1 a feature, workload, team, model..., 0 one customer or user."""
    keys = {cl.key for cl in c.scope}
    return 2 if not keys else (0 if keys & NARROW_DIMS else 1)


def root_rank(c: Candidate, why: Why) -> tuple[int, bool, float, str]:
    """Which alert of an incident is its root: the broadest scope (a deploy's feature, not the
    customers it reached), then critical, then the most dollars explained (a total order: the
    fingerprint breaks ties). The root pages with the incident's severity (critical_roots)."""
    top = max((e.dollars for e in why.causes), default=0.0)
    return (breadth(c), c.severity == "critical", top, fingerprint(c.rule, c.scope_text))


def critical_roots(
    analysed: Sequence[tuple[Candidate, Why, bool]], parents: dict[str, str]
) -> set[str]:
    """Roots of the incidents holding a critical alert: they page as critical, so the page
    carries the incident's severity and an alert of it turning critical pages again."""
    roots: set[str] = set()
    for c, _why, _done in analysed:
        if c.severity == "critical":
            fp = fingerprint(c.rule, c.scope_text)
            roots.add(parents.get(fp, fp))
    return roots


def incidents(analysed: Sequence[tuple[Candidate, Why, bool]]) -> dict[str, str]:
    """Fingerprint -> fingerprint of the root it is filed under, for alerts that are not roots.

    Two firing alerts are one incident when they watch the same scope (a feature's band and its
    burn rate), when one's likely causes name the other's scope ("feature=search +$40" on a
    customer's alert), or when their top causes are the same tag value (both "new prompt_version
    v7"). Only evidence of a change names a value: "largest share" (what spends, when nothing
    changed) ties nobody together. Each alert is filed under its highest-ranked relative, and that one under its own, so
    an incident is a tree with one root that pages. Budget alerts stay on their own: a budget is
    a policy with its own owner, not a symptom.
    """
    info = []
    for c, why, done in analysed:
        if c.rule.startswith("budget"):
            continue
        named = {(e.dim, e.value) for e in why.causes[:3] if e.dim and e.value is not None}
        first = why.causes[0] if done and why.causes else None
        top = (first.dim, first.value) if first and first.dim and first.value else None
        own = (c.scope[0].key, c.scope[0].value) if len(c.scope) == 1 else None
        info.append(
            (fingerprint(c.rule, c.scope_text), c.scope, own, named, top, root_rank(c, why))
        )
    parent: dict[str, tuple[tuple[int, bool, float, str], str]] = {}
    for fp, scope, own, named, top, rank in info:
        for pfp, pscope, pown, pnamed, ptop, prank in info:
            if prank <= rank:
                continue
            related = (
                pscope == scope
                or (pown is not None and pown in named)
                or (own is not None and own in pnamed)
                or (top is not None and top == ptop)
            )
            if related and (fp not in parent or prank > parent[fp][0]):
                parent[fp] = (prank, pfp)
    roots: dict[str, str] = {}
    for fp in parent:
        root = fp
        while root in parent:  # ranks strictly rise along the chain: it ends
            root = parent[root][1]
        roots[fp] = root
    return roots
