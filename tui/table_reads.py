"""The table's extra reads, run in worker threads on the dashboard's connection: last week's
spend per group (the Δ column's `d` comparison), the time chart's series (`c`), and the values a
filter key takes (completion in the `/` prompt).

They take the dashboard's read lock like every other read on that connection; each is one
grouped read over rollups (`store.rows.group_totals`, `store.series`), not a scan of raw rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmtop.store.filters import Clause, label_matches
from llmtop.store.reader import MultiReader, Reader
from llmtop.store.rows import group_totals
from llmtop.store.series import SeriesSet, spend_series

WEEK = 7 * 86400.0
#: Values offered for completion per key (the biggest spenders first).
MAX_VALUES = 200


def readers_of(
    reader: Reader | MultiReader, clauses: Sequence[Clause]
) -> list[tuple[str, Reader, tuple[Clause, ...]]]:
    """(source label, file reader, clauses it answers) for one file or each file of a merged
    view that its `source` clauses keep."""
    if isinstance(reader, MultiReader):
        mine = [c for c in clauses if c.key == "source"]
        rest = tuple(c for c in clauses if c.key != "source")
        return [
            (label, r, rest)
            for label, r in zip(reader.labels, reader.readers, strict=True)
            if label_matches(label, mine)
        ]
    return [("", reader, tuple(clauses))]


def spend_by_group(
    reader: Reader | MultiReader, start: float, end: float, dim: str, clauses: Sequence[Clause]
) -> dict[str | None, float]:
    out: dict[str | None, float] = {}
    for label, r, mine in readers_of(reader, clauses):
        if dim == "source":  # grouped by file: each file's total
            out[label] = r.spend_between(start, end, mine)
            continue
        for g in group_totals(r, start, end, dim, mine):
            out[g.key] = out.get(g.key, 0.0) + g.spend_usd
    return out


def last_week(
    reader: Reader | MultiReader, start: float, end: float, dim: str, clauses: Sequence[Clause]
) -> dict[str | None, float]:
    """Spend per value of `dim` over the same window one week earlier."""
    return spend_by_group(reader, start - WEEK, end - WEEK, dim, clauses)


def values_of(reader: Reader | MultiReader, start: float, end: float, dim: str) -> list[str]:
    """The values `dim` took in the window, biggest spenders first (`(none)` for a missing tag)."""
    if dim == "source" and isinstance(reader, MultiReader):
        return list(reader.labels)
    spend = spend_by_group(reader, start, end, dim, ())
    ranked = sorted(spend, key=lambda k: -spend[k])[:MAX_VALUES]
    return ["(none)" if k is None else k for k in ranked]


def series(
    reader: Reader | MultiReader,
    start: float,
    end: float,
    dim: str,
    keys: Sequence[str | None],
    clauses: Sequence[Clause],
) -> SeriesSet:
    picked = readers_of(reader, clauses)
    if dim != "source":
        rest = picked[0][2] if picked else tuple(clauses)
        return spend_series([r for _, r, _ in picked], start, end, dim, keys, rest)
    # Grouped by file: each series is one file's total.
    parts = [
        spend_series([r], start, end, None, [label], mine)
        for label, r, mine in picked
        if label in keys
    ]
    base = spend_series([], start, end, None, [], ())
    return SeriesSet("source", start, end, base.width, base.bins, tuple(p.series[0] for p in parts))
