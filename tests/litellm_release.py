"""Which LiteLLM release the tests run on, for the few assertions whose right answer is the
release's own behaviour towards the caller (not our row, which must read the same on all)."""

from __future__ import annotations

import asyncio
import importlib.metadata

import litellm
import litellm.litellm_core_utils.logging_worker

#: The installed release, as a comparable tuple (1, 80, 7).
RELEASE = tuple(int(p) for p in importlib.metadata.version("litellm").split(".")[:3])

#: A sync stream that breaks after its first chunk reaches the caller as MidStreamFallbackError
#: from 1.81 (its stream error handler is shared by sync and async iteration; measured on 1.86.0
#: and later); 1.80's sync iterator raises LiteLLM's mapping of the transport or provider error
#: (APIConnectionError, or InternalServerError for Anthropic's error event; measured on 1.80.7).
MID_STREAM_ERRORS: tuple[type[Exception], ...] = (
    (litellm.exceptions.MidStreamFallbackError,)
    if RELEASE >= (1, 81)
    else (litellm.APIConnectionError, litellm.InternalServerError)
)

#: On 1.80.7 LiteLLM's sync and async success handlers race on the shared call details, and a
#: sync stream with usage reached callbacks with `response_cost` None in 12 of 30 runs (0 of 30
#: on 1.106.2 and 1.110.2; 1.86.0 passes the exact check in CI): LiteLLM's claim is then unknown
#: (NULL on the row), never $0.
STREAM_COST_MAY_BE_LOST = RELEASE < (1, 86)


def fresh_logging_worker() -> None:
    """LiteLLM releases whose async logging worker does not follow a new event loop (no
    `_bound_loop`: before 1.81) keep the queue of the first loop that logged; pytest-asyncio
    gives each test its own loop, so a later test's async hooks would wait on a dead loop. Forget
    the worker's loop state so it starts on the next test's loop, as one app's single loop has."""
    w = litellm.litellm_core_utils.logging_worker.GLOBAL_LOGGING_WORKER
    if not hasattr(w, "_bound_loop"):
        w._queue = None
        w._worker_task = None
        w._sem = None


async def flush_logging_worker(timeout: float = 5.0) -> None:
    """Wait, bounded, for LiteLLM's async logging worker to run what it has queued.

    The worker's own `flush()` joins its queue with no limit; on releases before 1.81 a queue
    left bound to another loop is never drained, and a bare `await flush()` would hang the test
    (and CI) instead of failing on the missing row.
    """
    w = litellm.litellm_core_utils.logging_worker.GLOBAL_LOGGING_WORKER
    try:
        await asyncio.wait_for(w.flush(), timeout)
    except TimeoutError:
        pass
