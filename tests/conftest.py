"""Shared fixtures: every test gets its own database, and litellm never goes online."""

from __future__ import annotations

import gc
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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything imported by now (LiteLLM, Textual) lives for the whole run: out of the
    collector's way, so the per-test collection below scans only what tests made."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def collect_abandoned_streams() -> Iterator[None]:
    """Finalize, between tests, the HTTP stream generators LiteLLM leaves suspended.

    After a sync stream, LiteLLM (1.80.7 and 1.106.2 alike) drops httpcore's PoolByteStream
    generator unfinished, reachable only through reference cycles; whichever cyclic collection
    finalizes it closes it under its pool's lock. If that collection runs on a thread already
    holding the same lock (a later request on LiteLLM's shared Anthropic client), the thread
    deadlocks on itself: encode/httpcore#990, fix proposed in #1108. It hung a CI run. Collected
    here, no request is under way. What survives is frozen again, so the next collection scans
    only what the next test makes (a dashboard unfreezes the heap when it unmounts).
    """
    yield
    gc.collect()
    gc.freeze()
