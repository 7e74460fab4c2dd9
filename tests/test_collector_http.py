"""The collector behind LiteLLM's real provider code, over real HTTP to a local fake server.

Why HTTP and not `mock_response`: usage accounting for streams, cached and reasoning tokens,
Router retries and fallbacks, and mid-stream failures are decided inside LiteLLM's OpenAI and
Anthropic handlers, which `mock_response` skips. Each test asserts the exact stored row, with our
cost recomputed here from rates read straight out of LiteLLM's bundled price JSON (not from
llmtop.pricing), so a wrong row cannot be hidden by a wrong price engine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
import litellm  # noqa: E402
import litellm.utils  # noqa: E402
from llmtop.collector import Collector  # noqa: E402

from tests.dbutil import rows  # noqa: E402
from tests.fakeserver import FakeLLMServer, Reply  # noqa: E402
from tests.litellm_release import (  # noqa: E402
    MID_STREAM_ERRORS,
    STREAM_COST_MAY_BE_LOST,
    flush_logging_worker,
    fresh_logging_worker,
)

MSG = [{"role": "user", "content": "hello"}]


@cache
def _price_map() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.origin is not None
    path = Path(spec.origin).parent / "model_prices_and_context_window_backup.json"
    return json.loads(path.read_text())


def rate(model: str, key: str) -> float:
    """One USD-per-token rate from the bundled map, read independently of llmtop.pricing."""
    return float(_price_map()[model][key])


@pytest.fixture
def collector(llmtop_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    # Router retries wait INITIAL_RETRY_DELAY (+ jitter) between attempts: not in a test.
    monkeypatch.setattr(litellm.utils, "INITIAL_RETRY_DELAY", 0, raising=False)
    monkeypatch.setattr(litellm.utils, "JITTER", 0, raising=False)
    litellm.logging_callback_manager._reset_all_callbacks()
    fresh_logging_worker()
    c = Collector(db=llmtop_db)
    litellm.callbacks = [c]
    yield c
    litellm.logging_callback_manager._reset_all_callbacks()
    c.core.writer.close()


@pytest.fixture
def srv() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as s:
        yield s


def openai_kw(srv: FakeLLMServer) -> dict[str, Any]:
    # max_retries=0: the OpenAI SDK's own retries are invisible to callbacks.
    return {"api_base": srv.base_url, "api_key": "sk-fake", "max_retries": 0}


def settle(c: Collector, expect: int) -> list[dict[str, Any]]:
    """Wait (bounded) for LiteLLM's logging thread pool to hand over `expect` rows, then read."""
    deadline = time.monotonic() + 10
    while True:
        assert c.flush()
        if c.core.writer.written >= expect or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.1)  # a surplus row (the bug this would hide) gets its chance to arrive
    assert c.flush()
    got = rows(Path(c.core.writer.path))
    assert len(got) == expect, got
    return got


async def asettle(c: Collector, expect: int) -> list[dict[str, Any]]:
    """Async success hooks are tasks on this loop: let them run before reading."""
    deadline = time.monotonic() + 10
    while True:
        await flush_logging_worker()
        await asyncio.sleep(0.02)
        assert c.flush()
        if c.core.writer.written >= expect or time.monotonic() > deadline:
            break
    await asyncio.sleep(0.1)
    await flush_logging_worker()
    assert c.flush()
    got = rows(Path(c.core.writer.path))
    assert len(got) == expect, got
    return got


def assert_success_base(r: dict[str, Any]) -> None:
    assert r["status"] == "success"
    assert r["error_class"] is None and r["error_code"] is None and r["normalized_error"] is None
    assert r["unpriced"] == 0 and r["cache_hit"] == 0
    assert r["trace_id"] and r["litellm_call_id"]


def mini_cost(inp: int, out: int, cached: int = 0) -> float:
    return (
        (inp - cached) * rate("gpt-4o-mini", "input_cost_per_token")
        + cached * rate("gpt-4o-mini", "cache_read_input_token_cost")
        + out * rate("gpt-4o-mini", "output_cost_per_token")
    )


