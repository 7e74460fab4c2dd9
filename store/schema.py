"""Schema and migrations: the only module that knows the table layout.

Migrations are an append-only list of small functions, each recorded by name in `_llmtop_migrations`
once applied (the pattern of simonw/llm's migrations.py). Never edit or reorder one that has
shipped: add a new one. A database that records a migration this code does not know was written by
a newer llmtop and is refused rather than half-understood.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from llmtop.store.db import DatabaseError, connect, explain
from llmtop.store.records import TAG_KEYS

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []

#: Columns of `calls` that hold an id into `strings` rather than the text itself.
STRING_COLUMNS: tuple[str, ...] = (
    "call_type",
    "provider",
    "model",
    "response_model",
    "model_group",
    "original_model_group",
    "price_key",
    "error_class",
    "error_code",
    "normalized_error",
    *(k for k in TAG_KEYS if k != "correlation_id"),
    "unpriced_reason",
    "price_version",
    "invalid",
)


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_calls(db: sqlite3.Connection) -> None:
    # Repeated strings (models, tags, versions) live once in `strings`; rows hold small ints.
    db.execute("CREATE TABLE strings (id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE)")
    db.execute(
        """
        CREATE TABLE calls (
            id INTEGER PRIMARY KEY,
            started_at REAL NOT NULL,
            ended_at REAL,
            ttft_ms REAL,
            trace_id TEXT,
            litellm_call_id TEXT,
            call_type INTEGER,
            stream INTEGER NOT NULL DEFAULT 0,
            provider INTEGER,
            model INTEGER,
            response_model INTEGER,
            model_group INTEGER,
            original_model_group INTEGER,
            price_key INTEGER,
            status INTEGER NOT NULL DEFAULT 0,
            error_class INTEGER,
            error_code INTEGER,
            normalized_error INTEGER,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL,
            input_usd REAL,
            cache_read_usd REAL,
            cache_write_usd REAL,
            output_usd REAL,
            litellm_cost_usd REAL,
            unpriced INTEGER NOT NULL DEFAULT 0,
            unpriced_reason INTEGER,
            unmetered INTEGER NOT NULL DEFAULT 0,
            cache_hit INTEGER NOT NULL DEFAULT 0,
            saved_usd REAL,
            attempt INTEGER NOT NULL DEFAULT 1,
            is_retry INTEGER NOT NULL DEFAULT 0,
            is_fallback INTEGER NOT NULL DEFAULT 0,
            feature INTEGER,
            endpoint INTEGER,
            team INTEGER,
            environment INTEGER,
            workload INTEGER,
            customer INTEGER,
            user INTEGER,
            prompt_version INTEGER,
            route_version INTEGER,
            correlation_id TEXT,
            tags_json TEXT,
            price_version INTEGER
        )
        """
    )
    db.execute("CREATE INDEX calls_started_at ON calls(started_at)")
    # Events the collector could not write (disk full, read-only file, long lock), counted so the
    # dashboard can say so instead of silently under-reporting spend.
    db.execute(
        "CREATE TABLE drops (id INTEGER PRIMARY KEY, at REAL NOT NULL, count INTEGER NOT NULL,"
        " reason TEXT NOT NULL, pid INTEGER)"
    )


@migration
def m002_requests_view(db: sqlite3.Connection) -> None:
    db.execute(REQUESTS_VIEW_SQL)


@migration
def m003_alerts(db: sqlite3.Connection) -> None:
    # Alert state is shared by every llmtop that opens the file: an ack in one is an ack in all,
    # and a restart does not page again for an incident it already raised.
    db.execute(
        """
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            fingerprint TEXT NOT NULL UNIQUE,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            scope TEXT NOT NULL,
            title TEXT NOT NULL,
            cause TEXT,
            owner TEXT,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'open',
            snoozed_until REAL,
            details_json TEXT
        )
        """
    )


@migration
def m004_rollups(db: sqlite3.Connection) -> None:
    # Per-minute/hour/day aggregates kept by the writer in the same transaction as the rows, so
    # the dashboard never re-scans history (store/rollup.py says why three cubes). Existing rows
    # are folded in here, once.
    from llmtop.store.rollup import create_tables, rebuild

    create_tables(db)
    rebuild(db)


@migration
def m005_packed_ids(db: sqlite3.Connection) -> None:
    # Call and trace ids that are canonical UUIDs are stored as 16-byte blobs from now on; the
    # view shows both forms as the same text.
    db.execute("DROP VIEW IF EXISTS requests")
    db.execute(REQUESTS_VIEW_SQL)


#: Money columns stored as integer nano-dollars (`<name>` minus `_usd`, plus `_nusd`), read back
#: through generated columns under their usual names.
MONEY_COLUMNS: tuple[str, ...] = (
    "cost_usd",
    "input_usd",
    "cache_read_usd",
    "cache_write_usd",
    "output_usd",
    "litellm_cost_usd",
    "saved_usd",
)
NANO = 1e9  # money unit on disk: 1e-9 USD
MICRO = 1e6  # latency unit on disk: 1 µs


def stored_name(col: str) -> str:
    if col in MONEY_COLUMNS:
        return col[: -len("_usd")] + "_nusd"
    if col == "ended_at":
        return "latency_us"
    return col


@migration
def m006_compact_calls(db: sqlite3.Connection) -> None:
    # Bytes per row: a REAL is 8 bytes, a small integer 1-4. Money is stored as integer
    # nano-dollars and the end time as a latency in µs; generated (virtual, never stored)
    # columns give them back under their old names, so every query and the view read as before.
    # The table is rebuilt once, rows and ids kept.
    cols = [r[1] for r in db.execute("PRAGMA table_xinfo(calls)")]
    decl = {r[1]: (r[2], r[3], r[4]) for r in db.execute("PRAGMA table_xinfo(calls)")}
    parts, select, stored = [], [], []
    for c in cols:
        typ, notnull, default = decl[c]
        if c == "id":
            parts.append("id INTEGER PRIMARY KEY")
        elif c in MONEY_COLUMNS:
            parts.append(f"{stored_name(c)} INTEGER")
            select.append(f"CAST(round({c} * {NANO}) AS INTEGER)")
            stored.append(stored_name(c))
            continue
        elif c == "ended_at":
            parts.append("latency_us INTEGER")
            select.append(f"CAST(round((ended_at - started_at) * {MICRO}) AS INTEGER)")
            stored.append("latency_us")
            continue
        else:
            extra = (" NOT NULL" if notnull else "") + (
                f" DEFAULT {default}" if default is not None else ""
            )
            parts.append(f"{c} {typ}{extra}")
        select.append(c)
        stored.append(c)
    parts.append(f"ended_at REAL GENERATED ALWAYS AS (started_at + latency_us / {MICRO}) VIRTUAL")
    parts += [
        f"{c} REAL GENERATED ALWAYS AS ({stored_name(c)} / {NANO}) VIRTUAL" for c in MONEY_COLUMNS
    ]
    db.execute("DROP VIEW IF EXISTS requests")
    db.execute(f"CREATE TABLE calls_new ({', '.join(parts)})")
    db.execute(
        f"INSERT INTO calls_new ({', '.join(stored)}) SELECT {', '.join(select)} FROM calls"
        " ORDER BY id"
    )
    db.execute("DROP TABLE calls")
    db.execute("ALTER TABLE calls_new RENAME TO calls")
    db.execute("CREATE INDEX calls_started_at ON calls(started_at)")
    db.execute(REQUESTS_VIEW_SQL)


def _uuid(col: str) -> str:
    h = f"lower(hex(c.{col}))"
    parts = " || '-' || ".join(
        f"substr({h}, {a}, {n})" for a, n in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
    )
    return f"CASE WHEN typeof(c.{col}) = 'blob' THEN {parts} ELSE c.{col} END AS {col}"


def _sv(col: str) -> str:
    return f"(SELECT value FROM strings WHERE id = c.{col}) AS {col}"


REQUESTS_VIEW_SQL = f"""
CREATE VIEW requests AS
SELECT
    c.id,
    {_uuid("trace_id")},
    {_uuid("litellm_call_id")},
    c.started_at,
    c.ended_at,
    (c.ended_at - c.started_at) * 1000.0 AS latency_ms,
    c.ttft_ms,
    {_sv("call_type")},
    c.stream,
    {_sv("provider")},
    {_sv("model")},
    {_sv("response_model")},
    {_sv("model_group")},
    CASE c.status WHEN 0 THEN 'success' ELSE 'failure' END AS status,
    {_sv("error_class")},
    {_sv("error_code")},
    {_sv("normalized_error")},
    c.input_tokens,
    c.output_tokens,
    c.cache_read_tokens,
    c.cache_write_tokens,
    c.reasoning_tokens,
    c.cost_usd,
    c.input_usd,
    c.cache_read_usd,
    c.cache_write_usd,
    c.output_usd,
    c.litellm_cost_usd,
    c.unpriced,
    {_sv("unpriced_reason")},
    c.unmetered,
    c.cache_hit,
    c.saved_usd,
    c.attempt,
    c.is_retry,
    c.is_fallback,
    {_sv("original_model_group")},
    {_sv("price_key")},
    {_sv("feature")},
    {_sv("endpoint")},
    {_sv("team")},
    {_sv("environment")},
    {_sv("workload")},
    {_sv("customer")},
    {_sv("user")},
    {_sv("prompt_version")},
    {_sv("route_version")},
    c.correlation_id,
    c.tags_json,
    {_sv("price_version")}
