"""The collector against the real litellm: one exact row per call, whatever the call did."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
import litellm  # noqa: E402
from litellm.types.utils import ModelResponse, Usage  # noqa: E402
from llmtop.collector import Collector  # noqa: E402

from tests.dbutil import rows, scalar  # noqa: E402
from tests.litellm_release import flush_logging_worker, fresh_logging_worker  # noqa: E402

MSG = [{"role": "user", "content": "SECRET-PROMPT-7f3a what is the capital of France?"}]
REPLY = "SECRET-REPLY-91c2 Paris"

# Rates read from the bundled map by hand (USD per token), to check our engine independently.
GPT4O_MINI_IN, GPT4O_MINI_OUT, GPT4O_MINI_CACHED = 1.5e-07, 6e-07, 7.5e-08


@pytest.fixture
def collector(llmtop_db: Path) -> Iterator[Collector]:
    litellm.logging_callback_manager._reset_all_callbacks()
    fresh_logging_worker()
    c = Collector(db=llmtop_db)
    litellm.callbacks = [c]
    yield c
    litellm.logging_callback_manager._reset_all_callbacks()
    c.core.writer.close()


def settle(c: Collector) -> None:
    """Drain LiteLLM's sync logging pool, then our writer."""
    import time

    deadline = time.time() + 5
    before = -1
    while time.time() < deadline:
        c.flush()
        n = c.core.writer.written
        if n == before:
            break
        before = n
        time.sleep(0.2)
    assert c.flush()


def test_sync_completion_row(collector: Collector, llmtop_db: Path) -> None:
    litellm.completion(
        model="gpt-4o-mini",
        messages=MSG,
        mock_response=REPLY,
        metadata={"feature": "chat", "llmtop": {"team": "search", "experiment": "b"}},
        user="u-42",
    )
    settle(collector)
    (r,) = rows(llmtop_db)
    assert r["status"] == "success"
    assert r["model"] == "gpt-4o-mini"
    assert r["provider"] == "openai"
    assert r["call_type"] == "completion"
    assert (r["input_tokens"], r["output_tokens"]) == (10, 20)
    assert r["cost_usd"] == pytest.approx(10 * GPT4O_MINI_IN + 20 * GPT4O_MINI_OUT, rel=1e-12)
    assert r["litellm_cost_usd"] == pytest.approx(r["cost_usd"], rel=1e-12)
    assert r["unpriced"] == 0 and r["unmetered"] == 0 and r["cache_hit"] == 0
    assert (r["feature"], r["team"], r["user"]) == ("chat", "search", "u-42")
    assert json.loads(r["tags_json"]) == {"experiment": "b"}
    assert r["attempt"] == 1 and r["is_retry"] == 0 and r["is_fallback"] == 0
    assert r["latency_ms"] == pytest.approx((r["ended_at"] - r["started_at"]) * 1000)
    assert r["latency_ms"] >= 0 and r["ttft_ms"] is None
    assert r["price_version"].startswith("litellm-")
    assert r["trace_id"] and r["litellm_call_id"]


async def test_async_completion_and_failure(collector: Collector, llmtop_db: Path) -> None:
    await litellm.acompletion(
        model="gpt-4o-mini", messages=MSG, mock_response=REPLY, metadata={"feature": "async"}
    )
    with pytest.raises(litellm.RateLimitError):
        await litellm.acompletion(
            model="gpt-4o-mini",
            messages=MSG,
            mock_response="litellm.RateLimitError",
            metadata={"feature": "async"},
        )
    await flush_logging_worker()
    await asyncio.sleep(0.05)
    settle(collector)
    ok, bad = sorted(rows(llmtop_db), key=lambda r: r["status"] != "success")
    assert ok["status"] == "success" and ok["feature"] == "async" and ok["output_tokens"] == 20
    assert bad["status"] == "failure"
    assert (bad["error_class"], bad["error_code"]) == ("RateLimitError", "429")
    assert bad["cost_usd"] == 0.0 and bad["input_tokens"] == 0


