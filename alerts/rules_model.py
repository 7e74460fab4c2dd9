"""What a rules file says, as dataclasses with the defaults that work with no file at all."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from llmtop.store.filters import Clause, format_filter

if TYPE_CHECKING:
    from llmtop.alerts.notify import NotifyConfig


RULES_FILENAME = "llmtop-rules.toml"
PERIODS = ("day", "week", "month")
PERIOD_ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly"}


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
    #: A scope's cache-hit rate since a change (a route_version, prompt_version or model new in
    #: the last max_window) is tested once per change, as its calls arrive, at this level: one
    #: hypothesis per deploy rather than one per window and pass (alerts/rate_rules.py says why).
    change_significance: float = 0.02


@dataclass(frozen=True)
class NewRule:
    """A customer, user, feature or model with no spend in the previous `days` days whose spend
    in the window is a notable share of the org's."""

    enabled: bool = True
    group_by: tuple[str, ...] = ("customer", "user", "feature", "model")
    window: float = 900.0
    days: int = 7
    #: Judged at the 95% lower bound of the entity's call count (alerts/newcomers.py).
    share_pct: float = 3.0
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
    #: ("file:line: key", tag name) for each tag a group_by or scope names (`Checker`).
    dimension_uses: tuple[tuple[str, str], ...] = ()

    def window_for(self, workload: str | None) -> float:
        return self.workloads.get(workload or "", self.anomaly.window)


def default_rules_path(db_path: Path) -> Path:
    """`llmtop-rules.toml` beside the database: rules travel with the data they judge. A
    PostgreSQL store has no "beside": its rules are in llmtop's data directory (they were
    `./postgresql:/host/llmtop-rules.toml`, relative to wherever the command ran, so cron and
    an on-call shell judged the same store by different rules)."""
    from llmtop.store.db import data_dir
    from llmtop.store.pg_db import is_pg_url

    if is_pg_url(db_path):
        return data_dir() / RULES_FILENAME
    return Path(db_path).expanduser().parent / RULES_FILENAME


# --- locating keys in the text ------------------------------------------------------------------
