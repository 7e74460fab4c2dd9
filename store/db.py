"""Locating and opening the llmtop database.

One function decides the path (argument, then `LLMTOP_DB`, then a per-user data directory) so the
collector, the TUI and the CLI can never disagree about which file they mean.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

from llmtop.store.histblob import merge_hist_blobs

log = logging.getLogger("llmtop.store")

APP_NAME = "llmtop"
DB_FILENAME = "llmtop.db"
BUSY_TIMEOUT_MS = 30_000


def busy_timeout_ms() -> int:
    """How long to wait for another process's write lock: `LLMTOP_BUSY_TIMEOUT_MS` or 30 s.

    Only the collector's background writer thread ever waits (readers never need the lock in
    WAL mode), and its queue keeps the app unaffected meanwhile; four writers saturating two
    cores were seen to starve one for over 5 s, so the default is generous.

    A knob because the right wait depends on the deployment (and tests need lock contention to
    fail fast); read at each connect so a process can change it before opening the database.
    """
    raw = os.environ.get("LLMTOP_BUSY_TIMEOUT_MS", "")
    try:
        value = int(raw)
    except ValueError:
        return BUSY_TIMEOUT_MS
    return value if value >= 0 else BUSY_TIMEOUT_MS


class DatabaseError(Exception):
    """A database problem explained in one sentence a user can act on."""


def data_dir() -> Path:
    """llmtop's per-user data directory (`~/.local/share/llmtop` on Linux)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def default_db_path() -> Path:
    """The per-user default: `$LLMTOP_DB`, else the platform's user data directory."""
    env = os.environ.get("LLMTOP_DB")
    if env:
        return Path(env).expanduser()
    return data_dir() / DB_FILENAME


def resolve_db_path(db: str | os.PathLike[str] | None) -> Path:
    """The database for an argument (or LLMTOP_DB, or the default): a SQLite file's Path, or a
    `postgresql://` URL as a store.pg_db.PgUrl (a str that prints without its password and
    answers `exists()`/`name`/`stem` like a Path); any other URL is refused with one line.

    Without the check, `mysql://host/db` would become a SQLite file under `./mysql:/host/` and
    every command would report success.
    """
    text = os.fspath(db) if db else os.environ.get("LLMTOP_DB", "")
    if "://" in text:
        from llmtop.store.pg_db import PgUrl, is_pg_url

        if is_pg_url(text):
            return PgUrl(text.strip())  # type: ignore[return-value]
        scheme, rest = text.split("://", 1)
        shown = f"{scheme}://{rest.rsplit('@', 1)[-1]}"  # never echo a password
        raise DatabaseError(
            f"{shown}: {scheme}:// databases are not supported; use a SQLite file path"
            " (LLMTOP_DB=/path/llmtop.db) or a postgresql:// URL"
        )
    return Path(db).expanduser() if db else default_db_path()


def ensure_private_dir(path: Path) -> None:
    """Create the database's directory owner-only: the file holds who spent what."""
    missing: list[Path] = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for d in reversed(missing):  # every directory we create, not just the last one
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:  # another process made it first
            continue
        os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask


