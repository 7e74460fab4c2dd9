"""Build large, realistic llmtop databases through the real writer, for benchmarks.

Why the real writer (Writer.submit(CallRecord)) and not bulk INSERTs: the point is to measure the
file llmtop actually produces — interned strings, per-row pricing, its indexes, its page layout —
so bytes/row and query plans match production. Rows are written in time order, as a live
collector would, which is what gives the started_at index its locality.

The shape: 30 days, a diurnal curve, Zipf-skewed tag values (a few hundred distinct values per
tag, a handful dominating spend, as in real fleets), a dozen models, ~2% failures, ~30% streams,
a share of prompt-cache reads, UUID trace and call ids (as LiteLLM makes them).

Tags are correlated the way real ones are: a feature belongs to one endpoint, team and workload,
runs one of its own prompt versions (a new one ships every ten days) on a primary model with a
fallback-ish secondary; a user belongs to one customer; most traffic is prod. (Independent random
tags would make every request its own tag combination, which no real fleet looks like.)
"""

from __future__ import annotations

import math
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmtop.collector.writer import Writer
from llmtop.store.records import CallRecord

#: Bump when the generated data or the file format changes: cached databases carry it in their name.
VERSION = 5
DAYS = 30
CHUNK = 100_000  # submit this many, then flush: the writer drops rows past its queue bound

#: (model, provider, input tokens mean, output tokens mean) — names in LiteLLM's price map.
MODELS: tuple[tuple[str, str, int, int], ...] = (
    ("gpt-4o-mini", "openai", 900, 180),
    ("gpt-4o", "openai", 2200, 350),
    ("gpt-4.1", "openai", 3000, 400),
    ("gpt-4.1-mini", "openai", 1500, 250),
    ("o3-mini", "openai", 2500, 1200),
    ("text-embedding-3-small", "openai", 600, 0),
    ("text-embedding-3-large", "openai", 600, 0),
    ("claude-sonnet-4-5", "anthropic", 4000, 600),
    ("claude-haiku-4-5", "anthropic", 1200, 200),
    ("gpt-4.1-nano", "openai", 1100, 200),
    ("gemini-2.5-flash", "gemini", 1800, 300),
    ("mistral/mistral-small-latest", "mistral", 1000, 200),
)
MODEL_WEIGHTS = (30, 18, 6, 10, 5, 8, 2, 8, 6, 3, 3, 1)

#: tag key -> number of distinct values.
TAG_CARDINALITY: dict[str, int] = {
    "feature": 300,
    "endpoint": 200,
    "team": 40,
    "environment": 3,
    "customer": 500,
    "user": 800,
    "prompt_version": 60,
}
ERRORS: tuple[tuple[str, str], ...] = (
    ("RateLimitError", "429"),
    ("InternalServerError", "500"),
    ("Timeout", "408"),
    ("BadRequestError", "400"),
)


@dataclass(frozen=True)
class Built:
    path: Path
    rows: int
    end: float  # the newest started_at; benchmarks shift their clock to it
    seconds: float  # 0.0 when taken from the cache


def _zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1.0 / (i + 1) ** s for i in range(n)]


def _cumulative(weights: Sequence[float]) -> list[float]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