def test_sync_failure_is_logged(collector: Collector, llmtop_db: Path) -> None:
    with pytest.raises(litellm.ContextWindowExceededError):
        litellm.completion(
            model="gpt-4o-mini", messages=MSG, mock_response="litellm.ContextWindowExceededError"
        )
    settle(collector)
    (r,) = rows(llmtop_db)
    assert r["status"] == "failure" and r["error_class"] == "ContextWindowExceededError"
    assert r["error_code"] == "400"


def test_embedding_row(collector: Collector, llmtop_db: Path) -> None:
    litellm.embedding(
        model="text-embedding-3-small", input=["hello world"], mock_response=[0.1, 0.2]
    )
    settle(collector)
    (r,) = rows(llmtop_db)
    assert r["call_type"] == "embedding"
    assert r["status"] == "success"
    assert r["output_tokens"] == 0
    assert r["cost_usd"] == pytest.approx(r["input_tokens"] * 2e-08, rel=1e-12)


def test_unknown_model_is_unpriced_not_free(collector: Collector, llmtop_db: Path) -> None:
    litellm.completion(model="openai/acme-internal-llm-9000", messages=MSG, mock_response=REPLY)
    settle(collector)
    (r,) = rows(llmtop_db)
    assert r["status"] == "success"
    assert r["cost_usd"] is None
    assert r["litellm_cost_usd"] is None  # LiteLLM's own slo figure would say 0.0
    assert r["unpriced"] == 1
    assert "acme-internal-llm-9000" in r["unpriced_reason"]


def test_openai_cached_tokens(collector: Collector, llmtop_db: Path) -> None:
    usage = Usage(
        prompt_tokens=1200,
        completion_tokens=300,
        total_tokens=1500,
        prompt_tokens_details={"cached_tokens": 1024},
    )
    resp = ModelResponse(
        model="gpt-4o-mini",
        choices=[{"message": {"role": "assistant", "content": REPLY}}],
        usage=usage,
    )
    litellm.completion(model="gpt-4o-mini", messages=MSG, mock_response=resp)
    settle(collector)
    (r,) = rows(llmtop_db)
    assert (r["input_tokens"], r["cache_read_tokens"], r["output_tokens"]) == (1200, 1024, 300)
    # The reference's hand-checked figure: 176 x 1.5e-7 + 1024 x 7.5e-8 + 300 x 6e-7.
    assert r["cost_usd"] == pytest.approx(2.832e-4, rel=1e-12)
    assert r["cache_read_usd"] == pytest.approx(1024 * GPT4O_MINI_CACHED, rel=1e-12)


def test_no_prompt_or_completion_text_is_stored(collector: Collector, llmtop_db: Path) -> None:
    litellm.completion(model="gpt-4o-mini", messages=MSG, mock_response=REPLY)
    with pytest.raises(litellm.RateLimitError):
        litellm.completion(
            model="gpt-4o-mini", messages=MSG, mock_response="litellm.RateLimitError"
        )
    settle(collector)
    collector.core.writer.close()
    blob = b"".join(p.read_bytes() for p in llmtop_db.parent.glob("llmtop.db*"))
    assert len(rows(llmtop_db)) == 2
    assert b"SECRET-PROMPT" not in blob and b"SECRET-REPLY" not in blob


