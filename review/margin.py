"""Margin per customer for the report: LLM cost as a share of what the customer pays.

Revenue comes from the rules file's `[plans]` (or its plans CSV); cost is the calendar month to
date (the plan's own period) and its straight-line projection to the month's end. The numbers
are the store's (store.boards.margin_board), the same the dashboard's margin panel shows.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmtop.alerts.budgets import period_bounds
from llmtop.alerts.rules import Rules
from llmtop.store.boards import margin_board
from llmtop.store.filters import Clause
from llmtop.store.reader import Reader
from llmtop.store.views import CustomerMargin

__all__ = ["CustomerMargin", "margins"]


def margins(
    reader: Reader, rules: Rules, now: float, clauses: Sequence[Clause] = ()
) -> list[CustomerMargin]:
    """Every customer with a plan, highest projected share first. (`clauses` is accepted for
    symmetry; a plan is per customer, so the share is always of the customer's whole spend.)"""
    if not rules.plans:
        return []
    board = margin_board(reader, rules.plans, period_bounds(now, "month"), now)
    return list(board.customers)