def generate(rows: int, end: float, seed: int = 1, tasks: bool = False) -> Iterator[CallRecord]:
    """Yield `rows` CallRecords in started_at order over the DAYS before `end`.

    `tasks`: calls carry a correlation_id, as an app or the proxy sets it: a task is one to five
    calls of one feature and user within five minutes (drawn from a random stream of its own, so
    the rest of the data is the same call for call as without tasks).
    """
    rnd = random.Random(seed)
    trnd = random.Random(seed + 1)
    open_tasks: dict[tuple[str, str], tuple[str, int, float]] = {}
    n_tasks = 0
    start = end - DAYS * 86400.0
    n_feat, n_user = TAG_CARDINALITY["feature"], TAG_CARDINALITY["user"]
    feat_cum = _cumulative(_zipf_weights(n_feat))
    user_cum = _cumulative(_zipf_weights(n_user))
    model_cum = _cumulative(MODEL_WEIGHTS)
    features = [
        {
            "feature": f"feature-{i:03d}",
            "endpoint": f"endpoint-{i % TAG_CARDINALITY['endpoint']:03d}",
            "team": f"team-{i % TAG_CARDINALITY['team']:03d}",
            "workload": ("chat", "batch", "agent", "rag")[i % 4],
            "models": rnd.choices(MODELS, cum_weights=model_cum, k=2),
            "prompt": i % TAG_CARDINALITY["prompt_version"],
        }
        for i in range(n_feat)
    ]
    users = [
        (f"user-{i:03d}", f"customer-{rnd.randrange(TAG_CARDINALITY['customer']):03d}")
        for i in range(n_user)
    ]
    # Diurnal load by warping evenly spaced times: with x uniform, t = x - A·sin(ωx)/ω has
    # density ∝ 1/(1 - A·cos(ωx)), peaks once a day, stays sorted (A < 1) and maps whole days
    # onto whole days, so the 30-day span is kept exactly.
    span = end - start
    omega = 2 * math.pi / 86400.0
    amp = 0.5
    block = 10_000
    for b0 in range(0, rows, block):
        k = min(block, rows - b0)
        # Draw each column for a whole block at once: choices(k=...) is ~10x cheaper per value.
        feat_col = rnd.choices(features, cum_weights=feat_cum, k=k)
        user_col = rnd.choices(users, cum_weights=user_cum, k=k)
        for j in range(k):
            x = span * (b0 + j + rnd.random()) / rows
            t = start + x - amp * math.sin(omega * x) / omega
            f = feat_col[j]
            model, provider, in_mean, out_mean = f["models"][0 if rnd.random() < 0.8 else 1]
            u = rnd.random()
            tags = {
                "feature": f["feature"],
                "endpoint": f["endpoint"],
                "team": f["team"],
                "workload": f["workload"],
                "environment": "prod" if u < 0.9 else ("staging" if u < 0.98 else "dev"),
                "customer": user_col[j][1],
                "user": user_col[j][0],
                "prompt_version": f"v{f['prompt']}.{int(x // (10 * 86400))}",
            }
            if tasks:
                who = (f["feature"], user_col[j][0])
                cur = open_tasks.get(who)
                if cur is None or cur[1] <= 0 or t - cur[2] > 300.0:
                    n_tasks += 1
                    cur = (f"task-{n_tasks:08d}", trnd.choice((0, 0, 1, 1, 2, 4)), t)
                else:
                    cur = (cur[0], cur[1] - 1, t)
                open_tasks[who] = cur
                tags["correlation_id"] = cur[0]
            failed = rnd.random() < 0.02
            stream = out_mean > 0 and rnd.random() < 0.3
            inp = max(1, int(rnd.expovariate(1.0 / in_mean)))
            out = 0 if failed or out_mean == 0 else max(1, int(rnd.expovariate(1.0 / out_mean)))
            cached = inp // 2 if not failed and provider != "gemini" and rnd.random() < 0.3 else 0
            latency = 0.15 + rnd.expovariate(1.0 / (0.4 + out / 80.0))
            err = ERRORS[rnd.randrange(len(ERRORS))] if failed else (None, None)
            yield CallRecord(
                started_at=t,
                ended_at=t + latency,
                ttft_ms=min(latency, 0.1 + rnd.random() * 0.5) * 1000.0 if stream else None,
                trace_id=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                litellm_call_id=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                call_type="embedding" if out_mean == 0 else "acompletion",
                stream=stream,
                provider=provider,
                model=model,
                response_model=model,
                model_group=model,
                price_key=model,
                status="failure" if failed else "success",
                error_class=err[0],
                error_code=err[1],
                input_tokens=0 if failed else inp,
                output_tokens=out,
                cache_read_tokens=cached,
                tags=tags,
            )


def build(
    path: Path, rows: int, *, end: float | None = None, seed: int = 1, tasks: bool = False
) -> Built:
    """Write `rows` rows to `path` through Writer, checkpoint the WAL, return where it ends.

    Reuses `path` when it already holds exactly `rows` rows, so re-runs skip the build.
    `tasks`: calls carry correlation ids (see generate) and every fifth task has an outcome row,
    as `record_outcome` writes it (9 in 10 of them successes).
    """
    if path.exists():
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            n, last = conn.execute("SELECT count(*), max(started_at) FROM calls").fetchone()
            conn.close()
            if n == rows and last is not None:
                return Built(path, rows, float(last), 0.0)
        except sqlite3.Error:
            pass
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    end = time.time() if end is None else end
    t0 = time.perf_counter()
    w = Writer(path, batch_size=20_000, max_queue=2 * CHUNK)
    n = 0
    for rec in generate(rows, end, seed, tasks):
        w.submit(rec)
        n += 1
        if n % CHUNK == 0:
            if not w.flush(600):
                raise RuntimeError(f"writer failed: {w.last_error}")
    if not w.flush(600):
        raise RuntimeError(f"writer failed: {w.last_error}")
    w.close()
    if w.written != rows or w.dropped:
        raise RuntimeError(f"wrote {w.written} of {rows} rows, dropped {w.dropped}")
    conn = sqlite3.connect(path)
    if tasks:
        rnd = random.Random(seed + 2)
        ends = conn.execute(
            "SELECT correlation_id, max(started_at) FROM calls"
            " WHERE correlation_id IS NOT NULL GROUP BY correlation_id"
        )
        with conn:
            conn.executemany(
                "INSERT INTO outcomes (correlation_id, at, success) VALUES (?, ?, ?)",
                (
                    (cid, at + 1.0, 1 if rnd.random() < 0.9 else 0)
                    for i, (cid, at) in enumerate(ends)
                    if i % 5 == 0
                ),
            )
    last = conn.execute("SELECT max(started_at) FROM calls").fetchone()[0]
    conn.close()
    checkpoint(path)
    return Built(path, rows, float(last), time.perf_counter() - t0)


def cached_path(cache: Path, rows: int, tasks: bool = False) -> Path:
    return cache / f"{rows}-v{VERSION}{'-tasks' if tasks else ''}.db"


def checkpoint(path: Path) -> None:
    """Fold the WAL into the main file so on-disk size is the steady-state size."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