def connect(
    path: str | os.PathLike[str],
    *,
    readonly: bool = False,
    create: bool = True,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """Open the database with the pragmas every llmtop process relies on.

    WAL lets one writer and many readers work at once; `busy_timeout` turns short lock waits from
    other writer processes into waits instead of `database is locked` errors. Read-only opens use a
    `mode=ro` URI so a viewer can never create or modify a file.
    """
    p = Path(path)
    busy = busy_timeout_ms()
    new = False
    if readonly:
        if not p.exists():
            raise DatabaseError(f"{p}: no such database (is the collector writing somewhere else?)")
        conn = _open_readonly(p, busy, check_same_thread)
    else:
        if not create and not p.exists():
            raise DatabaseError(f"{p}: no such database")
        check_path(p)
        ensure_private_dir(p)
        new = not p.exists()
        if new:
            # Create the file ourselves so it is 0600 from its first byte.
            fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        elif p.stat().st_size == 0 and not os.path.exists(f"{p}-wal"):
            # An empty file someone touched first: adopted, owner-only. (Never opened here: see
            # _HEADER_FDS for why a stray open/close of a database file is dangerous.)
            os.chmod(p, 0o600)
            new = True
        conn = sqlite3.connect(
            p,
            timeout=busy / 1000,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )
    try:
        conn.execute(f"PRAGMA busy_timeout={busy}")
        if not readonly and new:
            # Bigger pages pack ~170-byte rows tighter (3-4% less disk); only settable before the
            # first table exists.
            conn.execute("PRAGMA page_size=16384")
        if not new:
            check_ours(conn, p)  # before anything is written to it (WAL mode is a write)
        if not readonly:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        # Rollup upserts add histograms inside SQLite (see store/rollup.py).
        conn.create_function("llmtop_hist_merge", 2, merge_hist_blobs, deterministic=True)
    except DatabaseError:
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DatabaseError(explain(p, exc)) from exc
    return conn


def _open_readonly(p: Path, busy: int, check_same_thread: bool) -> sqlite3.Connection:
    """`mode=ro`, or on a read-only mount `immutable=1`: a WAL database read with `mode=ro`
    needs its -shm file, which SQLite cannot create on a read-only volume or backup copy, and
    check, report and export said "unable to open database file". Immutable tells SQLite that
    nobody writes the file, which a read-only mount guarantees; rows still in a -wal file are
    then not read, and one line says so."""

    def open_uri(flags: str) -> sqlite3.Connection:
        return sqlite3.connect(
            f"file:{p}?{flags}",
            uri=True,
            timeout=busy / 1000,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )

    conn = open_uri("mode=ro")
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError as exc:
        if "unable to open" not in str(exc) or not _read_only_volume(p.parent):
            return conn  # the caller's first query says what is wrong, as before
    conn.close()
    wal = Path(f"{p}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        log.warning(
            "llmtop: %s is on a read-only volume: read as it is, without the %d bytes of rows"
            " still in its -wal file",
            p,
            wal.stat().st_size,
        )
    return open_uri("mode=ro&immutable=1")


def _read_only_volume(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_ours(db: sqlite3.Connection, path: object = "database") -> None:
    """Refuse a SQLite file that holds tables but none of llmtop's: migrating it would write
    llmtop's tables into someone else's database (prune and vacuum did, and said "pruned 0
    rows"). An empty file, or one with llmtop's tables (any version), is ours."""
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    if names and "_llmtop_migrations" not in names and "calls" not in names:
        shown = ", ".join(sorted(names)[:5]) + (", …" if len(names) > 5 else "")
        raise DatabaseError(
            f"{path}: not an llmtop database (it holds tables llmtop did not make: {shown});"
            " point --db at an llmtop file"
        )


SQLITE_HEADER = b"SQLite format 3\x00"


def check_path(p: Path) -> None:
    """Refuse what is not ours to write before SQLite touches it.

    A dangling symlink would have SQLite create its target somewhere unexpected; a non-empty
    file without SQLite's header is someone else's data (and a stale `-wal` beside it can make
    SQLite accept it, then overwrite it at the next checkpoint).
    """
    if p.is_symlink() and not p.exists():
        raise DatabaseError(
            f"{p}: a symbolic link to {os.readlink(p)}, which does not exist; "
            "point it at a database or remove it"
        )
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DatabaseError(explain(p, exc)) from exc
    if not stat.S_ISREG(st.st_mode):  # a directory, a FIFO (opening one would block), a device
        raise DatabaseError(f"{p}: not a regular file, so not a database")
    head = read_header(p, st)
    if head and head != SQLITE_HEADER:
        raise DatabaseError(
            f"{p}: the file is not a valid llmtop/SQLite database (no SQLite header); "
            "move it aside to start a new one"
        )


#: One read-only descriptor per database file (device, inode) this process has checked, kept
#: open for good. Why never closed: closing *any* descriptor of a file drops every POSIX lock
#: the process holds on it, those of its SQLite connections included; another process closing
#: its last connection would then think it was alone and delete the WAL under ours.
_HEADER_FDS: dict[tuple[int, int], int] = {}
_HEADER_FDS_MAX = 256


def read_header(p: Path, st: os.stat_result) -> bytes:
    key = (st.st_dev, st.st_ino)
    fd = _HEADER_FDS.get(key)
    if fd is None:
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise DatabaseError(explain(p, exc)) from exc
        got = os.fstat(fd)
        if (got.st_dev, got.st_ino) != key or len(_HEADER_FDS) >= _HEADER_FDS_MAX:
            # Replaced between stat and open (or too many files): read, then keep it anyway
            # rather than close a descriptor SQLite's locks may depend on.
            pass
        _HEADER_FDS[(got.st_dev, got.st_ino)] = fd
    try:
        return os.pread(fd, len(SQLITE_HEADER), 0)
    except OSError as exc:
        raise DatabaseError(explain(p, exc)) from exc


def explain(path: Path, exc: BaseException) -> str:
    """Turn sqlite's terse errors into the one precise message the user sees."""
    msg = str(exc)
    low = msg.lower()
    if "not a database" in low or "malformed" in low:
        return f"{path}: the file is not a valid llmtop/SQLite database ({msg}); move it aside to start a new one"
    if "readonly" in low or "read-only" in low:
        return f"{path}: the database is read-only ({msg}); check the file's and directory's permissions"
    if "locked" in low or "busy" in low:
        return f"{path}: the database stayed locked by another process for over {busy_timeout_ms() / 1000:g}s ({msg})"
    if "disk" in low and "full" in low:
        return f"{path}: the disk is full ({msg})"
    if "unable to open" in low:
        return f"{path}: cannot open the database file ({msg}); check the path and permissions"
    return f"{path}: {msg}"