# --- streams -----------------------------------------------------------------------------------


def test_stream_with_usage(collector: Collector, srv: FakeLLMServer) -> None:
    srv.script("gpt-4o-mini", [Reply(prompt_tokens=12, completion_tokens=7)])
    chunks = list(
        litellm.completion(
            model="openai/gpt-4o-mini",
            messages=MSG,
            stream=True,
            stream_options={"include_usage": True},
            **openai_kw(srv),
        )
    )
    assert chunks
    (r,) = settle(collector, 1)
    assert_success_base(r)
    assert (r["model"], r["provider"], r["call_type"]) == ("gpt-4o-mini", "openai", "completion")
    assert r["model_group"] is None and r["original_model_group"] is None
    assert r["stream"] == 1 and r["unmetered"] == 0
    assert (r["input_tokens"], r["output_tokens"]) == (12, 7)
    assert (r["cache_read_tokens"], r["cache_write_tokens"], r["reasoning_tokens"]) == (0, 0, 0)
    assert r["cost_usd"] == pytest.approx(mini_cost(12, 7), rel=1e-9)
    # On 1.80 LiteLLM sometimes loses its own claim (a race of its handlers): unknown, not $0.
    lost = STREAM_COST_MAY_BE_LOST and r["litellm_cost_usd"] is None
    assert lost or r["litellm_cost_usd"] == pytest.approx(mini_cost(12, 7), rel=1e-9)
    assert r["ttft_ms"] is not None and 0 <= r["ttft_ms"] <= r["latency_ms"] + 1e-6
    assert (r["attempt"], r["is_retry"], r["is_fallback"]) == (1, 0, 0)


def test_stream_without_usage_is_unmetered_not_free(
    collector: Collector, srv: FakeLLMServer
) -> None:
    from litellm.integrations.custom_logger import CustomLogger

    claims: list[Any] = []

    class Claim(CustomLogger):  # what LiteLLM told callbacks the call cost
        def log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
            claims.append(kwargs.get("response_cost"))

    litellm.callbacks = [collector, Claim()]
    srv.script("gpt-4o-mini", [Reply(prompt_tokens=12, completion_tokens=7)])
    list(
        litellm.completion(model="openai/gpt-4o-mini", messages=MSG, stream=True, **openai_kw(srv))
    )
    # The trap itself: LiteLLM did not ask a non-OpenAI base URL for usage.
    (req,) = srv.requests_to("/v1/chat/completions")
    assert not (req.body.get("stream_options") or {}).get("include_usage")
    (r,) = settle(collector, 1)
    assert_success_base(r)
    assert r["stream"] == 1 and r["unmetered"] == 1
    assert (r["input_tokens"], r["output_tokens"]) == (0, 0)  # never a tokenizer's estimate
    assert r["cost_usd"] is None  # unknown, not $0
    # What LiteLLM claimed, kept for comparison: $0 on releases that count nothing, a price of
    # estimated tokens on those that guess (from 1.109 on). On 1.80 the race of its handlers
    # can hand us the call before the claim is set (seen with frequent garbage collections):
    # unknown then, never $0.
    lost = STREAM_COST_MAY_BE_LOST and r["litellm_cost_usd"] is None
    assert len(claims) == 1 and (lost or r["litellm_cost_usd"] == pytest.approx(claims[0]))
    assert r["ttft_ms"] is not None


