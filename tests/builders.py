"""Fixture databases built through the real collector path (mapping, pricing, writer).

`payload()` makes the kwargs LiteLLM hands a logging callback; `write()` feeds them to
CollectorCore.log exactly as the registered Collector would, then waits for the writer.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from llmtop.collector.core import CollectorCore
from llmtop.collector.writer import Writer


def payload(
    *,
    start: float,
    latency: float = 0.5,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    input_tokens: int = 100,
    output_tokens: int = 50,
    cached: int = 0,
    status: str = "success",
    error_class: str | None = None,
    error_code: str | None = None,
    stream: bool = False,
    ttft: float | None = None,
    trace_id: str | None = None,
    retries: int = 0,
    fallbacks: int = 0,
    model_group: str = "",
    original_model_group: str | None = None,
    **tags: Any,
) -> dict[str, Any]:
    failed = status == "failure"
    slo = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:8],
        "litellm_call_id": str(uuid.uuid4()),
        "trace_id": trace_id or str(uuid.uuid4()),
        "call_type": "completion",
        "status": status,
        "stream": stream,
        "model": model,
        "custom_llm_provider": provider,
        "model_group": model_group,
        "startTime": start,
        "endTime": start + latency,
        "completionStartTime": start + (ttft if ttft is not None else latency),
        "prompt_tokens": 0 if failed else input_tokens,
        "completion_tokens": 0 if failed else output_tokens,
        "cache_hit": None,
        "request_tags": [],
        "end_user": None,
        "metadata": {
            "usage_object": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
            }
        },
        "error_information": {"error_class": error_class or "", "error_code": error_code or ""}
        if failed
        else {},
        "model_map_information": {"model_map_key": model},
        "response": None if failed else {"model": model},
    }
    md: dict[str, Any] = dict(tags)
    if retries:
        md["attempted_retries"] = retries
    if fallbacks:
        md["attempted_fallbacks"] = fallbacks
    if original_model_group:
        md["original_model_group"] = original_model_group
    return {
        "standard_logging_object": slo,
        "litellm_params": {"metadata": md},
        "optional_params": {},
    }


def write(db: Path, payloads: list[dict[str, Any]]) -> int:
    """Write through a private writer (not the process-wide one) and wait until it is on disk."""
    w = Writer(db)
    core = CollectorCore(db, writer=w)
    for p in payloads:
        failed = p["standard_logging_object"]["status"] == "failure"
        core.log(p, None, None, None, failed)
    assert w.flush(30), w.last_error
    w.close()
    return w.written


def prompt_v2_ships(now: float) -> list[dict[str, Any]]:
    """The dashboard tests' incident: prompt v2 ships and support-summarize's input grows 10x,
    in the 4 minutes before `now`."""
    return [
        payload(
            start=now - 240 + i * 8,
            feature="support-summarize",
            team="support",
            prompt_version="v2",
            input_tokens=20000,
            output_tokens=200,
        )
        for i in range(30)
    ]
