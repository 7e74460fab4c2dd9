"""Running totals for the metrics exporters (`llmtop metrics`, the OTLP exporter).

Prometheus wants counters that only go up; the database's rows only ever get appended and old
ones pruned. So the totals are kept here and advanced by the rows past the last marker seen
(Reader.max_id: the largest row id in a file, the last committed batch's sequence on a
PostgreSQL store, where a smaller id can commit after a larger one): each scrape reads only the
new rows, a prune never makes a counter go down, and at 10M rows only the first scrape reads
everything. Both read through a Reader, so a file and a `postgresql://` store are one code path
(the marker's SQL is translated by store/pg_dialect.py). Label values come from the `requests`
view's columns; past `max_series` distinct label sets, new ones are summed under `(other)` so
totals stay exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llmtop.store.filters import NONE_LABEL, STRING_DIMENSIONS
from llmtop.store.reader import Reader

#: The rows committed after a marker (Reader.max_id), in either backend's terms: `NOT INDEXED`
#: with `c.id > ?` is the engine's "rows after the marker" (store/pg_dialect.py), a rowid range
#: in a file. Read inside the transaction that read the marker, so nothing is seen twice.
AFTER = "id IN (SELECT c.id FROM calls c NOT INDEXED WHERE c.id > ?)"

#: Columns of the `requests` view a metric may be labelled by.
METRIC_DIMENSIONS: tuple[str, ...] = (*STRING_DIMENSIONS, "status")
OTHER_LABEL = "(other)"
#: OpenTelemetry's advised buckets: gen_ai.client.operation.duration (s), token usage ({token}).
DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
TOKEN_KINDS: tuple[str, ...] = ("input", "output", "cache_read", "cache_write", "reasoning")


def check_dimensions(names: Sequence[str]) -> tuple[str, ...]:
    """The label dimensions, validated; ValueError naming the bad one and the choices."""
    out: list[str] = []
    for name in names:
        if name not in METRIC_DIMENSIONS:
            raise ValueError(f"unknown label {name!r}: choose from {', '.join(METRIC_DIMENSIONS)}")
        if name not in out:
            out.append(name)
    return tuple(out)


@dataclass
class Histogram:
    """Per-bucket counts (not cumulative), a sum and a count: what both exporters need."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)


@dataclass
class Series:
    """Every total for one label set, one status and one error type."""

    labels: tuple[str, ...]
    status: str
    error_type: str
    requests: int = 0
    cost_usd: float = 0.0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_KINDS, 0))
    retries: int = 0
    fallbacks: int = 0
    cache_hits: int = 0
    saved_usd: float = 0.0
    unpriced: int = 0
    unmetered: int = 0
    duration: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS))
    input_tokens: Histogram = field(default_factory=lambda: Histogram(TOKEN_BUCKETS))
    output_tokens: Histogram = field(default_factory=lambda: Histogram(TOKEN_BUCKETS))


def _bucket_sql(expr: str, bounds: Sequence[float]) -> list[str]:
    """One SUM per bucket (non-cumulative), then the +Inf bucket, sum and count of `expr`."""
    out = [f"SUM(CASE WHEN {expr} <= {bounds[0]!r} THEN 1 ELSE 0 END)"]
    out += [
        f"SUM(CASE WHEN {expr} > {lo!r} AND {expr} <= {hi!r} THEN 1 ELSE 0 END)"
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]
    out += [
        f"SUM(CASE WHEN {expr} > {bounds[-1]!r} THEN 1 ELSE 0 END)",
        f"TOTAL({expr})",
        f"COUNT({expr})",
    ]
    return out


def _add(h: Histogram, values: Sequence[float | int | None]) -> None:
    n = len(h.bounds) + 1
    for i in range(n):
        h.counts[i] += int(values[i] or 0)
    h.total += float(values[n] or 0.0)
    h.count += int(values[n + 1] or 0)


