"""A simulator database for the review commands' tests: two weeks of the demo's workload
(six features, retries, fallbacks, the support-summarize incident a day before the end),
written through the real collector path once per test module."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from llmtop.collector.core import CollectorCore
from llmtop.demo.simulator import Simulator

#: The end of the simulated history: a fixed clock, so numbers never depend on the wall clock.
T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z
DAYS = 14
RATE = 0.02


def build(path: Path, *, seed: int = 5, days: int = DAYS, rate: float = RATE) -> int:
    core = CollectorCore(path)
    sim = Simulator(core, seed=seed, incident_at=T0 - 86400.0)
    n = sim.backfill(
        T0,
        days * 86400.0,
        rate=rate,
        max_rows=10**6,
        submit_record=core.writer.submit,
        flush=lambda: core.flush(60),
    )
    assert core.flush(120), core.writer.last_error
    core.writer.close()
    return n


def q(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()
