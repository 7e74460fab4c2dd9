"""llmtop.review: the weekly cost review and the monthly invoice, on the same database.

`llmtop export` (rows or groupings, streamed), `llmtop report` (spend, movers and their causes,
budgets, waste, tasks, margin), `llmtop reconcile` (our numbers against a provider's usage/cost
export), `llmtop whatif` (the same tokens on other models or tiers). Reads go through the store's
public functions; money comes from llmtop.pricing. Nothing here imports litellm or a UI.
"""