class MetricTotals:
    """Totals over every row written so far, advanced by `refresh()` (one thread at a time)."""

    def __init__(self, path: str | Path, dims: Sequence[str], max_series: int = 500) -> None:
        self.path = path
        self.dims = check_dimensions(dims)
        self.max_series = max(1, max_series)
        self.last_id = 0
        self.series: dict[tuple[tuple[str, ...], str, str], Series] = {}
        self._label_sets: set[tuple[str, ...]] = set()
        self._reader: Reader | None = None
        dur = _bucket_sql("latency_ms / 1000.0", DURATION_BUCKETS)
        tin = _bucket_sql("input_tokens", TOKEN_BUCKETS)
        tout = _bucket_sql("output_tokens", TOKEN_BUCKETS)
        cols = [f"COALESCE(NULLIF(CAST({d} AS TEXT), ''), '{NONE_LABEL}')" for d in self.dims]
        keys = [*cols, "status", "COALESCE(normalized_error, error_class, '')"]
        self._sql = (
            f"SELECT {', '.join(keys)}, COUNT(*), TOTAL(cost_usd), TOTAL(input_tokens),"
            " TOTAL(output_tokens), TOTAL(cache_read_tokens), TOTAL(cache_write_tokens),"
            " TOTAL(reasoning_tokens), TOTAL(is_retry), TOTAL(is_fallback), TOTAL(cache_hit),"
            " TOTAL(CASE WHEN cache_hit = 1 THEN saved_usd END), TOTAL(unpriced),"
            f" TOTAL(unmetered), {', '.join(dur + tin + tout)}"
            f" FROM requests WHERE {AFTER} GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}"
        )
        self._nkeys = len(keys)
        self._nb = len(DURATION_BUCKETS) + 3

    def _open(self) -> Reader:
        if self._reader is None:
            self._reader = Reader(self.path, readonly=True)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _slot(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        if labels in self._label_sets:
            return labels
        if len(self._label_sets) < self.max_series - 1:
            self._label_sets.add(labels)
            return labels
        return (OTHER_LABEL,) * len(labels)

    def refresh(self) -> list[Series]:
        """Add the rows written since the last call; return every series (stable objects).
        A database problem is DatabaseError (one sentence); the next call opens it again."""
        reader = self._open()
        try:
            with reader.read_transaction():
                hi = reader.max_id()
                if hi > self.last_id:
                    # Biggest groups first, so the label sets kept under the cap are the busy ones.
                    rows = sorted(
                        reader.query(self._sql, (self.last_id,)), key=lambda r: -r[self._nkeys]
                    )
                    for r in rows:
                        self._fold(r)
                    self.last_id = hi
        except Exception:
            self.close()
            raise
        return list(self.series.values())

    def _fold(self, r: tuple[object, ...]) -> None:
        k = self._nkeys
        labels = self._slot(tuple(str(v) for v in r[: k - 2]))
        status, error_type = str(r[k - 2]), str(r[k - 1])
        key = (labels, status, error_type)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series(labels, status, error_type)
        v = r[k:]
        s.requests += int(v[0])  # type: ignore[call-overload]
        s.cost_usd += float(v[1])  # type: ignore[arg-type]
        for i, kind in enumerate(TOKEN_KINDS):
            s.tokens[kind] += int(v[2 + i])  # type: ignore[call-overload]
        s.retries += int(v[7])  # type: ignore[call-overload]
        s.fallbacks += int(v[8])  # type: ignore[call-overload]
        s.cache_hits += int(v[9])  # type: ignore[call-overload]
        s.saved_usd += float(v[10])  # type: ignore[arg-type]
        s.unpriced += int(v[11])  # type: ignore[call-overload]
        s.unmetered += int(v[12])  # type: ignore[call-overload]
        b = 13
        _add(s.duration, v[b : b + self._nb])  # type: ignore[arg-type]
        _add(s.input_tokens, v[b + self._nb : b + 2 * self._nb])  # type: ignore[arg-type]
        _add(s.output_tokens, v[b + 2 * self._nb : b + 3 * self._nb])  # type: ignore[arg-type]


@dataclass(frozen=True)
class CallMeasure:
    """One row as the OTLP exporter records it (measurements, not pre-aggregated totals)."""

    id: int
    labels: tuple[str, ...]
    status: str
    error_type: str
    latency_s: float | None
    tokens: dict[str, int]
    cost_usd: float
    is_retry: bool
    is_fallback: bool
    cache_hit: bool
    saved_usd: float


def calls_after(
    reader: Reader, after: int, dims: Sequence[str]
) -> tuple[int, Iterator[list[CallMeasure]]]:
    """The marker now and the rows committed after `after`, oldest first, in chunks. Iterate
    the chunks inside `reader.read_transaction()`, where the marker was read."""
    cols = [f"COALESCE(NULLIF(CAST({d} AS TEXT), ''), '{NONE_LABEL}')" for d in dims]
    sql = (
        f"SELECT id, {', '.join([*cols, 'status'])}, COALESCE(normalized_error, error_class, ''),"
        " latency_ms, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,"
        " reasoning_tokens, COALESCE(cost_usd, 0), is_retry, is_fallback, cache_hit,"
        f" COALESCE(saved_usd, 0) FROM requests WHERE {AFTER} ORDER BY id"
    )
    n = len(dims)
    hi = reader.max_id()

    def measures() -> Iterator[list[CallMeasure]]:
        if hi <= after:
            return
        for chunk in reader.chunks(sql, (after,), size=5000):
            yield [_measure(r, n) for r in chunk]

    return hi, measures()


def _measure(r: tuple[object, ...], n: int) -> CallMeasure:
    lat = r[n + 3]
    return CallMeasure(
        id=int(r[0]),  # type: ignore[call-overload]
        labels=tuple(str(x) for x in r[1 : n + 1]),
        status=str(r[n + 1]),
        error_type=str(r[n + 2]),
        latency_s=None if lat is None else float(lat) / 1000.0,  # type: ignore[arg-type]
        tokens=dict(zip(TOKEN_KINDS, (int(x or 0) for x in r[n + 4 : n + 9]), strict=False)),  # type: ignore[call-overload]
        cost_usd=float(r[n + 9]),  # type: ignore[arg-type]
        is_retry=bool(r[n + 10]),
        is_fallback=bool(r[n + 11]),
        cache_hit=bool(r[n + 12]),
        saved_usd=float(r[n + 13]) if r[n + 12] else 0.0,  # type: ignore[arg-type]
    )
