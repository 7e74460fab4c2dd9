"""Naming and opening a PostgreSQL store: the `postgresql://` twin of store/db.py.

Why a URL object rather than a Path: every command resolves its `--db`/`LLMTOP_DB` through
`resolve_db_path`, and a Path would fold `postgresql://host/db` into a relative file name. A
`PgUrl` is a str whose text is the URL *without its password* (so any message that prints it
is safe), and which answers the few Path questions callers ask (`exists`, `name`, `stem`).

psycopg is imported only when a connection is made: one-host users never need it.
"""

from __future__ import annotations

import logging
import math
import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from llmtop.store.db import DatabaseError

SCHEMES = ("postgresql", "postgres")
#: Install hint shown when psycopg is missing.
INSTALL_HINT = "pip install 'llmtop[postgres]'"


class PgUrl(str):
    """A PostgreSQL URL; str() is the URL without its password, `.url` the real one."""

    url: str

    def __new__(cls, url: str) -> PgUrl:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            cred, host = netloc.rsplit("@", 1)
            user = cred.split(":", 1)[0]
            netloc = f"{user}@{host}"
        shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        self = super().__new__(cls, shown)
        self.url = url
        return self

    @property
    def dbname(self) -> str:
        return urlsplit(self.url).path.lstrip("/") or "postgres"

    # The Path questions callers ask of a database location.
    @property
    def name(self) -> str:
        return self.dbname

    @property
    def stem(self) -> str:
        return self.dbname

    def exists(self) -> bool:
        """The server decides: a connection attempt says whether the database is there."""
        return True

    def stat(self) -> os.stat_result:
        """Not a file: callers that key caches on a file's inode (and treat OSError as "no
        file") key them on the URL alone."""
        raise OSError(f"{self}: a PostgreSQL database, not a file")

    def resolve(self) -> PgUrl:
        return self

    def expanduser(self) -> PgUrl:
        return self


def is_pg_url(text: object) -> bool:
    if isinstance(text, PgUrl):
        return True
    if not isinstance(text, str):
        return False
    return bool(re.match(r"^(postgresql|postgres)://", text.strip(), re.I))


def one_line(target: object, exc: BaseException) -> str:
    """A driver error as the one sentence a user sees (psycopg's are several lines, and a
    connection error may quote the URL with its password)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = re.sub(r"(postgres(?:ql)?://[^:/@\s]*):[^@\s]*@", r"\1@", first)
    first = re.sub(r"password=\S+", "password=***", first)
    low = first.lower()
    hint = ""
    if "connection refused" in low or "could not connect" in low or "no such file" in low:
        hint = "; is the PostgreSQL server running and reachable?"
    elif "does not exist" in low and "database" in low:
        hint = "; create it first (createdb) or check the URL"
    elif "password authentication failed" in low:
        hint = "; check the user and password in the URL (or ~/.pgpass)"
    return f"{target}: {first}{hint}"


def driver() -> Any:
    """The psycopg module, or one line saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise DatabaseError(f"postgresql:// databases need psycopg: {INSTALL_HINT}") from None
    return psycopg


CONNECT_TIMEOUT = 5.0
_said: set[str] = set()


def env_number(name: str, default: float) -> float:
    """A positive number from the environment, else `default`, with one line saying so (once
    per value): `LLMTOP_PG_CONNECT_TIMEOUT=abc` raised in the collector's writer thread, and the
    calls it held were lost at exit."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        v = float(raw)
    except ValueError:
        v = math.nan
    if math.isfinite(v) and v > 0:
        return v
    if f"{name}={raw}" not in _said:
        _said.add(f"{name}={raw}")
        logging.getLogger("llmtop").error(
            "llmtop: %s=%s: expected a positive number; using %g", name, raw, default
        )
    return default


def connect(target: PgUrl, *, autocommit: bool = False, timeout: float | None = None) -> Any:
    """One connection with the settings every llmtop process relies on.

    numeric results are read as float: `sum()` over a bigint returns numeric in PostgreSQL, and
    the read side adds sums up as floats exactly as it does SQLite's.
    """
    psycopg = driver()
    from psycopg.types.numeric import FloatLoader

    t = timeout if timeout is not None else env_number("LLMTOP_PG_CONNECT_TIMEOUT", CONNECT_TIMEOUT)
    try:
        conn = psycopg.connect(
            target.url,
            autocommit=autocommit,
            connect_timeout=max(1, int(t)),
            application_name="llmtop",
        )
    except psycopg.Error as exc:
        raise DatabaseError(one_line(target, exc)) from None
    conn.adapters.register_loader("numeric", FloatLoader)
    return conn