def test_mid_stream_error_is_a_failure_row(collector: Collector, srv: FakeLLMServer) -> None:
    srv.script("gpt-4o-mini", [Reply.stream_cut(after=2)])
    got: list[Any] = []
    with pytest.raises(MID_STREAM_ERRORS):
        for chunk in litellm.completion(
            model="openai/gpt-4o-mini",
            messages=MSG,
            stream=True,
            stream_options={"include_usage": True},
            **openai_kw(srv),
        ):
            got.append(chunk)
    assert got  # the failure really was mid-stream
    (r,) = settle(collector, 1)
    assert r["status"] == "failure"
    assert r["error_class"] == "RemoteProtocolError"
    assert r["normalized_error"] == "500_PROVIDER_CONNECTION_ERROR"
    assert r["error_code"] is None  # a dropped connection has no HTTP status
    # LiteLLM's payload says stream=None here; the row must still be a stream, with its TTFT.
    assert r["stream"] == 1 and r["ttft_ms"] is not None
    assert r["unmetered"] == 0
    assert (r["input_tokens"], r["output_tokens"], r["cost_usd"]) == (0, 0, 0.0)
    assert r["model"] == "gpt-4o-mini" and r["provider"] == "openai"
    assert (r["attempt"], r["is_retry"], r["is_fallback"]) == (1, 0, 0)


# --- Router retries and fallbacks --------------------------------------------------------------


def _retry_router(srv: FakeLLMServer) -> litellm.Router:
    return litellm.Router(
        model_list=[
            {
                "model_name": "chat",
                "litellm_params": {"model": "openai/gpt-4o-mini", **openai_kw(srv)},
            }
        ],
        num_retries=1,
    )


def _assert_retry_rows(rs: list[dict[str, Any]]) -> None:
    bad, ok = rs
    assert bad["trace_id"] == ok["trace_id"]
    assert bad["litellm_call_id"] != ok["litellm_call_id"]
    assert bad["status"] == "failure"
    assert (bad["error_class"], bad["error_code"]) == ("RateLimitError", "429")
    assert bad["normalized_error"] == "429_RATE_LIMIT_EXCEEDED"
    assert (bad["attempt"], bad["is_retry"], bad["is_fallback"]) == (1, 0, 0)
    assert (bad["input_tokens"], bad["output_tokens"], bad["cost_usd"]) == (0, 0, 0.0)
    assert_success_base(ok)
    assert (ok["attempt"], ok["is_retry"], ok["is_fallback"]) == (2, 1, 0)
    for r in rs:
        assert (r["model"], r["provider"]) == ("openai/gpt-4o-mini", "openai")
        assert (r["model_group"], r["original_model_group"]) == ("chat", "chat")
    assert (ok["input_tokens"], ok["output_tokens"]) == (10, 5)
    assert ok["cost_usd"] == pytest.approx(mini_cost(10, 5), rel=1e-9)
    assert ok["litellm_cost_usd"] == pytest.approx(mini_cost(10, 5), rel=1e-9)


def test_router_retry_after_429(collector: Collector, srv: FakeLLMServer) -> None:
    srv.script("gpt-4o-mini", [Reply.rate_limit(), Reply()])
    _retry_router(srv).completion(model="chat", messages=MSG)
    assert len(srv.requests_to("/v1/chat/completions")) == 2
    _assert_retry_rows(settle(collector, 2))


async def test_async_router_retry_after_429(collector: Collector, srv: FakeLLMServer) -> None:
    srv.script("gpt-4o-mini", [Reply.rate_limit(), Reply()])
    await _retry_router(srv).acompletion(model="chat", messages=MSG)
    rs = await asettle(collector, 2)
    _assert_retry_rows(rs)
    assert {r["call_type"] for r in rs} == {"acompletion"}


def test_router_fallback_after_500(collector: Collector, srv: FakeLLMServer) -> None:
    router = litellm.Router(
        model_list=[
            {
                "model_name": "primary",
                "litellm_params": {"model": "openai/gpt-4o", **openai_kw(srv)},
            },
            {
                "model_name": "backup",
                "litellm_params": {"model": "openai/gpt-4o-mini", **openai_kw(srv)},
            },
        ],
        fallbacks=[{"primary": ["backup"]}],
        num_retries=0,
    )
    srv.script("gpt-4o", [Reply.server_error()])
    router.completion(model="primary", messages=MSG)
    bad, ok = settle(collector, 2)
    assert bad["trace_id"] == ok["trace_id"]
    assert bad["status"] == "failure"
    assert (bad["error_class"], bad["error_code"]) == ("InternalServerError", "500")
    assert (bad["model"], bad["model_group"], bad["original_model_group"]) == (
        "openai/gpt-4o",
        "primary",
        "primary",
    )
    assert (bad["attempt"], bad["is_retry"], bad["is_fallback"]) == (1, 0, 0)
    assert_success_base(ok)
    assert (ok["model"], ok["model_group"], ok["original_model_group"]) == (
        "openai/gpt-4o-mini",
        "backup",
        "primary",
    )
    assert (ok["attempt"], ok["is_retry"], ok["is_fallback"]) == (2, 0, 1)
    assert ok["cost_usd"] == pytest.approx(mini_cost(10, 5), rel=1e-9)


