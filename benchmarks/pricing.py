"""Benchmark llmtop.pricing: cold catalogue load time and cost() throughput on one core.

Run: .venv/bin/python benchmarks/pricing.py

The cost() loop uses varied, realistic inputs (a dozen models, token counts drawn from a
pre-generated random table, some cached/reasoning/batch/provider-hinted calls) so the figure
reflects the real per-call work. Only name → rate-plan resolution is memoized, as in
production; no result is cached.
"""

from __future__ import annotations

import random
import statistics
import sys
import time

from llmtop.pricing import cost, load_catalogue, set_catalogue

TARGET_CALLS_PER_S = 500_000

MODELS = [
    ("gpt-4o-mini", None),
    ("gpt-4o", None),
    ("openai/gpt-4.1", None),
    ("claude-sonnet-4-5", None),
    ("claude-haiku-4-5", None),
    ("gemini-2.5-pro", None),
    ("gemini-2.5-flash", None),
    ("gpt-4o", "azure"),
    ("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0", None),
    ("o3-mini", None),
    ("deepseek/deepseek-chat", None),
    ("my-unknown-deployment", None),
]


def bench_load(runs: int = 7) -> list[float]:
    """Fresh catalogue loads (JSON read + index), in ms."""
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        load_catalogue()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def make_calls(n: int, seed: int = 7) -> list[tuple]:
    rng = random.Random(seed)
    calls = []
    for _ in range(n):
        model, provider = rng.choice(MODELS)
        it = rng.randint(50, 120_000)
        ot = rng.randint(1, 4_000)
        cr = rng.randint(0, it) if rng.random() < 0.4 else 0
        rt = rng.randint(0, ot) if model.startswith("o3") else 0
        batch = rng.random() < 0.05
        calls.append((model, it, ot, cr, rt, batch, provider))
    return calls


def bench_cost(calls: list[tuple], repeat: int = 5) -> float:
    """Best-of-``repeat`` calls/s over the whole varied call list."""
    best = 0.0
    for _ in range(repeat):
        t = time.perf_counter()
        for model, it, ot, cr, rt, batch, provider in calls:
            cost(
                model,
                input_tokens=it,
                output_tokens=ot,
                cache_read_tokens=cr,
                reasoning_tokens=rt,
                batch=batch,
                provider=provider,
            )
        best = max(best, len(calls) / (time.perf_counter() - t))
    return best


def main() -> int:
    loads = bench_load()
    print(
        f"catalogue load (cold, fresh Catalogue): median {statistics.median(loads):.1f} ms "
        f"(min {min(loads):.1f}, max {max(loads):.1f}, n={len(loads)})"
    )
    set_catalogue(load_catalogue())
    calls = make_calls(200_000)
    # Warm the resolution memo once, as a long-running collector would be.
    bench_cost(calls[:1000], repeat=1)
    rate = bench_cost(calls)
    verdict = "meets" if rate >= TARGET_CALLS_PER_S else "BELOW"
    print(
        f"cost(): {rate:,.0f} calls/s on one core over {len(calls):,} varied calls "
        f"({1e6 / rate:.2f} µs/call) — {verdict} the {TARGET_CALLS_PER_S:,}/s target "
        f"[Python {sys.version.split()[0]}]"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
