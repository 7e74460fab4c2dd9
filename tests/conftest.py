"""Shared fixtures: every test gets its own database, and litellm never goes online."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import pg_server, pg_url  # noqa: F401  (a real PostgreSQL, tests/pg.py)

# Before anything can import litellm: offline price map, no beta-header fetch, no retry waits.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
os.environ.setdefault("INITIAL_RETRY_DELAY", "0")
os.environ.setdefault("JITTER", "0")
os.environ.pop("LLMTOP_TAGS", None)
os.environ["TZ"] = "UTC"  # snapshots and "today/this month" must not depend on the machine's zone
time.tzset()
os.environ.pop("LLMTOP_PRICES", None)


@pytest.fixture(autouse=True)
def llmtop_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point LLMTOP_DB at a fresh file so no test touches the user's real database."""
    db = tmp_path / "llmtop.db"
    monkeypatch.setenv("LLMTOP_DB", str(db))
    monkeypatch.setenv("LLMTOP_STATE", str(tmp_path / "ui-state.json"))
    # Fixtures live at frozen clocks that drift into the past; the writers' background prune
    # measures age by the wall clock. Tests that exercise retention set these themselves.
    monkeypatch.setenv("LLMTOP_RETENTION", "off")
    monkeypatch.setenv("LLMTOP_ROLLUP_RETENTION", "off")
    yield db


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`slow` tests run for minutes by design: give them 30 minutes instead of the suite's
    per-test limit (pyproject `timeout`), unless a test names its own."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(1800))