# --- cached and reasoning tokens ---------------------------------------------------------------


def test_openai_cached_tokens(collector: Collector, srv: FakeLLMServer) -> None:
    srv.script(
        "gpt-4o-mini", [Reply(prompt_tokens=1200, completion_tokens=300, cached_tokens=1024)]
    )
    litellm.completion(model="openai/gpt-4o-mini", messages=MSG, **openai_kw(srv))
    (r,) = settle(collector, 1)
    assert_success_base(r)
    assert (r["input_tokens"], r["output_tokens"]) == (1200, 300)
    assert (r["cache_read_tokens"], r["cache_write_tokens"], r["reasoning_tokens"]) == (1024, 0, 0)
    want = mini_cost(1200, 300, cached=1024)
    assert want == pytest.approx(2.832e-4, rel=1e-12)  # the reference's hand computation
    assert r["cost_usd"] == pytest.approx(want, rel=1e-9)
    assert r["litellm_cost_usd"] == pytest.approx(want, rel=1e-9)
    assert r["cache_read_usd"] == pytest.approx(
        1024 * rate("gpt-4o-mini", "cache_read_input_token_cost"), rel=1e-9
    )
    assert r["stream"] == 0 and r["ttft_ms"] is None and r["unmetered"] == 0


def _claude_cost() -> float:
    m = "claude-sonnet-4-5"
    return (
        100 * rate(m, "input_cost_per_token")
        + 1000 * rate(m, "cache_read_input_token_cost")
        + 200 * rate(m, "cache_creation_input_token_cost")
        + 50 * rate(m, "output_cost_per_token")
    )


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_cache_read_and_write(
    collector: Collector, srv: FakeLLMServer, stream: bool
) -> None:
    srv.script(
        "claude-sonnet-4-5",
        [Reply(input_tokens=100, cache_read=1000, cache_write=200, output_tokens=50)],
    )
    resp = litellm.completion(
        model="anthropic/claude-sonnet-4-5",
        messages=MSG,
        api_base=srv.anthropic_base,
        api_key="sk-ant-fake",
        stream=stream,
    )
    if stream:
        list(resp)
    (r,) = settle(collector, 1)
    assert_success_base(r)
    assert (r["model"], r["provider"]) == ("claude-sonnet-4-5", "anthropic")
    # prompt_tokens counts uncached + cache read + cache write, as LiteLLM reports it.
    assert (r["input_tokens"], r["output_tokens"]) == (1300, 50)
    assert (r["cache_read_tokens"], r["cache_write_tokens"]) == (1000, 200)
    assert _claude_cost() == pytest.approx(0.0021, rel=1e-12)  # the reference's figure
    assert r["cost_usd"] == pytest.approx(_claude_cost(), rel=1e-9)
    # A sync stream on 1.80 may lose LiteLLM's own claim (the race above): unknown, never $0.
    lost = stream and STREAM_COST_MAY_BE_LOST and r["litellm_cost_usd"] is None
    assert lost or r["litellm_cost_usd"] == pytest.approx(_claude_cost(), rel=1e-9)
    assert r["cache_write_usd"] == pytest.approx(
        200 * rate("claude-sonnet-4-5", "cache_creation_input_token_cost"), rel=1e-9
    )
    assert r["stream"] == int(stream) and (r["ttft_ms"] is not None) == stream


