"""Batch insertion of CallRecords: the write half of the schema.

One transaction per batch; strings are interned through `strings` with a per-connection cache so
a steady stream of rows costs one executemany and almost no dictionary look-ups in SQL.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence

from llmtop.store.records import TAG_KEYS, CallRecord, pack_id
from llmtop.store.rollup import Rollup
from llmtop.store.schema import MICRO, MONEY_COLUMNS, NANO, STRING_COLUMNS, stored_name

_MAX_CACHE = 200_000


class Interner:
    """Maps strings to ids in the `strings` table, caching what it has seen."""

    def __init__(self) -> None:
        # None maps to None, so a row is built with plain `ids[value]` look-ups.
        self._ids: dict[str | None, int | None] = {None: None}

    def missing(self, values: Iterable[str]) -> set[str]:
        """The values without a cached id (the cache is emptied first when they would overflow
        it, so the caller looks all of them up)."""
        wanted = set(values)
        missing = {v for v in wanted if v not in self._ids}
        if missing and len(self._ids) + len(missing) > _MAX_CACHE:
            self.forget()
            missing = wanted  # the batch's cached values went with the cache
        return missing

    def learn(self, pairs: Iterable[tuple[int, str]]) -> None:
        """Cache (id, value) pairs read back from a `strings` table."""
        for sid, value in pairs:
            self._ids[value] = sid

    def ids_for(self, db: sqlite3.Connection, values: Iterable[str]) -> None:
        """Make sure every value has an id (call inside the batch's transaction)."""
        missing = self.missing(values)
        if not missing:
            return
        db.executemany("INSERT OR IGNORE INTO strings (value) VALUES (?)", [(v,) for v in missing])
        ordered = list(missing)
        for i in range(0, len(ordered), 500):
            chunk = ordered[i : i + 500]
            marks = ",".join("?" * len(chunk))
            self.learn(db.execute(f"SELECT id, value FROM strings WHERE value IN ({marks})", chunk))

    def forget(self) -> None:
        """Drop the cache: after a rolled-back transaction its new ids may not exist."""
        self._ids.clear()
        self._ids[None] = None

    def rows(self, db: sqlite3.Connection, records: Sequence[CallRecord]) -> list[tuple]:
        """The batch as INSERT_COLUMNS tuples. Optimistic: the strings of a steady stream are
        all cached, so the batch is only scanned for new ones when a look-up misses."""
        try:
            return [_row(r, self._ids) for r in records]
        except KeyError:
            self.ids_for(db, _strings_of(records))
            return [_row(r, self._ids) for r in records]


#: What `_row` tuples hold, in order (logical names: schema.stored_name maps them to disk).
INSERT_COLUMNS: tuple[str, ...] = (
    "started_at", "ended_at", "ttft_ms", "trace_id", "litellm_call_id", "call_type", "stream",
    "provider", "model", "response_model", "model_group", "original_model_group", "price_key",
    "status", "error_class", "error_code", "normalized_error", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "input_usd",
    "cache_read_usd", "cache_write_usd", "output_usd", "litellm_cost_usd", "unpriced",
    "unpriced_reason", "unmetered", "cache_hit", "saved_usd", "attempt", "is_retry",
    "is_fallback", "feature", "endpoint", "team", "environment", "workload", "customer", "user",
    "prompt_version", "route_version", "correlation_id", "tags_json", "price_version", "invalid",
)  # fmt: skip
# The statement actually run: logical values in, compact storage out (schema.m006); public for
# benchmarks/collector.py's raw-SQLite baseline.
INSERT_SQL = (
    f"INSERT INTO calls ({', '.join(stored_name(c) for c in INSERT_COLUMNS)}) VALUES ("
    + ", ".join(
        f"CAST(round(?{i} * {NANO}) AS INTEGER)"
        if c in MONEY_COLUMNS
        else (f"CAST(round((?{i} - ?1) * {MICRO}) AS INTEGER)" if c == "ended_at" else f"?{i}")
        for i, c in enumerate(INSERT_COLUMNS, start=1)
    )
    + ")"
)
assert INSERT_COLUMNS[0] == "started_at"


def _nano(x: float | None) -> float | None:
    """Money as it will read back: whole nano-dollars (so rollups and raw rows agree)."""
    return None if x is None else round(x * NANO) / NANO


#: Tag keys with an interned column (correlation ids are unique per request: stored as text).
_TAG_COLUMNS = tuple(k for k in TAG_KEYS if k != "correlation_id")
#: The other interned CallRecord fields.
_STRING_FIELDS = tuple(c for c in STRING_COLUMNS if c not in _TAG_COLUMNS)


def _strings_of(records: Sequence[CallRecord]) -> set[str]:
    out: set[str] = set()
    for r in records:
        for f in _STRING_FIELDS:
            v = getattr(r, f)
            if v is not None:
                out.add(v)
        for k in _TAG_COLUMNS:
            v = r.tags.get(k)
            if v is not None:
                out.add(v)
    return out


def _row(r: CallRecord, ids: dict[str | None, int | None]) -> tuple:
    g = ids.__getitem__
    t = r.tags
    return (
        r.started_at,
        None
        if r.ended_at is None
        else r.started_at + round((r.ended_at - r.started_at) * MICRO) / MICRO,
        r.ttft_ms,
        pack_id(r.trace_id),
        pack_id(r.litellm_call_id),
        g(r.call_type),
        int(r.stream),
        g(r.provider),
        g(r.model),
        g(r.response_model),
        g(r.model_group),
        g(r.original_model_group),
        g(r.price_key),
        0 if r.status == "success" else 1,
        g(r.error_class),
        g(r.error_code),
        g(r.normalized_error),
        r.input_tokens,
        r.output_tokens,
        r.cache_read_tokens,
        r.cache_write_tokens,
        r.reasoning_tokens,
        _nano(r.cost_usd),
        _nano(r.input_usd),
        _nano(r.cache_read_usd),
        _nano(r.cache_write_usd),
        _nano(r.output_usd),
        _nano(r.litellm_cost_usd),
        int(r.unpriced),
        g(r.unpriced_reason),
        int(r.unmetered),
        int(r.cache_hit),
        _nano(r.saved_usd),
        r.attempt,
        int(r.is_retry),
        int(r.is_fallback),
        g(t.get("feature")),
        g(t.get("endpoint")),
        g(t.get("team")),
        g(t.get("environment")),
        g(t.get("workload")),
        g(t.get("customer")),
        g(t.get("user")),
        g(t.get("prompt_version")),
        g(t.get("route_version")),
        t.get("correlation_id"),
        json.dumps(r.extra_tags, sort_keys=True, separators=(",", ":")) if r.extra_tags else None,
        g(r.price_version),
        g(r.invalid),
    )


def insert_batch(
    db: sqlite3.Connection,
    interner: Interner,
    records: Sequence[CallRecord],
    drops: Sequence[tuple[int, str]] = (),
    rollup: Rollup | None = None,
    pid: int | None = None,
) -> None:
    """Write records (and pending drop counts) in one IMMEDIATE transaction, or nothing at all.

    The rollups are folded in the same transaction: they can never disagree with the rows.
    `pid`: the process the drops are filed under (default: this one).
    """
    rollup = rollup if rollup is not None else Rollup()
    db.execute("BEGIN IMMEDIATE")
    try:
        rows = interner.rows(db, records)
        db.executemany(INSERT_SQL, rows)
        rollup.apply(db, rows, INSERT_COLUMNS)
        if drops:
            now = time.time()
            pid = pid or os.getpid()
            db.executemany(
                "INSERT INTO drops (at, count, reason, pid) VALUES (?, ?, ?, ?)",
                [(now, n, reason, pid) for n, reason in drops],
            )
        db.execute("COMMIT")
    except BaseException:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        interner.forget()
        rollup.forget()
        raise
