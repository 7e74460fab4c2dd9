"""A writer process of the fleet tests and benchmarks/fleet.py: `python -m tests.pg_fleet URL
HOST N [SEED [--wait]]` writes N calls through the real Writer (pricing, mapping of a CallRecord, the
Postgres or SQLite sink) and prints `written dropped ok|not-flushed began done` (epoch seconds
of the first submit and of the flush's end, so a benchmark can leave out interpreter start-up;
`--wait`: print `ready` once the records are built and start on a line from stdin).

A separate process per writer, each with its own connection, as separate hosts would be.
"""

from __future__ import annotations

import random
import sys
import time

from llmtop.collector.writer import Writer
from llmtop.store.records import CallRecord


def record(rng: random.Random, host: str, i: int, t: float) -> CallRecord:
    failed = rng.random() < 0.1
    return CallRecord(
        started_at=t,
        ended_at=t + rng.uniform(0.05, 3.0),
        provider="openai",
        model=rng.choice(["gpt-4o-mini", "gpt-4o"]),
        status="failure" if failed else "success",
        error_class="RateLimitError" if failed else None,
        error_code="429" if failed else None,
        input_tokens=rng.randrange(100, 3000),
        output_tokens=rng.randrange(0, 800),
        tags={
            "feature": rng.choice(["search", "chat", "summarise"]),
            "customer": f"c{rng.randrange(50)}",
            "user": f"{host}-u{rng.randrange(20)}",
            "correlation_id": f"{host}-{i}",
        },
    )


def main(argv: list[str]) -> int:
    url, host, n = argv[0], argv[1], int(argv[2])
    seed = int(argv[3]) if len(argv) > 3 else 0
    rng = random.Random(f"{host}-{seed}")
    w = Writer(url)
    t0 = time.time() - 3600
    recs = [record(rng, host, i, t0 + i * 0.01) for i in range(n)]
    if len(argv) > 4 and argv[4] == "--wait":
        # benchmarks/fleet.py starts every writer at once: ready, then a line on stdin.
        print("ready", flush=True)
        sys.stdin.readline()
    began = time.time()
    for rec in recs:
        w.submit(rec)
    ok = w.flush(120)
    done = time.time()
    w.close(30)
    print(w.written, w.dropped, "ok" if ok else "not-flushed", began, done, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
