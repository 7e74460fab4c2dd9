"""The rules file's validator: every value checked once, every problem as `file:line: key: problem`.

Why hand-written rather than a schema library: tomllib does not say which line a key came
from, so `Lines` scans the text for it, and the only thing a user needs from a bad rules file is
that one precise line.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtop.store.filters import Clause, parse_filter, parse_window

if TYPE_CHECKING:
    pass

from llmtop.alerts.rules_model import RulesError

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_\-]+)\s*=""")


class Lines:
    """Where each table and key sits in the file (tomllib keeps no positions)."""

    def __init__(self, text: str) -> None:
        self.keys: dict[tuple[str, ...], int] = {}
        self.total = max(1, text.count("\n") + 1)
        table: tuple[str, ...] = ()
        counts: dict[str, int] = {}
        for no, line in enumerate(text.splitlines(), 1):
            h = _HEADER.match(line)
            if h and not _KEY.match(line):
                name = h.group(2).strip().strip("\"'")
                if h.group(1) == "[[":
                    counts[name] = counts.get(name, 0) + 1
                    table = (name, str(counts[name] - 1))
                else:
                    table = tuple(p.strip().strip("\"'") for p in name.split("."))
                self.keys.setdefault(table, no)
                continue
            k = _KEY.match(line)
            if k:
                key = k.group(1)
                if key[0] in "\"'":
                    key = key[1:-1]
                self.keys.setdefault((*table, key), no)

    def line(self, *path: str) -> int:
        p = tuple(path)
        while p:
            if p in self.keys:
                return self.keys[p]
            p = p[:-1]
        return 1


# --- validation ---------------------------------------------------------------------------------

_DIMENSION = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class Checker:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = Lines(text)
        #: ("file:line: key", tag name) for every tag a group_by or scope names: checked against
        #: the database's tags once one is open (`typo_in_dimensions`), since tags are free-form.
        self.dimension_uses: list[tuple[str, str]] = []

    def where(self, where: tuple[str, ...]) -> str:
        """`file:line: key`, the prefix of every message about that key."""
        label = ".".join(where[:1] + tuple(f"[{p}]" if p.isdigit() else p for p in where[1:]))
        return f"{self.path}:{self.lines.line(*where)}: {label.replace('.[', '[')}"

    def fail(self, where: tuple[str, ...], problem: str) -> RulesError:
        return RulesError(f"{self.where(where)}: {problem}")

    def table(self, data: Any, where: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(where, f"must be a table, got {kind_of(data)}")
        for k in data:
            if k not in allowed:
                raise self.fail((*where, k), f"unknown key (allowed here: {', '.join(allowed)})")
        return data

    def number(
        self,
        d: dict[str, Any],
        where: tuple[str, ...],
        key: str,
        default: float,
        *,
        lo: float = 0.0,
        strict: bool = True,
        hi: float | None = None,
        unit: str = "",
    ) -> float:
        if key not in d:
            return default
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail((*where, key), f"must be a number{unit}, got {kind_of(v)} {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            # TOML accepts nan and inf; a threshold of nan never fires, silently.
            raise self.fail((*where, key), f"must be a finite number{unit}, got {v!r}")
        if (strict and v <= lo) or (not strict and v < lo) or (hi is not None and v > hi):
            bound = f"> {lo:g}" if strict else f">= {lo:g}"
            if hi is not None:
                bound += f" and <= {hi:g}"
            raise self.fail((*where, key), f"must be {bound}{unit}, got {v!r}")
        return float(v)

    def integer(
        self, d: dict[str, Any], where: tuple[str, ...], key: str, default: int, lo: int
    ) -> int:
        if key not in d:
            return default
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise self.fail((*where, key), f"must be a whole number >= {lo}, got {v!r}")
        return v

    def boolean(self, d: dict[str, Any], where: tuple[str, ...], key: str, default: bool) -> bool:
        if key not in d:
            return default
        v = d[key]
        if not isinstance(v, bool):
            raise self.fail((*where, key), f"must be true or false, got {v!r}")
        return v

    def window(self, d: dict[str, Any], where: tuple[str, ...], key: str, default: float) -> float:
        if key not in d:
            return default
        v = d[key]
        if not isinstance(v, str):
            raise self.fail(
                (*where, key), f'must be a duration string like "15m" or "6h", got {v!r}'
            )
        try:
            return parse_window(v)
        except ValueError as exc:
            raise self.fail((*where, key), str(exc)) from None

    def dims(
        self, d: dict[str, Any], where: tuple[str, ...], key: str, default: tuple[str, ...]
    ) -> tuple[str, ...]:
        if key not in d:
            return default
        v = d[key]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.fail(
                (*where, key),
                f'must be a list of tag names like ["feature", "workload"], got {v!r}',
            )
        for x in v:
            if x != "all" and not _DIMENSION.match(x):
                raise self.fail((*where, key), f"bad tag name {x!r}")
            if x != "all":
                self.dimension_uses.append((self.where((*where, key)), x))
        return tuple(v)

    def scope(self, v: Any, where: tuple[str, ...]) -> tuple[Clause, ...]:
        if not isinstance(v, str):
            raise self.fail(where, f'must be a filter string like "team=search", got {v!r}')
        try:
            clauses = parse_filter(v)
        except ValueError as exc:
            raise self.fail(where, str(exc)) from None
        for c in clauses:
            if c.key == "all":
                raise self.fail(where, "use an empty scope for the whole org")
            self.dimension_uses.append((self.where(where), c.key))
        return clauses


def kind_of(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(v),
        "a list" if isinstance(v, list) else "a table" if isinstance(v, dict) else "a value",
    )
