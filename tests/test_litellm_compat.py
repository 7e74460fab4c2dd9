"""The payload variants of the supported LiteLLM range (README: "Install"), on whichever release
is installed: CI runs this file in the main venv and in one with the oldest supported release.

Each test drives real LiteLLM (over HTTP to the loopback fake server, or its own mock_response)
and checks the row, so a release that changes a field shows here, not in a user's dashboard.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
import litellm  # noqa: E402
from llmtop.collector import Collector  # noqa: E402
from llmtop.collector.compat import (  # noqa: E402
    derive_normalized_error,
    original_group_from_previous,
    refine_bad_request,
    router_deployment_model,
    stream_usage_estimated,
)

from tests.dbutil import rows  # noqa: E402
from tests.fakeserver import FakeLLMServer, Reply  # noqa: E402
from tests.litellm_release import MID_STREAM_ERRORS, fresh_logging_worker  # noqa: E402

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def collector(llmtop_db: Path) -> Iterator[Collector]:
    litellm.logging_callback_manager._reset_all_callbacks()
    fresh_logging_worker()
    c = Collector(db=llmtop_db)
    litellm.callbacks = [c]
    yield c
    litellm.logging_callback_manager._reset_all_callbacks()
    c.core.writer.close()


def settle(c: Collector, expect: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while c.core.writer.written < expect and time.monotonic() < deadline:
        assert c.flush()
        time.sleep(0.05)
    assert c.flush()
    got = rows(Path(c.core.writer.path))
    assert len(got) == expect, got
    return got


def test_stream_without_usage_is_unmetered_whatever_litellm_guessed(
    collector: Collector,
) -> None:
    c = collector
    with FakeLLMServer() as srv:
        srv.script("gpt-4o-mini", [Reply(prompt_tokens=12, completion_tokens=7)])
        list(
            litellm.completion(
                model="openai/gpt-4o-mini",
                messages=MSG,
                stream=True,
                api_base=srv.base_url,
                api_key="sk-fake",
                max_retries=0,
            )
        )
    (r,) = settle(c, 1)
    assert r["litellm_call_id"] and r["trace_id"]
    # Some releases send 0 tokens here, others a tokenizer estimate: neither is a count.
    assert r["unmetered"] == 1 and (r["input_tokens"], r["output_tokens"]) == (0, 0)
    assert r["cost_usd"] is None


def test_stream_with_usage_is_metered(collector: Collector) -> None:
    c = collector
    with FakeLLMServer() as srv:
        srv.script("gpt-4o-mini", [Reply(prompt_tokens=12, completion_tokens=7)])
        list(
            litellm.completion(
                model="openai/gpt-4o-mini",
                messages=MSG,
                stream=True,
                stream_options={"include_usage": True},
                api_base=srv.base_url,
                api_key="sk-fake",
                max_retries=0,
            )
        )
    (r,) = settle(c, 1)
    assert r["unmetered"] == 0 and (r["input_tokens"], r["output_tokens"]) == (12, 7)
    assert r["cost_usd"] and r["cost_usd"] > 0


def test_failure_row_has_call_id_and_litellm_normalized_error(
    collector: Collector,
) -> None:
    c = collector
    with pytest.raises(litellm.RateLimitError):
        litellm.completion(
            model="gpt-4o-mini",
            messages=MSG,
            mock_response=litellm.RateLimitError("slow down", "openai", "gpt-4o-mini"),
        )
    (r,) = settle(c, 1)
    assert r["status"] == "failure" and r["error_class"] == "RateLimitError"
    assert r["normalized_error"] == "429_RATE_LIMIT_EXCEEDED"
    assert r["litellm_call_id"]


def test_derived_normalized_error_matches_litellms_own() -> None:
    """Where the installed LiteLLM has its normaliser, ours agrees with it on a spread of cases."""
    norm = pytest.importorskip("litellm.litellm_core_utils.error_normalization")
    cases = [
        (litellm.RateLimitError("slow down", "openai", "m"), "429"),
        (litellm.AuthenticationError("bad key", "openai", "m"), "401"),
        (litellm.NotFoundError("no such model", "openai", "m"), "404"),
        (litellm.ContextWindowExceededError("context length exceeded", "m", "openai"), "400"),
        (litellm.BadRequestError("bad", "m", "openai"), "400"),
        (litellm.ServiceUnavailableError("down", "openai", "m"), "503"),
        (litellm.InternalServerError("boom", "openai", "m"), "500"),
        (litellm.APIConnectionError("peer closed connection", "openai", "m"), "500"),
        (litellm.Timeout("request timed out", "m", "openai"), "408"),
        (ValueError("weird"), "418"),
    ]
    for exc, status in cases:
        theirs = norm.normalize_error(exc, status, str(exc))
        assert derive_normalized_error(type(exc).__name__, status, str(exc)) == theirs, exc


def test_original_group_from_previous_reads_only_this_trace() -> None:
    shared = [
        {"litellm_trace_id": "other", "model": "x", "metadata": {"model_group": "x"}},
        {"litellm_trace_id": "t1", "model": "primary", "metadata": {"model_group": "primary"}},
        {"litellm_trace_id": "t1", "model": "second", "metadata": {"model_group": "second"}},
    ]
    assert original_group_from_previous(shared, "t1") == "primary"
    assert original_group_from_previous(shared, "t2") is None
    assert original_group_from_previous("not a list", "t1") is None


def test_estimate_detection_needs_all_three_signs() -> None:
    guess = {"prompt_tokens": 8, "completion_tokens": 8, "prompt_tokens_details": None}
    counted = {**guess, "prompt_tokens_details": {"cached_tokens": 0}}
    asked = {"stream": True, "stream_options": {"include_usage": True}}
    assert stream_usage_estimated(guess, {"stream": True}, "openai")
    assert not stream_usage_estimated(counted, {"stream": True}, "openai")
    assert not stream_usage_estimated(guess, asked, "openai")
    assert not stream_usage_estimated(guess, {"stream": True}, "anthropic")


@pytest.mark.parametrize(
    ("provider", "reply", "error_class", "normalized"),
    [
        (
            "anthropic",
            Reply.context_length_exceeded,
            "ContextWindowExceededError",
            "400_CONTEXT_WINDOW_EXCEEDED",
        ),
        (
            "openai",
            Reply.content_filter,
            "ContentPolicyViolationError",
            "400_CONTENT_POLICY_VIOLATION",
        ),
        (
            "openai",
            Reply.context_length_exceeded,
            "ContextWindowExceededError",
            "400_CONTEXT_WINDOW_EXCEEDED",
        ),
        (
            "anthropic",
            Reply.content_filter,
            "ContentPolicyViolationError",
            "400_CONTENT_POLICY_VIOLATION",
        ),
    ],
    ids=[
        "anthropic-context",
        "openai-content-filter",
        "openai-context",
        "anthropic-content-filter",
    ],
)
def test_400_subclass_reads_the_same_on_every_release(
    collector: Collector, provider: str, reply: Any, error_class: str, normalized: str
) -> None:
    """1.80 files Anthropic's context-length error and OpenAI's content filter (1.109+ again the
    latter) as plain BadRequestErrors; the row names the subclass on every release."""
    with FakeLLMServer() as srv:
        srv.script(None, [reply()])
        kw: dict[str, Any] = (
            {"api_base": srv.anthropic_base, "api_key": "sk-ant-fake"}
            if provider == "anthropic"
            else {"api_base": srv.base_url, "api_key": "sk-fake", "max_retries": 0}
        )
        model = "anthropic/claude-sonnet-4-5" if provider == "anthropic" else "openai/gpt-4o-mini"
        with pytest.raises(litellm.BadRequestError):
            litellm.completion(model=model, messages=MSG, **kw)
    (r,) = settle(collector, 1)
    assert (r["status"], r["error_class"], r["normalized_error"]) == (
        "failure",
        error_class,
        normalized,
    )


def test_mid_stream_cut_reads_as_the_transport_error(collector: Collector) -> None:
    """The caller sees what its release raises (MidStreamFallbackError from 1.81, LiteLLM's
    APIConnectionError before); the row names the dropped connection either way."""
    with FakeLLMServer() as srv:
        srv.script(None, [Reply.stream_cut(after=2)])
        with pytest.raises(MID_STREAM_ERRORS):
            list(
                litellm.completion(
                    model="openai/gpt-4o-mini",
                    messages=MSG,
                    stream=True,
                    api_base=srv.base_url,
                    api_key="sk-fake",
                    max_retries=0,
                )
            )
    (r,) = settle(collector, 1)
    assert (r["error_class"], r["normalized_error"]) == (
        "RemoteProtocolError",
        "500_PROVIDER_CONNECTION_ERROR",
    )
    assert r["stream"] == 1 and r["error_code"] is None


def test_refine_bad_request_only_refines_plain_400s_with_litellms_phrases() -> None:
    ctx = "This model's maximum context length is 128000 tokens."
    policy = "Your request was rejected as a result of our safety system."
    assert refine_bad_request("BadRequestError", ctx) == "ContextWindowExceededError"
    too_long = "prompt is too long: 210000 tokens > 200000 maximum"
    assert refine_bad_request("BadRequestError", too_long) == "ContextWindowExceededError"
    assert refine_bad_request("BadRequestError", policy) == "ContentPolicyViolationError"
    assert refine_bad_request("BadRequestError", "bad temperature") == "BadRequestError"
    assert refine_bad_request("RateLimitError", ctx) == "RateLimitError"
    assert refine_bad_request("BadRequestError", None) == "BadRequestError"


def test_router_deployment_model_adds_only_a_provider_prefix() -> None:
    assert router_deployment_model("gpt-4o-mini", "openai/gpt-4o-mini") == "openai/gpt-4o-mini"
    assert router_deployment_model("openai/gpt-4o-mini", "openai/gpt-4o-mini") == (
        "openai/gpt-4o-mini"
    )
    # An alias deployment is another name; a deeper path is not just a provider prefix.
    assert router_deployment_model("gpt-4o", "azure/my-deployment") == "gpt-4o"
    assert router_deployment_model("gpt-4o-mini", "a/b/gpt-4o-mini") == "gpt-4o-mini"
    assert router_deployment_model("gpt-4o-mini", None) == "gpt-4o-mini"
    assert router_deployment_model(None, "openai/gpt-4o-mini") is None