def test_reasoning_tokens(collector: Collector, srv: FakeLLMServer) -> None:
    srv.script("o3-mini", [Reply(prompt_tokens=50, completion_tokens=400, reasoning_tokens=320)])
    litellm.completion(model="openai/o3-mini", messages=MSG, **openai_kw(srv))
    (r,) = settle(collector, 1)
    assert_success_base(r)
    assert (r["model"], r["input_tokens"], r["output_tokens"]) == ("o3-mini", 50, 400)
    assert r["reasoning_tokens"] == 320
    # o3-mini has no separate reasoning rate: reasoning is billed inside output tokens.
    assert "output_cost_per_reasoning_token" not in _price_map()["o3-mini"]
    want = 50 * rate("o3-mini", "input_cost_per_token") + 400 * rate(
        "o3-mini", "output_cost_per_token"
    )
    assert r["cost_usd"] == pytest.approx(want, rel=1e-9)
    assert r["litellm_cost_usd"] == pytest.approx(want, rel=1e-9)


# --- async and embeddings ----------------------------------------------------------------------


async def test_async_stream_with_usage(collector: Collector, srv: FakeLLMServer) -> None:
    srv.script("gpt-4o-mini", [Reply(prompt_tokens=12, completion_tokens=7)])
    resp = await litellm.acompletion(
        model="openai/gpt-4o-mini",
        messages=MSG,
        stream=True,
        stream_options={"include_usage": True},
        **openai_kw(srv),
    )
    async for _ in resp:
        pass
    (r,) = await asettle(collector, 1)
    assert_success_base(r)
    assert (r["call_type"], r["stream"], r["unmetered"]) == ("acompletion", 1, 0)
    assert (r["input_tokens"], r["output_tokens"]) == (12, 7)
    assert r["cost_usd"] == pytest.approx(mini_cost(12, 7), rel=1e-9)
    assert r["ttft_ms"] is not None


async def test_async_completion_failure(collector: Collector, srv: FakeLLMServer) -> None:
    srv.script("gpt-4o-mini", [Reply.context_length_exceeded()])
    with pytest.raises(litellm.ContextWindowExceededError):
        await litellm.acompletion(model="openai/gpt-4o-mini", messages=MSG, **openai_kw(srv))
    (r,) = await asettle(collector, 1)
    assert r["status"] == "failure" and r["call_type"] == "acompletion"
    assert (r["error_class"], r["error_code"]) == ("ContextWindowExceededError", "400")
    assert (r["input_tokens"], r["cost_usd"], r["stream"]) == (0, 0.0, 0)


def test_embedding_over_http(collector: Collector, srv: FakeLLMServer) -> None:
    srv.script("text-embedding-3-small", [Reply(prompt_tokens=9)])
    litellm.embedding(model="openai/text-embedding-3-small", input=["a b c"], **openai_kw(srv))
    (r,) = settle(collector, 1)
    assert_success_base(r)
    assert (r["call_type"], r["model"], r["provider"]) == (
        "embedding",
        "text-embedding-3-small",
        "openai",
    )
    assert (r["input_tokens"], r["output_tokens"], r["stream"]) == (9, 0, 0)
    want = 9 * rate("text-embedding-3-small", "input_cost_per_token")
    assert r["cost_usd"] == pytest.approx(want, rel=1e-9)
    assert r["litellm_cost_usd"] == pytest.approx(want, rel=1e-9)


async def test_async_embedding_over_http(collector: Collector, srv: FakeLLMServer) -> None:
    srv.script("text-embedding-3-small", [Reply(prompt_tokens=9)])
    await litellm.aembedding(
        model="openai/text-embedding-3-small", input=["a b c"], **openai_kw(srv)
    )
    (r,) = await asettle(collector, 1)
    assert_success_base(r)
    assert (r["call_type"], r["input_tokens"]) == ("aembedding", 9)
    want = 9 * rate("text-embedding-3-small", "input_cost_per_token")
    assert r["cost_usd"] == pytest.approx(want, rel=1e-9)