FROM calls AS c
"""

#: The view from m007 on: the same columns plus `invalid` (why a value was out of range).
REQUESTS_VIEW_SQL_V2 = REQUESTS_VIEW_SQL.replace(
    "\nFROM calls AS c", f",\n    {_sv('invalid')}\nFROM calls AS c"
)
assert REQUESTS_VIEW_SQL_V2 != REQUESTS_VIEW_SQL


@migration
def m007_invalid(db: sqlite3.Connection) -> None:
    # Rows whose numbers were out of their physical range (or that the database refused until
    # repaired) say why; a partial index keeps the dashboard's count of them cheap at any size.
    db.execute("ALTER TABLE calls ADD COLUMN invalid INTEGER")
    db.execute("CREATE INDEX calls_invalid ON calls(started_at) WHERE invalid IS NOT NULL")
    db.execute("DROP VIEW IF EXISTS requests")
    db.execute(REQUESTS_VIEW_SQL_V2)


@migration
def m008_outcomes(db: sqlite3.Connection) -> None:
    # A task is the calls sharing a correlation_id; the app says whether it succeeded
    # (collector.record_outcome). The latest outcome of a correlation_id wins; rows are few (one
    # per task), so the index on correlation_id is what a report's join needs.
    db.execute(
        "CREATE TABLE outcomes (id INTEGER PRIMARY KEY, correlation_id TEXT NOT NULL,"
        " at REAL NOT NULL, success INTEGER NOT NULL, tags_json TEXT)"
    )
    db.execute("CREATE INDEX outcomes_correlation ON outcomes(correlation_id)")


#: The incidents alert state attaches to (m009): an ack or snooze holds for the incident while its
#: root changes and alerts join it; `paged` is the severity last announced.
ALERT_INCIDENTS_SQL = """
CREATE TABLE alert_incidents (
    id TEXT PRIMARY KEY,
    root TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open',
    snoozed_until REAL,
    opened REAL NOT NULL,
    last_seen REAL NOT NULL,
    since REAL NOT NULL,
    paged TEXT,
    escalated INTEGER NOT NULL DEFAULT 0,
    resolved_at REAL,
    details_json TEXT
)
"""


@migration
def m009_alert_incidents(db: sqlite3.Connection) -> None:
    # Ack and snooze attach to an incident, not to one alert: when a broader alert joins and
    # becomes the root, or an alert escalates, the incident (and its ack) is the same one.
    db.execute("ALTER TABLE alerts ADD COLUMN incident TEXT")
    db.execute(ALERT_INCIDENTS_SQL)


#: A task's latest outcome read from the index alone (m010, p005): (correlation_id, id) orders
#: a task's outcomes newest first and `success` rides along, so the report's one lookup per task
#: never visits the table (a week at 10M rows: 1.8M lookups, 1.4 s -> 0.95 s).
OUTCOMES_LATEST_SQL = (
    "CREATE INDEX IF NOT EXISTS outcomes_latest ON outcomes(correlation_id, id, success)"
)
#: Retention deletes outcomes by `at` in small batches, under the writers' lock: without an index
#: each step would read the whole table once fewer than a batch are left to delete.
OUTCOMES_AT_SQL = "CREATE INDEX IF NOT EXISTS outcomes_at ON outcomes(at)"


@migration
def m010_outcomes_latest(db: sqlite3.Connection) -> None:
    db.execute("DROP INDEX IF EXISTS outcomes_correlation")  # a prefix of the new one
    db.execute(OUTCOMES_LATEST_SQL)
    db.execute(OUTCOMES_AT_SQL)


SCHEMA_VERSION = len(MIGRATIONS)


def _ensure_table(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS _llmtop_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )


def applied_migrations(db: sqlite3.Connection) -> list[str]:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='_llmtop_migrations'"
    ).fetchone()
    if not exists:
        return []
    return [r[0] for r in db.execute("SELECT name FROM _llmtop_migrations")]


def check_not_newer(db: sqlite3.Connection, path: object = "database") -> None:
    known = {m.__name__ for m in MIGRATIONS}
    unknown = sorted(set(applied_migrations(db)) - known)
    if unknown:
        raise DatabaseError(
            f"{path}: written by a newer llmtop (schema has {', '.join(unknown)}, this llmtop "
            f"knows up to {MIGRATIONS[-1].__name__}); upgrade llmtop to read it"
        )


def migrate(db: sqlite3.Connection, path: object = "database") -> list[str]:
    """Bring the schema up to date; returns the names applied now.

    Each migration runs in its own IMMEDIATE transaction and the applied list is re-read inside
    it, so several processes opening a fresh file at once apply each migration exactly once.
    """
    try:
        _ensure_table(db)
        check_not_newer(db, path)
        done_now: list[str] = []
        for fn in MIGRATIONS:
            if fn.__name__ in applied_migrations(db):
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                if fn.__name__ not in applied_migrations(db):
                    fn(db)
                    db.execute(
                        "INSERT INTO _llmtop_migrations (name, applied_at) VALUES (?, ?)",
                        (fn.__name__, time.time()),
                    )
                    done_now.append(fn.__name__)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return done_now
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(explain(Path(str(path)), exc)) from exc


def open_db(path: str | Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open read-write and migrate: what the collector and the TUI both do first."""
    conn = connect(path, check_same_thread=check_same_thread)
    try:
        migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn
