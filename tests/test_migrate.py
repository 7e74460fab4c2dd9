"""Migrations: append-only, recorded, idempotent; older files upgrade, newer ones are refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from llmtop.store.db import DatabaseError
from llmtop.store.maintenance import prune
from llmtop.store.reader import Reader
from llmtop.store.schema import MIGRATIONS, applied_migrations, migrate, open_db

from tests.builders import payload, write


def test_fresh_database_gets_every_migration(llmtop_db: Path) -> None:
    conn = open_db(llmtop_db)
    assert applied_migrations(conn) == [m.__name__ for m in MIGRATIONS]
    assert migrate(conn) == []  # idempotent
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_older_database_migrates_without_losing_rows(llmtop_db: Path) -> None:
    conn = sqlite3.connect(llmtop_db, isolation_level=None)
    conn.execute(
        "CREATE TABLE _llmtop_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    MIGRATIONS[0](conn)  # a file written by the very first release: calls only, no view
    conn.execute("INSERT INTO _llmtop_migrations VALUES (?, 0)", (MIGRATIONS[0].__name__,))
    conn.execute("INSERT INTO calls (started_at, input_tokens, cost_usd) VALUES (100.0, 7, 0.5)")
    conn.close()
    conn = open_db(llmtop_db)
    assert conn.execute("SELECT input_tokens, cost_usd, status FROM requests").fetchall() == [
        (7, 0.5, "success")
    ]
    conn.close()


def test_newer_database_is_refused_with_a_clear_message(llmtop_db: Path) -> None:
    conn = open_db(llmtop_db)
    conn.execute("INSERT INTO _llmtop_migrations VALUES ('m999_from_the_future', 0)")
    conn.close()
    with pytest.raises(DatabaseError, match="newer llmtop.*m999_from_the_future"):
        open_db(llmtop_db)
    with pytest.raises(DatabaseError, match="newer llmtop"):
        Reader(llmtop_db)


def test_corrupt_file_gives_one_precise_error(llmtop_db: Path) -> None:
    llmtop_db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseError, match="not a valid llmtop/SQLite database"):
        Reader(llmtop_db)
    assert llmtop_db.read_bytes().startswith(b"this is not")  # nothing overwritten


def test_prune_keeps_rows_younger_than_retention(llmtop_db: Path) -> None:
    now = 1_800_000_000.0
    write(llmtop_db, [payload(start=now - d * 86400 - 1) for d in (1, 10, 89, 91, 120)])
    assert prune(llmtop_db, older_than=90 * 86400, now=now, batch=1) == 2
    conn = open_db(llmtop_db)
    left = sorted(round((now - r[0]) / 86400) for r in conn.execute("SELECT started_at FROM calls"))
    assert left == [1, 10, 89]
    conn.close()


def test_compact_calls_migration_keeps_every_row_and_value(tmp_path) -> None:
    """m006 rebuilds `calls` with integer money and latency: ids, values (to 1e-9 USD and 1 µs)
    and the view's columns survive, and new rows read back the same way."""
    import sqlite3 as sq

    import pytest
    from llmtop.store.schema import MIGRATIONS, open_db

    p = tmp_path / "m005.db"
    conn = sq.connect(p)
    conn.execute("CREATE TABLE _llmtop_migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    old = [m for m in MIGRATIONS if m.__name__ < "m006"]
    for fn in old:
        fn(conn)
        conn.execute("INSERT INTO _llmtop_migrations VALUES (?, 0)", (fn.__name__,))
    rows = [
        (7, 100.25, 100.25 + 1.234567, 0.001234567891, 0.0009, None),
        (9, 200.0, None, None, None, 0.25),
    ]
    conn.executemany(
        "INSERT INTO calls (id, started_at, ended_at, cost_usd, input_usd, saved_usd)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    conn.close()
    db = open_db(p)
    got = db.execute(
        "SELECT id, started_at, ended_at, cost_usd, input_usd, saved_usd FROM requests ORDER BY id"
    ).fetchall()
    assert [g[0] for g in got] == [7, 9]
    for g, r in zip(got, rows, strict=True):
        for a, b, tol in zip(g[1:], r[1:], (0, 1e-6, 1e-9, 1e-9, 1e-9), strict=True):
            assert (a is None) == (b is None)
            if a is not None:
                assert a == pytest.approx(b, abs=tol)
    cols = {r[1]: r[6] for r in db.execute("PRAGMA table_xinfo(calls)")}
    assert cols["cost_usd"] != 0 and cols["cost_nusd"] == 0  # generated vs stored
    db.close()


@pytest.mark.parametrize("cmd", ["prune", "vacuum", "check", "export", "report"])
def test_someone_elses_sqlite_file_is_refused_and_left_as_it_was(
    tmp_path: Path, cmd: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """prune and vacuum migrated a foreign SQLite file (llmtop's tables written into it, "pruned
    0 rows", exit 0), and the read commands called it "written by an older llmtop" and advised
    opening it, which would do the same. One line, exit 3 (2 for the review commands' bad
    input), the file untouched."""
    from llmtop.cli import main

    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    code = main([cmd, "--db", str(other)])
    err = capsys.readouterr().err
    assert code in (2, 3) and err.count("\n") == 1, (code, err)
    assert "not an llmtop database" in err and "older llmtop" not in err, err
    assert other.read_bytes() == before
    with pytest.raises(DatabaseError, match="not an llmtop database"):
        open_db(other)
