"""Alerts: rules (`rules`), evaluation with likely cause and owner (`engine`, `explain`), paging
state shared through the database (`state`) and `llmtop check` (`cli`).

Kept import-light: the TUI imports these lazily in a worker thread.
"""
