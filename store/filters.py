"""The filter language: `team=search model~gpt-4o* customer="acme inc" status=failure`.

One grammar for the dashboard's `/` prompt, drill-down paths, alert scopes and rules files, so a
scope an alert names can be typed back in (or jumped to) and mean the same rows. Values with
spaces or quotes are quoted (`format_value`); `(none)` or an empty value matches rows without the
tag.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmtop.store.schema import STRING_COLUMNS

WINDOWS: dict[str, float] = {
    "5m": 300.0,
    "1h": 3600.0,
    "6h": 6 * 3600.0,
    "24h": 86400.0,
    "7d": 7 * 86400.0,
    "30d": 30 * 86400.0,
}

#: Dimensions with their own column; any other name is looked up in `tags_json`.
STRING_DIMENSIONS: tuple[str, ...] = (
    "feature",
    "endpoint",
    "model",
    "provider",
    "team",
    "environment",
    "workload",
    "customer",
    "user",
    "prompt_version",
    "route_version",
    "error_class",
    "model_group",
    "response_model",
    "call_type",
)
#: `attempt` (1 for the first try, 2 for the first retry...) groups and filters as text: `attempt=2`.
DIMENSIONS: tuple[str, ...] = (*STRING_DIMENSIONS, "status", "attempt")
NONE_LABEL = "(none)"
OPERATORS: tuple[str, ...] = ("=", "!=", "~", "!~")


#: The last second a datetime can show (9999-12-31): a time past it is refused where it is typed,
#: not met as a traceback where a date is printed.
MAX_EPOCH = 253402300799.0
#: The longest window: ten years (and a bit). `99999999d` reached back before year 1.
MAX_WINDOW = 3660 * 86400.0


def parse_window(text: str) -> float:
    """'90s', '15m', '1h', '7d' → seconds; ValueError with the accepted forms otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not m:
        raise ValueError(
            f"bad window {text!r}: use a number and a unit, e.g. 5m, 1h, 6h, 24h, 7d, 30d"
        )
    n = float(m.group(1))
    if n <= 0:
        raise ValueError(f"bad window {text!r}: must be positive")
    w = n * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[m.group(2)]
    if w > MAX_WINDOW:
        raise ValueError(f"bad window {text!r}: at most {MAX_WINDOW / 86400:.0f}d (ten years)")
    return w


def format_window(seconds: float) -> str:
    if seconds == 86400:
        return "24h"  # as the window keys and the help name it
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


@dataclass(frozen=True)
class Clause:
    key: str
    op: str  # "=", "!=", "~" (glob), "!~"
    value: str | None  # None matches rows without the tag


_KEY = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_HEAD = re.compile(rf"^({_KEY})(!=|!~|=|~)")
_CLAUSE = re.compile(rf"^({_KEY})\s*(!=|!~|=|~)\s*(.*)$", re.S)
_BAD_TERM = "use key=value, key!=value, key~glob* or key!~glob*"


def _terms(text: str) -> list[tuple[str, bool]]:
    """Split on whitespace outside quotes: (raw term, quotes kept; whether it was closed)."""
    terms: list[tuple[str, bool]] = []
    cur, quote, escaped = "", None, False
    for ch in text.strip():
        if quote:
            cur += ch
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur += ch
        elif ch.isspace():
            if cur:
                terms.append((cur, True))
            cur = ""
        else:
            cur += ch
    if cur:
        terms.append((cur, quote is None))
    return terms


def _unquote(raw: str) -> tuple[str, bool]:
    """Quotes removed and `\\"`, `\\'`, `\\\\` unescaped inside them; whether any were quoted."""
    out, quote, escaped, quoted = "", None, False, False
    for ch in raw:
        if quote:
            if escaped:
                out += ch
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            else:
                out += ch
        elif ch in "\"'":
            quote, quoted = ch, True
        else:
            out += ch
    return out, quoted


