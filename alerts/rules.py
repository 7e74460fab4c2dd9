"""The alert rules file: defaults that work with no file at all, and precise errors when it is wrong.

Why a hand-written validator instead of a schema library: the only thing a user needs from a bad
rules file is `file:line: key: problem`, and tomllib does not say which line a key came from, so
`_Lines` scans the text for it. Every number is checked here, once, so the engine never has to
guess what a malformed threshold meant.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtop.store.filters import Clause, format_filter, format_window, parse_filter, parse_window

if TYPE_CHECKING:
    from llmtop.alerts.notify import NotifyConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

RULES_FILENAME = "llmtop-rules.toml"
PERIODS = ("day", "week", "month")
_ADJ = {"day": "daily", "week": "weekly", "month": "monthly"}


class RulesError(Exception):
    """A rules file problem as one `file:line: key: problem` sentence."""


@dataclass(frozen=True)
class AnomalyRule:
    """Current window vs the same window at the same time of day on the previous `days` days."""

    enabled: bool = True
    group_by: tuple[str, ...] = ("feature", "workload")
    window: float = 3600.0
    days: int = 7
    min_samples: int = 3
    sigma: float = 3.0
    min_change_pct: float = 50.0
    #: The minimum change is max(min_change_usd, min_change_share_pct of the org's normal spend
    #: in a window this long): alerts.scale says why.
    min_change_usd: float = 0.01
    min_change_share_pct: float = 5.0
    critical_ratio: float = 3.0


@dataclass(frozen=True)
class SpikeRule:
    """The last few minutes against the trailing rate and the same time of day."""

    enabled: bool = True
    group_by: tuple[str, ...] = ("feature", "all")
    window: float = 300.0
    trailing: float = 7200.0
    ratio: float = 3.0
    critical_ratio: float = 6.0
    min_change_usd: float = 0.01
    min_change_share_pct: float = 10.0


@dataclass(frozen=True)
class RunawayRule:
    """One customer or user costing many times their own trailing average."""

    enabled: bool = True
    group_by: tuple[str, ...] = ("customer", "user")
    window: float = 3600.0
    days: int = 7
    ratio: float = 10.0
    critical_ratio: float = 30.0
    min_usd: float = 0.05
    min_share_pct: float = 5.0
    #: A runaway is a loop, not a session: fewer calls than this in the window is a user
    #: having a busy hour (at $1/h, three calls can be 10× anyone's average).
    min_requests: int = 10


@dataclass(frozen=True)
class RatesRule:
    """Retry, fallback and error rates above a threshold, and cache-hit-rate drops."""

    enabled: bool = True
    group_by: tuple[str, ...] = ("feature", "all")
    window: float = 900.0
    baseline: float = 86400.0
    min_requests: int = 20
    error_rate_pct: float = 10.0
    retry_rate_pct: float = 10.0
    fallback_rate_pct: float = 20.0
    cache_hit_drop_pct: float = 50.0
    critical_multiple: float = 2.5
    #: Below min_requests a scope's window widens (doubling) up to this, and a rate fires on
    #: fewer requests only when a binomial test against the baseline rate is this significant.
    max_window: float = 7200.0
    significance: float = 0.001


@dataclass(frozen=True)
class NewRule:
    """A customer, user, feature or model with no spend in the previous `days` days whose spend
    in the window is a notable share of the org's."""

    enabled: bool = True
    group_by: tuple[str, ...] = ("customer", "user", "feature", "model")
    window: float = 900.0
    days: int = 7
    share_pct: float = 5.0
    critical_share_pct: float = 20.0
    min_usd: float = 0.01
    min_requests: int = 3


@dataclass(frozen=True)
class MarginRule:
    """A customer's month-to-date LLM cost against their plan price (`[plans]`): warn at
    `share_pct`, critical at `critical_pct` (the seeds' rule of thumb: 60% is where a plan stops
    paying for itself once everything else is counted)."""

    enabled: bool = True
    share_pct: float = 60.0
    critical_pct: float = 100.0


