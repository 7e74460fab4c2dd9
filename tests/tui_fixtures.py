"""A deterministic fixture database and app factory for Pilot and snapshot tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmtop.tui.app import LlmtopApp

from tests.builders import payload, write

# A fixed clock: 2026-11-18 12:00:00 UTC-ish; every row is placed relative to it.
NOW = 1_795_003_200.0
IN_RATE = {"gpt-4o-mini": 1.5e-07, "gpt-4o": 2.5e-06}
OUT_RATE = {"gpt-4o-mini": 6e-07, "gpt-4o": 1e-05}
CACHED_RATE = {"gpt-4o-mini": 7.5e-08, "gpt-4o": 1.25e-06}


def fixture_specs() -> list[dict[str, Any]]:
    """60 calls in the last hour: three features, two models, some cached, two 429s."""
    specs: list[dict[str, Any]] = []
    features = ["chat", "summarize", "classify"]
    for i in range(60):
        model = "gpt-4o" if i % 4 == 0 else "gpt-4o-mini"
        specs.append(
            dict(
                start=NOW - 3500 + i * 58,
                latency=0.2 + (i % 10) * 0.1,
                model=model,
                input_tokens=1000 + 100 * (i % 7),
                output_tokens=50 + 10 * (i % 5),
                cached=512 if i % 3 == 0 else 0,
                feature=features[i % 3],
                team="search" if i % 3 == 2 else "assistant",
                customer=f"cust-{i % 4}",
                user=f"user-{i % 6}",
            )
        )
    for j in range(2):
        specs.append(
            dict(
                start=NOW - 200 + j,
                status="failure",
                error_class="RateLimitError",
                error_code="429",
                feature="chat",
                team="assistant",
                customer="cust-0",
            )
        )
    return specs


def expected_cost(s: dict[str, Any]) -> float:
    if s.get("status") == "failure":
        return 0.0
    m = s["model"]
    cached = s.get("cached", 0)
    return (
        (s["input_tokens"] - cached) * IN_RATE[m]
        + cached * CACHED_RATE[m]
        + s["output_tokens"] * OUT_RATE[m]
    )


def build(db: Path, specs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    specs = fixture_specs() if specs is None else specs
    write(db, [payload(**s) for s in specs])
    return specs


def make_app(db: Path, **kwargs: Any) -> LlmtopApp:
    kwargs.setdefault("clock", lambda: NOW)
    kwargs.setdefault("watch", False)
    kwargs.setdefault("alerts", False)
    return LlmtopApp(db, **kwargs)


async def settle(app: LlmtopApp, pilot: Any) -> None:
    """Wait until the app's workers are done and their messages handled.

    An exclusive worker replaced by a newer one ends as cancelled, which `wait_for_complete`
    reports by raising; that is the design working, so wait again for the newer one.
    """
    from llmtop.tui.reading import WATCH_GROUP
    from textual.worker import WorkerCancelled

    for _ in range(3):
        for _ in range(20):
            # The file watcher is a worker for the app's lifetime: never wait for it.
            running = [w for w in app.workers if w.group != WATCH_GROUP]
            if not running:  # (an empty list would mean "every worker")
                break
            try:
                await app.workers.wait_for_complete(running)
                break
            except WorkerCancelled:
                continue
        await pilot.pause()
