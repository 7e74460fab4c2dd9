"""Margin per customer for the report: LLM cost as a share of what the customer pays.

Revenue comes from the rules file's `[plans]` (or its plans CSV); cost is the calendar month to
date (the plan's own period) and its straight-line projection to the month's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmtop.alerts.budgets import period_bounds
from llmtop.alerts.margin import month_spend_by_customer
from llmtop.alerts.rules import Rules
from llmtop.store.filters import Clause
from llmtop.store.reader import Reader


@dataclass(frozen=True)
class CustomerMargin:
    customer: str
    revenue: float  # a month
    month_to_date: float
    projected: float

    @property
    def share(self) -> float:
        return self.month_to_date / self.revenue

    @property
    def projected_share(self) -> float:
        return self.projected / self.revenue


def margins(
    reader: Reader, rules: Rules, now: float, clauses: Sequence[Clause] = ()
) -> list[CustomerMargin]:
    """Every customer with a plan, highest projected share first. (`clauses` is accepted for
    symmetry; a plan is per customer, so the share is always of the customer's whole spend.)"""
    if not rules.plans:
        return []
    start, end = period_bounds(now, "month")
    spent = month_spend_by_customer(reader, start, now)
    scale = (end - start) / max(now - start, 1.0)
    out = [
        CustomerMargin(c, rev, spent.get(c, 0.0), spent.get(c, 0.0) * scale)
        for c, rev in rules.plans.items()
    ]
    out.sort(key=lambda m: (-m.projected_share, m.customer))
    return out