@dataclass(frozen=True)
class Budget:
    """Spend cap for a scope and calendar period (local time), with warning/critical levels."""

    amount: float
    period: str = "month"
    scope: tuple[Clause, ...] = ()
    name: str = ""
    warning_pct: float = 80.0
    critical_pct: float = 100.0
    projection: bool = True
    owner: str | None = None

    @property
    def scope_text(self) -> str:
        return format_filter(self.scope)


@dataclass(frozen=True)
class Rules:
    """Everything the engine evaluates; `Rules()` is the no-file default."""

    anomaly: AnomalyRule = field(default_factory=AnomalyRule)
    spike: SpikeRule = field(default_factory=SpikeRule)
    runaway: RunawayRule = field(default_factory=RunawayRule)
    rates: RatesRule = field(default_factory=RatesRule)
    new: NewRule = field(default_factory=NewRule)
    #: workload class (the `workload` tag) → anomaly window length in seconds.
    workloads: Mapping[str, float] = field(
        default_factory=lambda: {"realtime": 900.0, "batch": 6 * 3600.0}
    )
    budgets: tuple[Budget, ...] = ()
    margin: MarginRule = field(default_factory=MarginRule)
    #: customer → monthly revenue (plan price) in dollars, from `[plans]` and `[margin] plans_csv`.
    plans: Mapping[str, float] = field(default_factory=dict)
    #: (scope clauses, owner) in file order.
    owners: tuple[tuple[tuple[Clause, ...], str], ...] = ()
    #: `[notify]` (alerts/notify.py): None when the file has none.
    notify: NotifyConfig | None = None
    source: Path | None = None

    def window_for(self, workload: str | None) -> float:
        return self.workloads.get(workload or "", self.anomaly.window)


def default_rules_path(db_path: Path) -> Path:
    """`llmtop-rules.toml` beside the database: rules travel with the data they judge."""
    return Path(db_path).expanduser().parent / RULES_FILENAME


# --- locating keys in the text ------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_\-]+)\s*=""")


class _Lines:
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


