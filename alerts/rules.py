"""The alert rules file: defaults that work with no file at all, and precise errors when it is wrong.

Why a hand-written validator instead of a schema library: the only thing a user needs from a bad
rules file is `file:line: key: problem`, and tomllib does not say which line a key came from, so
`rules_check.Lines` scans the text for it. Every number is checked here, once, so the engine never has to
guess what a malformed threshold meant.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtop.alerts.rules_check import Checker, kind_of
from llmtop.alerts.rules_model import (
    PERIOD_ADJECTIVE,
    PERIODS,
    RULES_FILENAME,
    AnomalyRule,
    Budget,
    MarginRule,
    NewRule,
    RatesRule,
    Rules,
    RulesError,
    RunawayRule,
    SpikeRule,
    default_rules_path,
)

#: The rules file's public face: its model (rules_model) and its parser (here).
__all__ = [
    "PERIODS",
    "PERIOD_ADJECTIVE",
    "RULES_FILENAME",
    "AnomalyRule",
    "Budget",
    "MarginRule",
    "NewRule",
    "RatesRule",
    "Rules",
    "RulesError",
    "RunawayRule",
    "SpikeRule",
    "check_dimensions",
    "default_rules_path",
    "load_rules",
    "parse_new",
    "parse_plans",
    "parse_rules",
]
from llmtop.store.filters import Clause, format_window

if TYPE_CHECKING:
    pass

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

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

    ck = Checker(path, text)
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
    if spike.critical_ratio < spike.ratio and "critical_ratio" not in d:
        spike = replace(spike, critical_ratio=spike.ratio)  # a raised ratio lifts the default
    if spike.critical_ratio < spike.ratio:
        # Every alert of the rule would be critical: "warning" could never be said.
        raise ck.fail(
            ("spike", "critical_ratio"),
            f"must be >= ratio ({spike.ratio:g}), got {spike.critical_ratio:g}",
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
    if runaway.critical_ratio < runaway.ratio and "critical_ratio" not in d:
        runaway = replace(runaway, critical_ratio=runaway.ratio)  # a raised ratio lifts the default
    if runaway.critical_ratio < runaway.ratio:
        # Every alert of the rule would be critical: "warning" could never be said.
        raise ck.fail(
            ("runaway", "critical_ratio"),
            f"must be >= ratio ({runaway.ratio:g}), got {runaway.critical_ratio:g}",
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
            "change_significance",
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
        change_significance=ck.number(d, w, "change_significance", qb.change_significance, hi=0.5),
    )
    if rates.max_window < rates.window:
        raise ck.fail((*w, "max_window"), f"must be >= window ({format_window(rates.window)})")
    new = parse_new(ck, data)

    workloads = dict(Rules().workloads)
    wl = data.get("workloads", {})
    if not isinstance(wl, dict):
        raise ck.fail(("workloads",), f"must be a table of workload = window, got {kind_of(wl)}")
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
        raise ck.fail(("budget",), f"must be an array of tables, got {kind_of(raw)}")
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
                name=name or f"{PERIOD_ADJECTIVE[period]} budget",
                warning_pct=warn,
                critical_pct=crit,
                projection=ck.boolean(b, where, "projection", True),
                owner=owner,
            )
        )

    owners: list[tuple[tuple[Clause, ...], str]] = []
    ow = data.get("owners", {})
    if not isinstance(ow, dict):
        raise ck.fail(("owners",), f'must be a table of "scope" = "owner", got {kind_of(ow)}')
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
        dimension_uses=tuple(ck.dimension_uses),
    )


def parse_plans(
    ck: Checker, data: dict[str, Any], path: Path
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
            ("plans",), f"must be a table of customer = monthly revenue, got {kind_of(raw)}"
        )
    for customer in raw:
        plans[customer] = ck.number(raw, ("plans",), customer, 0.0, unit=" (dollars a month)")
    return margin, plans


def parse_new(ck: Checker, data: dict[str, Any]) -> NewRule:
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
        text = p.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not TOML
    except FileNotFoundError:
        return Rules()
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{p}:1: cannot read the rules file ({exc})") from None
    return parse_rules(text, p)


def check_dimensions(rules: Rules, reader: Any) -> None:
    """RulesError for a group_by or scope tag that is a typo of a known one (`featrue`): tags are
    free-form, so only a database can tell, and such a rule would never fire without a word.
    A tag no row has sent yet and close to no known name passes (rules written before traffic).
    """
    for where, key in rules.dimension_uses:
        problem = reader.dimension_problem(key, typo_only=True, extra=("all",))
        if problem is not None:
            raise RulesError(f"{where}: {problem}")
