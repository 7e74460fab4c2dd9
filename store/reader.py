"""Reading a database: `Reader` (one file) and `MultiReader` (several, merged, read-only).

A Reader owns one read connection and the sliding trackers that keep the dashboard's windows
warm between refreshes; it is used from one worker thread at a time. Its `query`, `strings` and
`source` are the seam the alert engine's reads (store/alert_queries.py) go through.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llmtop.store.db import DatabaseError, connect, explain
from llmtop.store.engine import Source, Spec, Tracker, total
from llmtop.store.filters import DIMENSIONS, Clause, dim_expr, label_matches, where_sql
from llmtop.store.pg_db import PgUrl, is_pg_url
from llmtop.store.records import pack_id, unpack_id
from llmtop.store.rollup import F_SPEND, Agg
from llmtop.store.schema import STRING_COLUMNS, applied_migrations, check_not_newer, migrate
from llmtop.store.snapshot import Partial, Savings, assemble, empty_partial, view_trackers
from llmtop.store.views import RequestDetail, RequestRow, Snapshot

#: Views whose trackers stay warm besides the current one (a tracker set is the size of what
#: it shows: a few hundred groups and their histograms).
WARM_VIEWS = 8


class Reader:
    """One read connection and the queries over it (used from a single worker thread at a time)."""

    #: Figures this source cannot give, to show as unavailable rather than 0 (a LiteLLM proxy's
    #: own database lacks llmtop's pricing, attempts, drops...: store/pg_spendlogs.py).
    unavailable: frozenset[str] = frozenset()

    def __new__(cls, path: Any = None, *args: Any, **kwargs: Any) -> Reader:
        # A postgresql:// URL (store.db.resolve_db_path's PgUrl) is read by the Postgres twin,
        # so every caller of Reader(path) reads a shared store unchanged.
        if cls is Reader and is_pg_url(path):
            from llmtop.store.pg_spendlogs import reader_class

            # llmtop's own tables (PgReader), or a LiteLLM proxy's spend logs, read-only.
            return super().__new__(reader_class(path))
        return super().__new__(cls)

    def __init__(
        self, path: str | Path, *, readonly: bool = False, savings: Savings | None = None
    ) -> None:
        """`savings` prices prompt-cache reads for snapshots (see store.snapshot.Savings)."""
        self.path = Path(path)
        self.savings = savings
        try:
            if readonly:
                self.conn = connect(self.path, readonly=True, check_same_thread=False)
                check_not_newer(self.conn, self.path)
                if "m004_rollups" not in applied_migrations(self.conn):
                    self.conn.close()
                    raise DatabaseError(
                        f"{self.path}: written by an older llmtop; open it once on its own"
                        f" (llmtop --db {self.path}) to upgrade it, then merge it read-only"
                    )
            else:
                self.conn = connect(self.path, check_same_thread=False)
                migrate(self.conn, self.path)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(explain(self.path, exc)) from exc

        self._src: Source | None = None
        self._view: tuple[Any, ...] | None = None
        self._trackers: dict[str, Tracker] = {}
        self._views: dict[Any, dict[str, Tracker]] = {}

    def close(self) -> None:
        self.conn.close()

    def interrupt(self) -> None:
        """Stop the statement running on this reader from another thread (it raises there);
        returns at once. Nothing running: nothing happens."""
        self.conn.interrupt()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of one statement; a database problem becomes one DatabaseError sentence."""
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(explain(self.path, exc)) from exc

    def chunks(
        self, sql: str, params: Sequence[Any] = (), size: int = 20_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of one statement in lists of `size`: a big read never becomes one list."""
        try:
            cur = self.conn.execute(sql, params)
            while chunk := cur.fetchmany(size):
                yield chunk
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(explain(self.path, exc)) from exc

    @contextmanager
    def read_transaction(self) -> Iterator[None]:
        """One snapshot of the file for every read inside (rows, rollups and max id agree);
        nested uses join the outer one."""
        if self.conn.in_transaction:
            yield
            return
        self.query("BEGIN")
        try:
            yield
        finally:
            self.query("COMMIT")

    def max_id(self) -> int:
        return self.query("SELECT coalesce(max(id), 0) FROM calls")[0][0]

    def wait_for_change(self, timeout: float) -> bool:
        """Block up to `timeout` s until rows were added (True) or not. A file is polled
        (the dashboard stats the file and its WAL instead: tui/reading.py); the Postgres reader
        LISTENs, and the dashboard waits on that."""
        start = self.max_id()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            if self.max_id() != start:
                return True
        return False

    def string(self, sid: int | None) -> str | None:
        if sid is None:
            return None
        r = self.query("SELECT value FROM strings WHERE id = ?", (sid,))
        return r[0][0] if r else None

    def strings(self, ids: set[int]) -> dict[int, str]:
        """Interned ids → their text, in chunks the SQL variable limit allows."""
        out: dict[int, str] = {}
        ids_l = [i for i in ids if i is not None]
        for i in range(0, len(ids_l), 500):
            chunk = ids_l[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self.query(f"SELECT id, value FROM strings WHERE id IN ({marks})", chunk))
        return out

    def spend_between(self, start: float, end: float, clauses: Sequence[Clause] = ()) -> float:
        """Spend over any range, from rollups where they fit (a month-to-date budget check reads
        a few hundred rollup rows, not a month of calls)."""
        where, params = where_sql(clauses)
        spec = Spec(where=where, params=tuple(params), keys=frozenset(c.key for c in clauses))
        groups = Tracker(spec).update(self.source(), start, end, 0, time.time())
        return total(groups).v[F_SPEND]

    def dropped(self) -> int:
        return self.query("SELECT coalesce(sum(count), 0) FROM drops")[0][0]

    def invalid(self, start: float, end: float, clauses: Sequence[Clause] = ()) -> int:
        """Rows in a range whose values were out of range or repaired: few, and read through
        the partial index `calls_invalid`, so this costs next to nothing at any size."""
        where, params = where_sql(clauses)
        try:
            return self.query(
                "SELECT count(*) FROM calls AS c WHERE c.invalid IS NOT NULL"
                f" AND c.started_at >= ? AND c.started_at < ? AND {where}",
                (start, end, *params),
            )[0][0]
        except (sqlite3.OperationalError, DatabaseError) as exc:
            if "invalid" in str(exc):  # a file from before m007, opened read-only: no column
                return 0
            raise

    def dimensions(self) -> tuple[str, ...]:
        """Built-in dimensions plus any extra tag key seen in recent rows."""
        keys: set[str] = set()
        # The newest few thousand rows by rowid: a range on the primary key, never a table scan.
        for (tj,) in self.query(
            "SELECT tags_json FROM calls WHERE id > (SELECT coalesce(max(id), 0) - 5000 FROM calls)"
            " AND tags_json IS NOT NULL"
        ):
            try:
                keys.update(json.loads(tj))
            except (ValueError, TypeError):
                continue
        return (*DIMENSIONS, *sorted(k for k in keys if k not in DIMENSIONS))

    def dimension_problem(
        self, key: str, *, typo_only: bool = False, extra: Sequence[str] = ()
    ) -> str | None:
        """Why `key` names no dimension (`no dimension custmer; did you mean customer?`), or None.

        Known: the built-in dimensions and the tags of recent rows; a key neither names is looked
        for once in every row (a tag only older rows carry passes). `typo_only` passes a key close
        to no known name without that scan: a rules file may name a tag its traffic has not sent
        yet, but `featrue` is a typo whose rule would never fire. `extra`: more names that are
        right here (a rule's `all`).
        """
        known = (*self.dimensions(), *extra)
        if key in known or key in STRING_COLUMNS:  # a column: `invalid!=(none)` on a clean file
            return None
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        if typo_only and not close:
            return None
        try:
            expr, _ = dim_expr(key)
            rows = self.query(f"SELECT 1 FROM calls c WHERE {expr} IS NOT NULL LIMIT 1")
        except ValueError as exc:
            return str(exc)
        except Exception:  # noqa: BLE001 - a backend that cannot look: do not refuse
            rows = [(1,)]
        if rows:
            return None
        hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(known)}"
        return f"no dimension {key}{hint}"

    # --- the dashboard snapshot ---
    def source(self) -> Source:
        """This file as the sliding-window engine's source (store/engine.py)."""
        if self._src is None:
            self._src = Source(self.query, self.strings, dim_expr)
        return self._src

    def partial(
        self,
        *,
        now: float,
        window: float,
        group_by: str = "feature",
        clauses: Sequence[Clause] = (),
        buckets: int = 30,
        source: str | None = None,
        warm: bool = True,
    ) -> Partial:
        """This database's share of a snapshot: mergeable aggregates, kept warm between calls.

        Everything is read in one transaction, so the rows, rollups and max id agree.
        `warm=False` (a guess read ahead: a drill, another grouping) reads a view not kept warm
        with trackers of its own and keeps none of them, so the guesses never push the windows
        of the view on screen out of the warm set (their refreshes would read cold again).
        """
        view = (group_by, tuple(clauses), window, buckets)
        if self._view == view:
            t = self._trackers
        elif not warm and view not in self._views:
            t = view_trackers(group_by, clauses, window, buckets)
        else:
            # The last few views stay warm: flipping 1h → 30d → 1h slides instead of re-reading
            # (the dashboard reads every window of the view on screen ahead: WARM_VIEWS > 6).
            self._views[self._view] = self._trackers
            self._trackers = t = self._views.pop(view, None) or view_trackers(
                group_by, clauses, window, buckets
            )
            self._view = view
            while len(self._views) > WARM_VIEWS:
                self._views.pop(next(iter(self._views)))
        src = self.source()
        local = datetime.fromtimestamp(now)
        day0 = local.replace(hour=0, minute=0, second=0, microsecond=0)
        month0 = day0.replace(day=1)
        with self.read_transaction():
            max_id = self.max_id()
            first = self.query("SELECT min(started_at) FROM calls")[0][0]
            with src.rows_from(first):

                def upd(name: str, a: float, b: float) -> dict[Any, Agg]:
                    return t[name].update(src, a, b, max_id, now)

                main = upd("main", now - window, now)
                prev = upd("prev", now - 2 * window, now - window)
                if group_by == "source":
                    main = {(source,): total(main)} if main else {}
                    prev = {(source,): total(prev)} if prev else {}
                base: list[float | None] = []
                for d in range(1, 8):
                    s0 = now - d * 86400 - 3600
                    if first is None or first > s0:
                        base.append(None)
                        continue
                    base.append(total(upd(f"base{d}", s0, now - d * 86400)).v[F_SPEND])
                part = Partial(
                    totals=total(upd("totals", now - window, now)),
                    main=main,
                    prev=prev,
                    errors=upd("errors", now - window, now),
                    price=upd("price", now - window, now),
                    spark=upd("spark", now - window, now),
                    recent=total(upd("recent", now - min(300.0, window), now)),
                    base=tuple(base),
                    today=total(upd("today", day0.timestamp(), now)).v[F_SPEND],
                    month=total(upd("month", month0.timestamp(), now)).v[F_SPEND],
                    dropped=self.dropped(),
                    max_id=max_id,
                    dimensions=self.dimensions(),
                    invalid=self.invalid(now - window, now + 1e-6, clauses),
                    first=first,
                )
        return part

    def snapshot(
        self,
        *,
        now: float,
        window: float,
        group_by: str = "feature",
        clauses: Sequence[Clause] = (),
        buckets: int = 30,
        warm: bool = True,
    ) -> Snapshot:
        part = self.partial(
            now=now,
            window=window,
            group_by=group_by,
            clauses=clauses,
            buckets=buckets,
            source=self.path.stem,
            warm=warm,
        )
        snap = assemble(
            [part],
            now=now,
            window=window,
            group_by=group_by,
            clauses=clauses,
            buckets=buckets,
            savings=self.savings,
        )
        if self.unavailable:
            snap = dataclasses.replace(snap, unavailable=self.unavailable)
        return snap

    # --- requests and detail ---
    def requests(
        self, *, now: float, window: float, clauses: Sequence[Clause] = (), limit: int = 500
    ) -> tuple[RequestRow, ...]:
        where, params = where_sql(clauses)
        rs = self.query(
            f"""SELECT c.id, c.started_at, c.model, c.feature, c.status, c.error_class, c.input_tokens,
            c.output_tokens, c.cache_read_tokens, c.cost_usd, (c.ended_at - c.started_at) * 1000.0,
            c.attempt, c.trace_id, c.unpriced, c.unmetered
            FROM calls c WHERE c.started_at >= ? AND c.started_at < ? AND {where}
            ORDER BY c.started_at DESC, c.id DESC LIMIT ?""",
            (now - window, now, *params, limit),
        )
        return self._request_rows(rs)

    def _request_rows(self, rs: list[tuple[Any, ...]]) -> tuple[RequestRow, ...]:
        names = self.strings({r[2] for r in rs} | {r[3] for r in rs} | {r[5] for r in rs})
        return tuple(
            RequestRow(
                id=r[0],
                started_at=r[1],
                model=names.get(r[2]),
                feature=names.get(r[3]),
                status="success" if r[4] == 0 else "failure",
                error_class=names.get(r[5]),
                input_tokens=r[6],
                output_tokens=r[7],
                cache_read_tokens=r[8],
                cost_usd=r[9],
                latency_ms=r[10],
                attempt=r[11],
                trace_id=unpack_id(r[12]),
                unpriced=bool(r[13]),
                unmetered=bool(r[14]),
            )
            for r in rs
        )

    def detail(self, row_id: int, source: str = "") -> RequestDetail | None:
        cur = self.conn.execute("SELECT * FROM requests WHERE id = ?", (row_id,))
        row = cur.fetchone()
        if row is None:
            return None
        names = [d[0] for d in cur.description]
        fields = tuple(zip(names, row, strict=True))
        d = dict(fields)
        attempts: tuple[RequestRow, ...] = ()
        if d.get("trace_id"):
            rs = self.query(
                """SELECT c.id, c.started_at, c.model, c.feature, c.status, c.error_class, c.input_tokens,
                c.output_tokens, c.cache_read_tokens, c.cost_usd, (c.ended_at - c.started_at) * 1000.0,
                c.attempt, c.trace_id, c.unpriced, c.unmetered
                FROM calls c WHERE c.started_at BETWEEN ? AND ? AND c.trace_id = ? ORDER BY c.started_at, c.id""",
                (d["started_at"] - 3600, d["started_at"] + 3600, pack_id(d["trace_id"])),
            )
            attempts = self._request_rows(rs)
        return RequestDetail(fields=fields, attempts=attempts)


def source_labels(paths: Sequence[Path]) -> list[str]:
    """Short, distinct names for databases: the file stem (a store's database name), or
    parent/stem (host/name) when they collide."""
    stems = [p.stem for p in paths]
    out = []
    for p, stem in zip(paths, stems, strict=True):
        where = urlsplit(p.url).hostname if isinstance(p, PgUrl) else p.parent.name
        label = stem if stems.count(stem) == 1 else f"{where}/{stem}"
        while label in out:
            label += "'"
        out.append(label)
    return out


class MultiReader:
    """Several databases (hosts, services) read as one, read-only, with `source` as a dimension.

    Each file answers for itself with mergeable partials (its own string ids and row ids never
    leave it), and the partials are added up: the same code path as one file.
    """

    def __init__(self, paths: Sequence[str | Path], *, savings: Savings | None = None) -> None:
        # A postgresql:// URL stays one (Path() made it `postgresql:/host/db`: "no such
        # database" when a file and a store were merged).
        self.paths: list[Path] = [
            p if isinstance(p, PgUrl) else PgUrl(p) if is_pg_url(p) else Path(p)  # type: ignore[misc]
            for p in paths
        ]
        self.savings = savings
        self.labels = source_labels(self.paths)
        self.readers: list[Reader] = []
        try:
            for p in self.paths:
                self.readers.append(Reader(p, readonly=True))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for r in self.readers:
            r.close()

    def _pick(
        self, clauses: Sequence[Clause]
    ) -> tuple[list[tuple[str, Reader]], tuple[Clause, ...]]:
        mine = [c for c in clauses if c.key == "source"]
        rest = tuple(c for c in clauses if c.key != "source")
        chosen = [
            (label, r)
            for label, r in zip(self.labels, self.readers, strict=True)
            if label_matches(label, mine)
        ]
        return chosen, rest

    def snapshot(
        self,
        *,
        now: float,
        window: float,
        group_by: str = "feature",
        clauses: Sequence[Clause] = (),
        buckets: int = 30,
        warm: bool = True,
    ) -> Snapshot:
        chosen, rest = self._pick(clauses)
        parts = [
            r.partial(
                now=now,
                window=window,
                group_by=group_by,
                clauses=rest,
                buckets=buckets,
                source=label,
                warm=warm,
            )
            for label, r in chosen
        ]
        if not parts:  # a source filter that matches no file: an empty screen, not an error
            parts = [empty_partial()]
        snap = assemble(
            parts,
            now=now,
            window=window,
            group_by=group_by,
            clauses=clauses,
            buckets=buckets,
            savings=self.savings,
        )
        return dataclasses.replace(
            snap,
            dropped=sum(r.dropped() for r in self.readers),
            dimensions=(
                *snap.dimensions,
                *(("source",) if "source" not in snap.dimensions else ()),
            ),
            unavailable=frozenset().union(*(r.unavailable for r in self.readers)),
        )

    def requests(
        self, *, now: float, window: float, clauses: Sequence[Clause] = (), limit: int = 500
    ) -> tuple[RequestRow, ...]:
        chosen, rest = self._pick(clauses)
        rows = [
            dataclasses.replace(row, source=label)
            for label, r in chosen
            for row in r.requests(now=now, window=window, clauses=rest, limit=limit)
        ]
        rows.sort(key=lambda x: (-x.started_at, x.source, -x.id))
        return tuple(rows[:limit])

    def detail(self, row_id: int, source: str = "") -> RequestDetail | None:
        for label, r in zip(self.labels, self.readers, strict=True):
            if label == source:
                d = r.detail(row_id)
                if d is None:
                    return None
                return RequestDetail(
                    fields=(("source", label), *d.fields),
                    attempts=tuple(dataclasses.replace(a, source=label) for a in d.attempts),
                )
        return None
