"""Spend over time for a few values of one dimension: the dashboard's time chart (`c`).

Each series is a sliding-window tracker binned by time, filtered to its value, so a 30-day chart
at 10M rows reads day and hour rollups, not the raw rows. `bin_width` is the sparkline's: a
size the rollup buckets divide.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from llmtop.store.engine import Spec, Tracker
from llmtop.store.filters import Clause, where_sql
from llmtop.store.reader import Reader
from llmtop.store.rollup import F_SPEND
from llmtop.store.snapshot import spark_width


@dataclass(frozen=True)
class Series:
    key: str | None
    #: Spend in each bin, oldest first; the bins start at `SeriesSet.bins`.
    spend: tuple[float, ...]


@dataclass(frozen=True)
class SeriesSet:
    dimension: str
    start: float
    end: float
    width: int
    bins: tuple[int, ...]
    series: tuple[Series, ...]


def bin_width(window: float, buckets: int = 40) -> int:
    return spark_width(window, buckets)


def spend_series(
    readers: Sequence[Reader],
    start: float,
    end: float,
    dim: str | None,
    keys: Sequence[str | None],
    clauses: Sequence[Clause] = (),
    buckets: int = 40,
) -> SeriesSet:
    """Spend per time bin of each value in `keys` of `dim` over [start, end), summed over
    `readers` (one file, or every file of a merged view). `dim` None: one series, the total
    of the rows the clauses keep, named by `keys[0]`."""
    width = bin_width(end - start, buckets)
    b0 = int(start // width) * width
    bins = tuple(range(b0, math.ceil(end / width) * width, width))
    out = []
    for key in keys:
        mine = (*clauses, Clause(dim, "=", key)) if dim is not None else tuple(clauses)
        where, params = where_sql(mine)
        spec = Spec(
            where=where,
            params=tuple(params),
            keys=frozenset(c.key for c in mine),
            width=width,
            fields=(F_SPEND,),
        )
        per_bin: dict[int, float] = {}
        for reader in readers:
            groups = Tracker(spec).update(reader.source(), start, end, 0, time.time())
            for k, agg in groups.items():
                b = int(k[0] if isinstance(k, tuple) else k)
                per_bin[b] = per_bin.get(b, 0.0) + agg.v[F_SPEND]
        out.append(Series(key, tuple(per_bin.get(b, 0.0) for b in bins)))
    return SeriesSet(dim or "", start, end, width, bins, tuple(out))
