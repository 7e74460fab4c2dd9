"""The margin rule: a customer's month-to-date LLM cost against their plan price.

Plans come from the rules file (`[plans]`, or the CSV `[margin] plans_csv` names, read here).
The detector warns when a customer's cost this calendar month passes `share_pct` of the plan
(default 60%) and pages at `critical_pct` (default 100%: the customer costs more than they pay).

Registered in detectors.DETECTORS; it imports the detectors' types inside the function, because
detectors imports this module (a module-level import both ways would be a cycle).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING

from llmtop.store.engine import Spec, Tracker
from llmtop.store.filters import Clause
from llmtop.store.reader import Reader
from llmtop.store.rollup import F_SPEND

if TYPE_CHECKING:
    from llmtop.alerts.cache import AlertCache
    from llmtop.alerts.detectors import Candidate
    from llmtop.alerts.rules import Rules


def read_plans_csv(csv_path: Path) -> dict[str, float]:
    """customer → monthly revenue from a CSV with a `customer,monthly_revenue` header (other
    columns, such as a plan name, are ignored). Problems raise RulesError naming the CSV's own
    line; an unreadable file raises OSError (the rules file's line names it)."""
    from llmtop.alerts.rules import RulesError

    text = csv_path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(text.splitlines())
    if not {"customer", "monthly_revenue"} <= set(reader.fieldnames or ()):
        raise RulesError(f"{csv_path}:1: header: needs the columns customer,monthly_revenue")
    out: dict[str, float] = {}
    for row in reader:
        line = reader.line_num
        name = (row.get("customer") or "").strip()
        value = (row.get("monthly_revenue") or "").strip()
        try:
            amount = float(value.replace("$", "").replace(",", ""))
        except ValueError:
            amount = math.nan
        if not name:
            raise RulesError(f"{csv_path}:{line}: customer: must not be empty")
        if not math.isfinite(amount) or amount <= 0:
            raise RulesError(
                f"{csv_path}:{line}: monthly_revenue: must be a number > 0 (dollars), got {value!r}"
            )
        out[name] = amount
    return out


def month_spend_by_customer(reader: Reader, start: float, now: float) -> dict[str, float]:
    """Spend per customer over [start, now), from the customer rollup cube."""
    groups = Tracker(Spec(dims=("customer",), fields=(F_SPEND,))).update(
        reader.source(), start, now, 0, now
    )
    return {k[0]: g.v[F_SPEND] for k, g in groups.items() if k[0] is not None}


def margin(
    reader: Reader, cache: AlertCache, rules: Rules, now: float, first: float
) -> list[Candidate]:
    from llmtop.alerts.budgets import period_bounds
    from llmtop.alerts.detectors import Candidate, usd

    if not rules.plans:
        return []
    start, _ = period_bounds(now, "month")
    spent_by = month_spend_by_customer(reader, start, now)
    mr = rules.margin
    out: list[Candidate] = []
    for customer, revenue in rules.plans.items():
        spent = spent_by.get(customer, 0.0)
        share = spent / revenue * 100.0
        if share < mr.share_pct:
            continue
        b0 = start - (now - start)
        out.append(
            Candidate(
                rule="margin",
                severity="critical" if share >= mr.critical_pct else "warning",
                scope=(Clause("customer", "=", customer),),
                title=(
                    f"customer {customer}: {usd(spent)} of LLM cost this month, {share:.0f}% of "
                    f"its {usd(revenue)} plan (alert at {mr.share_pct:g}%)"
                ),
                cur=(start, now),
                base=[(b0, start)] if b0 >= first else [],
                scale=1.0,
                delta=spent,
            )
        )
    return out