def test_tag_sources_and_sanitising(
    collector: Collector, llmtop_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMTOP_TAGS", "team=platform,environment=prod,region=eu")
    litellm.completion(
        model="gpt-4o-mini",
        messages=MSG,
        mock_response=REPLY,
        metadata={
            "feature": "sum\x1b[31mmarize\x00",
            "customer": "x" * 500,
            "tags": ["workload:batch", "endpoint=/v1/sum", "nightly"],
            "correlation_id": "req-1",
        },
    )
    settle(collector)
    (r,) = rows(llmtop_db)
    assert r["feature"] == "sum[31mmarize"  # control characters stripped, text kept as text
    assert r["customer"] == "x" * 200
    assert (r["workload"], r["endpoint"]) == ("batch", "/v1/sum")
    assert (r["team"], r["environment"]) == ("platform", "prod")  # process defaults fill gaps
    assert r["correlation_id"] == "req-1"
    assert json.loads(r["tags_json"]) == {"region": "eu", "tags": "nightly"}


def test_unusable_tag_input_is_said_once_and_the_rest_is_kept(
    collector: Collector,
    llmtop_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """LLMTOP_TAGS written as `team:search` or with `;` used to vanish without a word; tags past
    the 32 extra ones were dropped silently; non-ASCII keys all collapsed into `___`."""
    monkeypatch.setenv("LLMTOP_TAGS", "team:search;environment=prod, =x,region=eu,owner")
    extra = {f"k{i:02d}": "v" for i in range(40)}
    with caplog.at_level("WARNING", logger="llmtop.collector"):
        for _ in range(2):
            litellm.completion(
                model="gpt-4o-mini",
                messages=MSG,
                mock_response=REPLY,
                metadata={"llmtop": {"équipe": "recherche", "チーム": "検索", **extra}},
            )
        settle(collector)
    r = rows(llmtop_db)[0]
    tags = json.loads(r["tags_json"])
    assert tags["equipe"] == "recherche"  # accents fold; a key of no ASCII letter is no key
    assert "___" not in tags and len(tags) == 32
    assert r["team"] is None  # `team:search;environment=prod` is one malformed part
    warnings = [m for m in caplog.messages if "llmtop" in m]
    assert sum("LLMTOP_TAGS" in m for m in warnings) == 1, warnings
    (env_line,) = [m for m in warnings if "LLMTOP_TAGS" in m]
    assert "'team:search;environment=prod': a key is letters" in env_line
    assert "'=x': no key" in env_line and "'owner': not key=value" in env_line
    assert sum("more than 32 extra tags" in m for m in warnings) == 1, warnings


def test_router_fallback_marks_attempts(collector: Collector, llmtop_db: Path) -> None:
    router = litellm.Router(
        model_list=[
            {
                "model_name": "primary",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_key": "sk-fake",
                    "mock_response": "litellm.InternalServerError",
                },
            },
            {
                "model_name": "backup",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_key": "sk-fake",
                    "mock_response": REPLY,
                },
            },
        ],
        fallbacks=[{"primary": ["backup"]}],
        num_retries=0,
    )
    router.completion(model="primary", messages=MSG, metadata={"feature": "chat"})
    settle(collector)
    rs = rows(llmtop_db)
    failures = [r for r in rs if r["status"] == "failure"]
    (ok,) = [r for r in rs if r["status"] == "success"]
    assert failures and all(r["model_group"] == "primary" for r in failures)
    assert ok["model_group"] == "backup" and ok["original_model_group"] == "primary"
    assert ok["is_fallback"] == 1 and ok["attempt"] >= 2
    assert len({r["trace_id"] for r in rs}) == 1
    assert ok["feature"] == "chat"


def test_drop_count_persisted_when_queue_overflows(llmtop_db: Path) -> None:
    from llmtop.collector.writer import Writer
    from llmtop.store.records import CallRecord

    w = Writer(llmtop_db, max_queue=10)
    w._thread = object()  # type: ignore[assignment]  # hold the thread back so the queue fills
    for i in range(15):
        w.submit(CallRecord(started_at=1000.0 + i, model="gpt-4o-mini", input_tokens=1))
    assert w.dropped == 5
    w._thread = None
    w._start()
    assert w.flush()
    w.close()
    assert scalar(llmtop_db, "SELECT count(*) FROM requests") == 10
    assert scalar(llmtop_db, "SELECT sum(count) FROM drops") == 5


def test_tag_text_of_a_str_enum_is_its_own_whatever_was_seen_before() -> None:
    """Cleaned text is memoised by value; a `(str, Enum)` member (LiteLLM has some) equals its
    plain string as a dict key but prints otherwise, so it must never share that entry."""
    from enum import Enum

    from llmtop.collector.clean import clean_value

    class Provider(str, Enum):
        OPENAI = "openai"

    before = clean_value(Provider.OPENAI)
    assert clean_value("openai") == "openai"
    assert clean_value(Provider.OPENAI) == before == str(Provider.OPENAI)
    assert clean_value(True) == "true" and clean_value(1) == "1" and clean_value(1.0) == "1.0"