class _Checker:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = _Lines(text)

    def fail(self, where: tuple[str, ...], problem: str) -> RulesError:
        label = ".".join(where[:1] + tuple(f"[{p}]" if p.isdigit() else p for p in where[1:]))
        label = label.replace(".[", "[")
        return RulesError(f"{self.path}:{self.lines.line(*where)}: {label}: {problem}")

    def table(self, data: Any, where: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(where, f"must be a table, got {_kind(data)}")
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
            raise self.fail((*where, key), f"must be a number{unit}, got {_kind(v)} {v!r}")
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
        return clauses


def _kind(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(v),
        "a list" if isinstance(v, list) else "a table" if isinstance(v, dict) else "a value",
    )


_TOP = (
    "anomaly",
    "spike",
    "runaway",
    "rates",
    "new",
    "workloads",
    "budget",
    "owners",
    "margin",
    "plans",
    "notify",
)


def parse_rules(text: str, path: Path) -> Rules:
    """Parse and validate rules text; `path` is only used in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        msg = getattr(exc, "msg", None) or str(exc)
        if line is None:
            m = re.search(r"at line (\d+)", str(exc))
            line = int(m.group(1)) if m else (text.count("\n") + 1 if "end of" in str(exc) else 1)
        msg = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        raise RulesError(f"{path}:{line}: syntax error: {msg}") from None
    from llmtop.alerts.notify import parse_notify

    ck = _Checker(path, text)
    ck.table(data, (), _TOP)

    d = ck.table(
        data.get("anomaly", {}),
        ("anomaly",),
        (
            "enabled",
            "group_by",
            "window",
            "days",
            "min_samples",
            "sigma",
            "min_change_pct",
            "min_change_usd",
            "min_change_share_pct",
            "critical_ratio",
        ),
    )
    w = ("anomaly",)
    base = AnomalyRule()
    share = {"strict": False, "hi": 100.0, "unit": " (percent of the org's spend)"}
    anomaly = AnomalyRule(
        enabled=ck.boolean(d, w, "enabled", base.enabled),
        group_by=ck.dims(d, w, "group_by", base.group_by),
        window=ck.window(d, w, "window", base.window),
        days=ck.integer(d, w, "days", base.days, 1),
        min_samples=ck.integer(d, w, "min_samples", base.min_samples, 2),
        sigma=ck.number(d, w, "sigma", base.sigma),
        min_change_pct=ck.number(
            d, w, "min_change_pct", base.min_change_pct, strict=False, unit=" (percent)"
        ),
        min_change_usd=ck.number(
            d, w, "min_change_usd", base.min_change_usd, strict=False, unit=" (dollars)"
        ),
        min_change_share_pct=ck.number(
            d,
            w,
            "min_change_share_pct",
            base.min_change_share_pct,
            **share,  # type: ignore[arg-type]
        ),
        critical_ratio=ck.number(d, w, "critical_ratio", base.critical_ratio, lo=1.0),
    )
    if anomaly.min_samples > anomaly.days:
        raise ck.fail((*w, "min_samples"), f"must be <= days ({anomaly.days})")

    d = ck.table(
        data.get("spike", {}),
        ("spike",),
        (
            "enabled",
            "group_by",
            "window",
            "trailing",
            "ratio",
            "critical_ratio",
            "min_change_usd",
            "min_change_share_pct",
        ),
    )
    w = ("spike",)
    sb = SpikeRule()
    spike = SpikeRule(
        enabled=ck.boolean(d, w, "enabled", sb.enabled),
        group_by=ck.dims(d, w, "group_by", sb.group_by),
        window=ck.window(d, w, "window", sb.window),
        trailing=ck.window(d, w, "trailing", sb.trailing),
        ratio=ck.number(d, w, "ratio", sb.ratio, lo=1.0),
        critical_ratio=ck.number(d, w, "critical_ratio", sb.critical_ratio, lo=1.0),
        min_change_usd=ck.number(
            d, w, "min_change_usd", sb.min_change_usd, strict=False, unit=" (dollars)"
        ),
        min_change_share_pct=ck.number(
            d,
            w,
            "min_change_share_pct",
            sb.min_change_share_pct,
            **share,  # type: ignore[arg-type]
        ),
    )

    d = ck.table(
        data.get("runaway", {}),
        ("runaway",),
        (
            "enabled",
            "group_by",
            "window",
            "days",
            "ratio",
            "critical_ratio",
            "min_usd",
            "min_share_pct",
            "min_requests",
        ),
    )
    w = ("runaway",)
    rb = RunawayRule()
    runaway = RunawayRule(
        enabled=ck.boolean(d, w, "enabled", rb.enabled),
        group_by=ck.dims(d, w, "group_by", rb.group_by),
        window=ck.window(d, w, "window", rb.window),
        days=ck.integer(d, w, "days", rb.days, 1),
        ratio=ck.number(d, w, "ratio", rb.ratio, lo=1.0),
        critical_ratio=ck.number(d, w, "critical_ratio", rb.critical_ratio, lo=1.0),
        min_usd=ck.number(d, w, "min_usd", rb.min_usd, strict=False, unit=" (dollars)"),
        min_share_pct=ck.number(d, w, "min_share_pct", rb.min_share_pct, **share),  # type: ignore[arg-type]
        min_requests=ck.integer(d, w, "min_requests", rb.min_requests, 1),
    )

    d = ck.table(
        data.get("rates", {}),
        ("rates",),
        (
            "enabled",
            "group_by",
            "window",
            "baseline",
            "min_requests",
            "error_rate_pct",
            "retry_rate_pct",
            "fallback_rate_pct",
            "cache_hit_drop_pct",
            "critical_multiple",
            "max_window",
            "significance",
        ),
    )
    w = ("rates",)
    qb = RatesRule()
    pct = {"lo": 0.0, "hi": 100.0, "unit": " (percent)"}
    rates = RatesRule(
        enabled=ck.boolean(d, w, "enabled", qb.enabled),
        group_by=ck.dims(d, w, "group_by", qb.group_by),
        window=ck.window(d, w, "window", qb.window),
        baseline=ck.window(d, w, "baseline", qb.baseline),
        min_requests=ck.integer(d, w, "min_requests", qb.min_requests, 1),
        error_rate_pct=ck.number(d, w, "error_rate_pct", qb.error_rate_pct, **pct),  # type: ignore[arg-type]
        retry_rate_pct=ck.number(d, w, "retry_rate_pct", qb.retry_rate_pct, **pct),  # type: ignore[arg-type]
        fallback_rate_pct=ck.number(d, w, "fallback_rate_pct", qb.fallback_rate_pct, **pct),  # type: ignore[arg-type]
        cache_hit_drop_pct=ck.number(d, w, "cache_hit_drop_pct", qb.cache_hit_drop_pct, **pct),  # type: ignore[arg-type]
        critical_multiple=ck.number(d, w, "critical_multiple", qb.critical_multiple, lo=1.0),
        max_window=ck.window(d, w, "max_window", qb.max_window),
        significance=ck.number(d, w, "significance", qb.significance, hi=0.5),
    )
    if rates.max_window < rates.window:
        raise ck.fail((*w, "max_window"), f"must be >= window ({format_window(rates.window)})")
    new = parse_new(ck, data)

    workloads = dict(Rules().workloads)
    wl = data.get("workloads", {})
    if not isinstance(wl, dict):
        raise ck.fail(("workloads",), f"must be a table of workload = window, got {_kind(wl)}")
    for name, v in wl.items():
        where = ("workloads", name)
        if isinstance(v, dict):
            ck.table(v, where, ("window",))
            workloads[name] = ck.window(v, where, "window", anomaly.window)
        else:
            workloads[name] = ck.window(wl, ("workloads",), name, anomaly.window)

    budgets: list[Budget] = []
    raw = data.get("budget", [])
    if isinstance(raw, dict):
        raise ck.fail(("budget",), "write budgets as [[budget]] (an array of tables)")
    if not isinstance(raw, list):
        raise ck.fail(("budget",), f"must be an array of tables, got {_kind(raw)}")
    for i, b in enumerate(raw):
        where = ("budget", str(i))
        b = ck.table(
            b,
            where,
            (
                "name",
                "scope",
                "period",
                "amount",
                "warning_pct",
                "critical_pct",
                "projection",
                "owner",
            ),
        )
        if "amount" not in b:
            raise ck.fail(where, "missing amount (dollars per period)")
        amount = ck.number(b, where, "amount", 0.0, unit=" (dollars)")
        period = b.get("period", "month")
        if period not in PERIODS:
            raise ck.fail(
                (*where, "period"), f"must be one of {', '.join(PERIODS)}, got {period!r}"
            )
        scope = ck.scope(b.get("scope", ""), (*where, "scope"))
        name = b.get("name", "")
        if not isinstance(name, str):
            raise ck.fail((*where, "name"), f"must be a string, got {name!r}")
        owner = b.get("owner")
        if owner is not None and not isinstance(owner, str):
            raise ck.fail((*where, "owner"), f"must be a string, got {owner!r}")
        warn = ck.number(b, where, "warning_pct", 80.0, unit=" (percent)")
        crit = ck.number(b, where, "critical_pct", 100.0, unit=" (percent)")
        if warn > crit:
            raise ck.fail(
                (*where, "warning_pct"), f"must be <= critical_pct ({crit:g}), got {warn:g}"
            )
        budgets.append(
            Budget(
                amount=amount,
                period=period,
                scope=scope,
                name=name or f"{_ADJ[period]} budget",
                warning_pct=warn,
                critical_pct=crit,
                projection=ck.boolean(b, where, "projection", True),
                owner=owner,
            )
        )

    owners: list[tuple[tuple[Clause, ...], str]] = []
    ow = data.get("owners", {})
    if not isinstance(ow, dict):
        raise ck.fail(("owners",), f'must be a table of "scope" = "owner", got {_kind(ow)}')
    for k, v in ow.items():
        where = ("owners", k)
        if not isinstance(v, str) or not v.strip():
            raise ck.fail(where, f"owner must be a non-empty string, got {v!r}")
        clauses = ck.scope(k, where)
        if not clauses:
            raise ck.fail(where, "scope must not be empty")
        owners.append((clauses, v.strip()))

    margin, plans = parse_plans(ck, data, path)

    return Rules(
        anomaly=anomaly,
        spike=spike,
        runaway=runaway,
        rates=rates,
        new=new,
        workloads=workloads,
        budgets=tuple(budgets),
        owners=tuple(owners),
        margin=margin,
        plans=plans,
        notify=parse_notify(ck, data.get("notify")),
        source=path,
    )


def parse_plans(
    ck: _Checker, data: dict[str, Any], path: Path
) -> tuple[MarginRule, dict[str, float]]:
    """`[margin]` and `[plans]` (customer = monthly revenue in dollars), plus the CSV that
    `[margin] plans_csv` names (columns `customer,monthly_revenue`, relative to this file)."""
    d = ck.table(
        data.get("margin", {}), ("margin",), ("enabled", "share_pct", "critical_pct", "plans_csv")
    )
    w = ("margin",)
    mb = MarginRule()
    margin = MarginRule(
        enabled=ck.boolean(d, w, "enabled", mb.enabled),
        share_pct=ck.number(d, w, "share_pct", mb.share_pct, unit=" (percent of plan price)"),
        critical_pct=ck.number(d, w, "critical_pct", mb.critical_pct, unit=" (percent)"),
    )
    if margin.share_pct > margin.critical_pct:
        raise ck.fail((*w, "share_pct"), f"must be <= critical_pct ({margin.critical_pct:g})")
    plans: dict[str, float] = {}
    csv_name = d.get("plans_csv")
    if csv_name is not None:
        if not isinstance(csv_name, str) or not csv_name:
            raise ck.fail((*w, "plans_csv"), f"must be a file name, got {csv_name!r}")
        from llmtop.alerts.margin import read_plans_csv

        csv_path = (path.parent / csv_name).expanduser()
        try:
            plans.update(read_plans_csv(csv_path))
        except OSError as exc:
            raise ck.fail(
                (*w, "plans_csv"), f"cannot read {csv_path} ({exc.strerror or exc})"
            ) from None
    raw = data.get("plans", {})
    if not isinstance(raw, dict):
        raise ck.fail(
            ("plans",), f"must be a table of customer = monthly revenue, got {_kind(raw)}"
        )
    for customer in raw:
        plans[customer] = ck.number(raw, ("plans",), customer, 0.0, unit=" (dollars a month)")
    return margin, plans


def parse_new(ck: _Checker, data: dict[str, Any]) -> NewRule:
    """`[new]`: the new-entity rule (alerts/newcomers.py)."""
    d = ck.table(
        data.get("new", {}),
        ("new",),
        (
            "enabled",
            "group_by",
            "window",
            "days",
            "share_pct",
            "critical_share_pct",
            "min_usd",
            "min_requests",
        ),
    )
    w = ("new",)
    nb = NewRule()
    pct = {"hi": 100.0, "unit": " (percent of the org's spend)"}
    new = NewRule(
        enabled=ck.boolean(d, w, "enabled", nb.enabled),
        group_by=ck.dims(d, w, "group_by", nb.group_by),
        window=ck.window(d, w, "window", nb.window),
        days=ck.integer(d, w, "days", nb.days, 1),
        share_pct=ck.number(d, w, "share_pct", nb.share_pct, **pct),  # type: ignore[arg-type]
        critical_share_pct=ck.number(
            d,
            w,
            "critical_share_pct",
            nb.critical_share_pct,
            **pct,  # type: ignore[arg-type]
        ),
        min_usd=ck.number(d, w, "min_usd", nb.min_usd, strict=False, unit=" (dollars)"),
        min_requests=ck.integer(d, w, "min_requests", nb.min_requests, 1),
    )
    if "all" in new.group_by:
        raise ck.fail((*w, "group_by"), 'must name tags like "customer": "all" is never new')
    return new


def load_rules(path: Path | None) -> Rules:
    """Read rules from `path`; a missing file means the defaults, anything malformed raises.

    A missing file is not an error because the default path is probed on every start and most
    users never write one; an explicitly named file that is missing is still reported by the CLI
    (it checks before calling).
    """
    if path is None:
        return Rules()
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Rules()
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{p}:1: cannot read the rules file ({exc})") from None
    return parse_rules(text, p)
