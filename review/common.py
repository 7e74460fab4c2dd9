"""What every review command shares: opening the database, reading a period, one-line errors.

A review command never migrates or writes the file it reads (a report on a colleague's copy
must not change it), so the database is opened read-only; the errors a user can cause (no file,
a bad window, a bad filter) become one `llmtop CMD: problem` line and exit status 2.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from llmtop.store.db import DatabaseError, resolve_db_path
from llmtop.store.filters import MAX_EPOCH, MAX_WINDOW, Clause, parse_filter, parse_window
from llmtop.store.reader import Reader


class UsageError(Exception):
    """A problem with what the user typed or named, as one sentence."""


def open_reader(db: str | None) -> Reader:
    path = resolve_db_path(db)
    if not path.exists():  # a postgresql:// URL (PgUrl) answers True: the server decides
        raise UsageError(f"{path}: no database yet (register the collector, or try `llmtop demo`)")
    try:
        return Reader(path, readonly=True)
    except DatabaseError as exc:
        raise UsageError(str(exc)) from None


def clauses_of(text: str | None) -> tuple[Clause, ...]:
    try:
        return parse_filter(text or "")
    except ValueError as exc:
        raise UsageError(f"--filter: {exc}") from None


def check_dimensions(reader: Reader, keys: Sequence[str], what: str) -> None:
    """UsageError for a key that is no dimension, with the nearest name (`custmer=acme` matched
    no row and wrote an empty report with exit 0)."""
    for k in keys:
        problem = reader.dimension_problem(k)
        if problem is not None:
            raise UsageError(f"{what}: {problem}")


def window_of(text: str, now: float) -> tuple[float, float]:
    try:
        return now - parse_window(text), now
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from None


@dataclass(frozen=True)
class Period:
    """A reporting period [start, end) and the one before it, of the same length."""

    label: str
    start: float
    end: float

    @property
    def previous(self) -> tuple[float, float]:
        return self.start - (self.end - self.start), self.start

    @property
    def days(self) -> float:
        return (self.end - self.start) / 86400.0


_DATE = r"\d{4}-\d{2}-\d{2}"


def parse_period(text: str, now: float) -> Period:
    """`week` (the last 7 days up to now), `month` (the last 30 days), `7d`-style windows, or
    `2026-05-01..2026-05-08` (local dates; the end date is exclusive).

    Rolling periods rather than calendar ones: Monday's review of "the week" wants the seven
    days just gone, and a period compared with the one before it needs equal lengths.
    """
    t = (text or "").strip()
    if t in ("week", "month"):
        days = 7 if t == "week" else 30
        return Period(f"last {days} days", now - days * 86400.0, now)
    m = re.fullmatch(rf"({_DATE})\.\.({_DATE})", t)
    if m:
        try:
            a = datetime.strptime(m.group(1), "%Y-%m-%d")
            b = datetime.strptime(m.group(2), "%Y-%m-%d")
        except ValueError as exc:
            raise UsageError(f"--period {t}: {exc}") from None
        if b <= a:
            raise UsageError(f"--period {t}: the end date must be after the start date")
        if a.year < 1970 or (b - a).total_seconds() > MAX_WINDOW:
            raise UsageError(
                f"--period {t}: from 1970 on, at most {MAX_WINDOW / 86400:.0f} days long"
            )
        shown = b - timedelta(days=1)
        return Period(f"{a:%Y-%m-%d} to {shown:%Y-%m-%d}", a.timestamp(), b.timestamp())
    try:
        w = parse_window(t)
    except ValueError as exc:
        if "at most" in str(exc):
            raise UsageError(f"--period: {exc}") from None
        raise UsageError(
            f"--period {t!r}: use week, month, a window like 14d, or DATE..DATE"
            " (2026-05-01..2026-05-08, end exclusive)"
        ) from None
    return Period(f"last {t}", now - w, now)


def now() -> float:
    return time.time()


def parse_until(text: str | None) -> float:
    """`--until`: the end of what is read (default now): a local date or date-time
    (2026-05-01, 2026-05-01T12:00) or a Unix timestamp. A report for last month is
    `--period 30d --until 2026-06-01`; tests pin their clock with it."""
    if not text:
        return now()
    t = text.strip()
    try:
        v = float(t)
    except ValueError:
        pass
    else:
        if not math.isfinite(v) or not 0 <= v <= MAX_EPOCH:
            raise UsageError(f"--until {t!r}: a Unix timestamp from 0 to {MAX_EPOCH:.0f}")
        return v
    try:
        return datetime.fromisoformat(t).timestamp()
    except (ValueError, OverflowError, OSError):
        raise UsageError(
            f"--until {t!r}: use a date (2026-05-01), a date-time (2026-05-01T12:00)"
            " or a Unix timestamp"
        ) from None


def check_out(out: Path) -> None:
    """UsageError for an --out that is a SQLite database (or its -wal/-shm): `export --out
    llmtop.db` wrote a csv over the data it was exporting, every row lost."""
    names = [out]
    for suffix in ("-wal", "-shm", "-journal"):
        if out.name.endswith(suffix):
            names.append(out.with_name(out.name[: -len(suffix)]))
    for p in names:
        try:
            with open(p, "rb") as fh:
                head = fh.read(16)
        except OSError:
            continue
        if head == b"SQLite format 3\x00":
            raise UsageError(f"--out {out}: is a SQLite database (llmtop's data?): not overwritten")


def usd(x: float | None, places: int = 2) -> str:
    if x is None:
        return "n/a"
    sign = "-" if x < 0 else ""
    return f"{sign}${abs(x):,.{places}f}"


def pct(x: float | None, places: int = 0) -> str:
    return "n/a" if x is None else f"{x * 100:+.{places}f}%"