def parse_filter(text: str) -> tuple[Clause, ...]:
    """`team=search model~gpt-4o* customer="acme inc" status=failure` → clauses (all must hold).

    ValueError names the offending term and the accepted forms.
    """
    out: list[Clause] = []
    for raw, closed in _terms(text):
        if not closed:
            raise ValueError(f"bad filter term {raw!r}: a quote is not closed")
        head = _HEAD.match(raw)
        if head is not None:
            key, op = head.group(1), head.group(2)
            value, quoted = _unquote(raw[head.end() :])
            if not quoted and value[:1] in ("=", "~"):
                # `team==search` read as the value "=search", which matches nothing: an empty
                # answer with exit 0. A value that really starts with = is quoted: team="=x".
                fix = (
                    f"{key}~{value[1:]}"
                    if op == "=" and value[0] == "~"
                    else f"{key}{op}{value.lstrip('=~')}"
                )
                raise ValueError(
                    f"bad filter term {raw!r}: one operator (=, !=, ~, !~), e.g. {fix}"
                )
        else:  # the whole term quoted, e.g. "team=a b"
            m = _CLAUSE.match(_unquote(raw)[0])
            if not m:
                raise ValueError(f"bad filter term {_unquote(raw)[0]!r}: {_BAD_TERM}")
            key, op, value, quoted = m.group(1), m.group(2), m.group(3), False
        if key == "status" and value not in ("success", "failure"):
            raise ValueError("status takes success or failure")
        none = value == "" or (value == NONE_LABEL and not quoted)
        out.append(Clause(key, op, None if none else value))
    return tuple(out)


_PLAIN = re.compile(r"[^\s\"'\\]+")


def format_value(value: str | None) -> str:
    """A clause value as typed in a filter: quoted when it holds spaces, quotes or backslashes
    (or is empty or literally `(none)`), so `parse_filter` reads back the same value."""
    if value is None:
        return NONE_LABEL
    if value != NONE_LABEL and _PLAIN.fullmatch(value) and value[0] not in "=~":
        return value
    quote = "'" if '"' in value and "'" not in value else '"'
    body = value.replace("\\", "\\\\")
    if quote == '"':
        body = body.replace('"', '\\"')
    return f"{quote}{body}{quote}"


def format_clause(c: Clause) -> str:
    return f"{c.key}{c.op}{format_value(c.value)}"


def format_filter(clauses: Sequence[Clause]) -> str:
    return " ".join(format_clause(c) for c in clauses)


def check_keys(clauses: Sequence[Clause], known: Sequence[str]) -> None:
    """ValueError for a clause whose key is no known dimension, with the nearest name: a typo
    (`custmer=acme`) would otherwise match no row and show an empty table without a word."""
    for c in clauses:
        if c.key in known or c.key in STRING_COLUMNS:  # a column is a dimension, rows or not
            continue
        close = difflib.get_close_matches(c.key, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(known)}"
        raise ValueError(f"no dimension {c.key}{hint}")


def dim_expr(dim: str) -> tuple[str, bool]:
    """SQL for a dimension over `calls AS c`, and whether it is an id into `strings`."""
    if dim in STRING_DIMENSIONS or dim in STRING_COLUMNS:
        return f"c.{dim}", True
    if dim == "status":
        return "CASE c.status WHEN 0 THEN 'success' ELSE 'failure' END", False
    if dim == "attempt":
        return "CAST(c.attempt AS TEXT)", False
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", dim):
        raise ValueError(f"bad dimension {dim!r}")
    return f"json_extract(c.tags_json, '$.\"{dim}\"')", False


def where_sql(clauses: Sequence[Clause]) -> tuple[str, list[Any]]:
    """The clauses as one SQL condition over `calls AS c` (`1` for none) and its parameters.

    Interned columns compare through `strings` (`IN (SELECT id ...)`), so the values never need
    to be looked up first; a negated clause also keeps rows without the tag.
    """
    sql: list[str] = []
    params: list[Any] = []
    for c in clauses:
        expr, interned = dim_expr(c.key)
        neg = c.op.startswith("!")
        if c.value is None:
            sql.append(f"{expr} IS {'NOT ' if neg else ''}NULL")
            continue
        op = "GLOB" if "~" in c.op else "="
        if interned:
            sub = f"SELECT id FROM strings WHERE value {op} ?"
            sql.append(
                f"({expr} {'NOT ' if neg else ''}IN ({sub}){' OR ' + expr + ' IS NULL' if neg else ''})"
            )
        else:
            sql.append(f"({'NOT ' if neg else ''}coalesce({expr} {op} ?, 0))")
        params.append(c.value)
    return (" AND ".join(sql) or "1"), params


def label_matches(label: str, clauses: Sequence[Clause]) -> bool:
    """Whether a label (a database's source name) passes every clause, in Python."""
    for c in clauses:
        hit = fnmatch.fnmatchcase(label, c.value or "") if "~" in c.op else label == c.value
        if hit == c.op.startswith("!"):
            return False
    return True
