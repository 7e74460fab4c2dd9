"""The read side's SQL, spoken to PostgreSQL: one translation of SQLite's dialect, in one place.

Why translate rather than write every query twice: the engine, the alert queries and the export
build their SQL from the same pieces (filters.where_sql, the engine's sums), and two copies of
each would drift. The differences that matter are few and mechanical, and each rule below names
the one construct it rewrites; statements are translated once and cached. What has no
mechanical twin is given one in the schema instead (store/pg_schema.py: `total()`,
`json_extract`).

| SQLite                                   | PostgreSQL                                         |
|------------------------------------------|----------------------------------------------------|
| `?` placeholders                         | `%s` (and a literal `%` doubled)                   |
| `x GLOB ?`                               | `x ~ %s`, the glob turned into an anchored regex   |
| `coalesce(<bool expr>, 0)`               | `coalesce(<bool expr>, false)`                     |
| `1` as a whole condition                 | `true`                                             |
| `CAST(t / w AS INTEGER)` (truncates)     | `floor(t / w)::bigint` (a cast would round)        |
| `calls NOT INDEXED ... id > ?`: rows     | rows of batches committed after seq ?              |
|   written after row id ? (one writer)    |   (many writers: store/pg_schema.py)               |
| `PRAGMA table_info/table_xinfo(t)`       | information_schema.columns, types named as SQLite's |
| `sqlite_master WHERE type = 'table'`     | information_schema.tables                          |
| `strftime('%Y-%m-%d', t, 'unixepoch')`   | `to_char(to_timestamp(t) AT TIME ZONE 'UTC', ...)` |
| `, NULL AS x` (a column of no type)      | `, NULL::integer AS x` (PostgreSQL would make it text; |
|                                          |   llmtop's are numeric flags)                      |
| `n + (a != b)` (a comparison as 0/1)     | `n + (a != b)::int`                                |
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_LATE_C = "c.batch IN (SELECT b.batch FROM batches b WHERE b.seq > %s)"
_LATE = "batch IN (SELECT b.batch FROM batches b WHERE b.seq > %s)"
_BOOL_ONE = re.compile(
    r"(?<=\bAND )1(?=\s*(?:\)|$|GROUP\b|ORDER\b|LIMIT\b|AND\b))|(?<=\bWHERE )1(?=\s*(?:\)|$|GROUP\b|ORDER\b|LIMIT\b|AND\b))"
)
_PAREN_ONE = re.compile(r"\(1\)")
_COALESCE = re.compile(r"(coalesce\([^?]*? (?:=|GLOB) \?), 0\)")
_CAST = re.compile(r"CAST\(([^()]+?) / (\d+) AS INTEGER\)")
_PRAGMA = re.compile(r"^\s*PRAGMA table_x?info\((\w+)\)\s*$", re.I)
_ARITH_BOOL = re.compile(r"(?<=[-+*] )\(([\w.]+ (?:!=|<>|=|<=|>=|<|>) [\w.?]+)\)(?!::)")
_STRFTIME = re.compile(r"strftime\('%Y-%m-%d', ([^,()]+), 'unixepoch'\)")

_TABLE_INFO = """SELECT ordinal_position - 1, column_name,
    CASE WHEN data_type IN ('double precision', 'real', 'numeric') THEN 'REAL'
         WHEN data_type IN ('bigint', 'integer', 'smallint') THEN 'INTEGER'
         WHEN data_type = 'bytea' THEN 'BLOB' ELSE 'TEXT' END,
    CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END, column_default, 0
    FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position"""


@lru_cache(maxsize=2048)
def translate(sql: str) -> tuple[str, tuple[int, ...], tuple[Any, ...]]:
    """SQLite SQL → (PostgreSQL SQL, indices of parameters that are GLOB patterns, parameters
    the translation itself adds before the caller's)."""
    m = _PRAGMA.match(sql)
    if m:
        return _TABLE_INFO, (), (m.group(1),)
    s = _STRFTIME.sub(r"to_char(to_timestamp(\1) AT TIME ZONE 'UTC', 'YYYY-MM-DD')", sql)
    s = s.replace("%", "%%")
    s = s.replace(
        "sqlite_master WHERE type = 'table' AND name =",
        "information_schema.tables WHERE table_schema = current_schema() AND table_name =",
    )
    s = _COALESCE.sub(r"\1, false)", s)
    s = re.sub(r"(?<=, )NULL AS (?=\w)", "NULL::integer AS ", s)
    s = _CAST.sub(r"(floor(\1 / \2)::bigint)", s)
    s = _ARITH_BOOL.sub(r"(\1)::int", s)
    if "NOT INDEXED" in s:
        s = s.replace("calls c NOT INDEXED", "calls c").replace("calls NOT INDEXED", "calls")
        s = s.replace("c.id > ?", _LATE_C.replace("%s", "?"))
        s = re.sub(r"(?<![.\w])id > \?", _LATE.replace("%s", "?"), s)
    s = _PAREN_ONE.sub("(true)", s)
    s = _BOOL_ONE.sub("true", s)
    globs = []
    out = []
    n = 0
    for i, part in enumerate(s.split("?")):
        if i:
            out.append("%s")
            n += 1
        if part.endswith(" GLOB "):
            part = part[: -len(" GLOB ")] + " ~ "
            globs.append(n)
        out.append(part)
    return "".join(out), tuple(globs), ()


def glob_regex(pattern: str) -> str:
    """SQLite's GLOB (case-sensitive `*`, `?`, `[...]`, `[^...]`) as an anchored POSIX regex."""
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            j = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] in "^]" else i + 1)
            if j < 0:
                out.append(r"\[")
            else:
                body = pattern[i + 1 : j]
                neg = body.startswith("^")
                body = body[1:] if neg else body
                body = body.replace("\\", "\\\\")
                out.append("[" + ("^" if neg else "") + body + "]")
                i = j
        else:
            out.append(re.escape(ch) if not ch.isalnum() else ch)
        i += 1
    out.append("$")
    return "".join(out)


def params_for(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """Translate a statement and adapt its parameters (globs become regexes)."""
    pg, globs, extra = translate(sql)
    ps = [*extra, *params]
    for i in globs:
        if ps[i] is not None:
            ps[i] = glob_regex(str(ps[i]))
    return pg, ps
