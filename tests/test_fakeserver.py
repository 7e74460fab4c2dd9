"""The fake LLM server, driven through the real LiteLLM.

These tests pin down two things at once: that the fake speaks the wire formats well
enough for LiteLLM's real provider code, and how LiteLLM 1.106.2 reports what the
server sent (usage mapping, retries, mid-stream failures). Other test modules rely
on both, so a LiteLLM upgrade that changes either should fail here first.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

import litellm  # noqa: E402
import litellm.exceptions  # noqa: E402
import litellm.utils  # noqa: E402

from tests.fakeserver import (  # noqa: E402
    CHAT_PATH,
    EMBEDDINGS_PATH,
    MESSAGES_PATH,
    FakeLLMServer,
    Reply,
)
from tests.litellm_release import MID_STREAM_ERRORS  # noqa: E402

MESSAGES = [{"role": "user", "content": "hi"}]
OPENAI_MODEL = "openai/gpt-4o-mini"
REFERENCE_LITELLM = "1.106.2"  # the release .ci/constraints.txt installs in the main venv
ANTHROPIC_MODEL = "anthropic/claude-sonnet-4-5"


@pytest.fixture
def srv() -> Any:
    """A fresh server per test, so scripts and recorded requests never leak across tests."""
    with FakeLLMServer() as server:
        yield server


def _kwargs(server: FakeLLMServer, model: str) -> dict[str, Any]:
    """Call kwargs for either provider; ``max_retries=0`` stops the OpenAI SDK retrying."""
    if model.startswith("anthropic/"):
        return {"model": model, "api_base": server.anthropic_base, "api_key": "sk-ant-fake"}
    return {"model": model, "api_base": server.base_url, "api_key": "sk-fake", "max_retries": 0}


def _post(url: str, payload: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """Raw POST without LiteLLM, for checking the fake's own behaviour."""
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


# -- OpenAI chat completions ------------------------------------------------------------


def test_completion_returns_scripted_usage(srv: FakeLLMServer) -> None:
    srv.script(
        "gpt-4o-mini",
        [
            Reply(
                prompt_tokens=100,
                completion_tokens=20,
                cached_tokens=40,
                reasoning_tokens=7,
                response_model="gpt-4o-mini-2024-07-18",
            )
        ],
    )
    resp = litellm.completion(messages=MESSAGES, **_kwargs(srv, OPENAI_MODEL))

    assert resp.model == "gpt-4o-mini-2024-07-18"
    assert resp.usage.prompt_tokens == 100
    assert resp.usage.completion_tokens == 20
    assert resp.usage.prompt_tokens_details.cached_tokens == 40
    assert resp.usage.completion_tokens_details.reasoning_tokens == 7
    [(path, body, headers)] = srv.requests
    assert path == CHAT_PATH
    assert body["model"] == "gpt-4o-mini"  # LiteLLM strips the provider prefix
    assert headers["authorization"] == "Bearer sk-fake"


def test_default_reply_echoes_requested_model(srv: FakeLLMServer) -> None:
    resp = litellm.completion(messages=MESSAGES, **_kwargs(srv, OPENAI_MODEL))
    assert resp.model == "gpt-4o-mini"
    assert resp.choices[0].message.content == Reply().content


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_usage_only_when_asked(srv: FakeLLMServer, include_usage: bool) -> None:
    srv.script(None, [Reply(prompt_tokens=33, completion_tokens=4, cached_tokens=11)])
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(
        litellm.completion(messages=MESSAGES, stream=True, **extra, **_kwargs(srv, OPENAI_MODEL))
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == Reply().content
    usages = [u for c in chunks if (u := getattr(c, "usage", None)) is not None]
    if include_usage:
        assert usages[-1].prompt_tokens == 33
        assert usages[-1].completion_tokens == 4
        assert usages[-1].prompt_tokens_details.cached_tokens == 11
    else:
        assert usages == []
    assert srv.requests[0].body.get("stream_options") == (extra.get("stream_options"))


def test_delay_makes_time_to_first_token_measurable(srv: FakeLLMServer) -> None:
    srv.script(None, [Reply(delay=0.3, chunk_delay=0.02)])
    start = time.monotonic()
    first: float | None = None
    for chunk in litellm.completion(messages=MESSAGES, stream=True, **_kwargs(srv, OPENAI_MODEL)):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.monotonic() - start
    total = time.monotonic() - start
    assert first is not None and first >= 0.3
    # The later chunks were spaced out too. Bounded from the request, not from the first chunk:
    # a client slow to read the first chunk finds the next ones already buffered (it failed so
    # on a loaded machine), but none can arrive before the server has sent it.
    assert total >= 0.3 + 0.02 * 3


# -- retries and error mapping ------------------------------------------------------------


def test_router_retries_429_once(srv: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # LiteLLM reads these at import time and ignores `retry-after: 0` (it only honours
    # 0 < retry_after <= 60), so patch the backoff itself in case litellm was imported
    # before the env vars were set.
    monkeypatch.setattr(litellm.utils, "INITIAL_RETRY_DELAY", 0.0)
    monkeypatch.setattr(litellm.utils, "JITTER", 0.0)
    srv.script("gpt-4o-mini", [Reply.rate_limit()])
    router = litellm.Router(
        model_list=[{"model_name": "gpt", "litellm_params": _kwargs(srv, OPENAI_MODEL)}],
        num_retries=1,
    )

    resp = router.completion(model="gpt", messages=MESSAGES)

    assert resp.usage.prompt_tokens == Reply().prompt_tokens
    assert len(srv.requests) == 2
    # Both attempts came from the Router, none from the OpenAI SDK's own retry loop.
    assert [r.headers.get("x-stainless-retry-count") for r in srv.requests] == ["0", "0"]


def test_router_gives_up_after_its_retries(
    srv: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(litellm.utils, "INITIAL_RETRY_DELAY", 0.0)
    monkeypatch.setattr(litellm.utils, "JITTER", 0.0)
    srv.script(None, [Reply.rate_limit(), Reply.rate_limit(), Reply.rate_limit()])
    router = litellm.Router(
        model_list=[{"model_name": "gpt", "litellm_params": _kwargs(srv, OPENAI_MODEL)}],
        num_retries=1,
    )
    with pytest.raises(litellm.RateLimitError):
        router.completion(model="gpt", messages=MESSAGES)
    assert len(srv.requests) == 2
    assert srv.pending() == 1


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL])
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.rate_limit(), litellm.RateLimitError),
        (Reply.server_error(), litellm.InternalServerError),
        (Reply.context_length_exceeded(), litellm.ContextWindowExceededError),
        (Reply.content_filter(), litellm.ContentPolicyViolationError),
    ],
    ids=["429", "500", "context", "content_filter"],
)
def test_errors_map_to_litellm_exceptions(
    srv: FakeLLMServer, model: str, reply: Reply, expected: type[Exception]
) -> None:
    srv.script(None, [reply])
    # Which 400s LiteLLM files under a subclass varies by release (before ~1.91 Anthropic's
    # context-length message, from 1.109 OpenAI's content filter, stay plain BadRequestErrors);
    # the reference release (the main CI venv) must give the exact class.
    exact = importlib.metadata.version("litellm") == REFERENCE_LITELLM
    family = expected if exact or not issubclass(expected, litellm.BadRequestError) else None
    with pytest.raises(family or litellm.BadRequestError):
        litellm.completion(messages=MESSAGES, **_kwargs(srv, model))
    assert len(srv.requests) == 1  # no hidden client-side retries


def test_error_bodies_are_shaped_per_api(srv: FakeLLMServer) -> None:
    srv.script(None, [Reply.rate_limit(), Reply.rate_limit()])
    status, headers, body = _post(srv.base_url + "/chat/completions", {"model": "m"})
    assert status == 429
    assert headers.get("retry-after") == "0"
    assert body["error"]["code"] == "rate_limit_exceeded"
    status, _, body = _post(srv.anthropic_base + MESSAGES_PATH, {"model": "m"})
    assert status == 429
    assert body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": Reply.rate_limit().error_message},
    }


# -- mid-stream failures ------------------------------------------------------------------


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL])
@pytest.mark.parametrize("make", [Reply.stream_cut, Reply.stream_error], ids=["cut", "event"])
def test_mid_stream_failure_raises_in_caller(srv: FakeLLMServer, model: str, make: Any) -> None:
    srv.script(None, [make(after=3)])
    received: list[str] = []
    with pytest.raises(MID_STREAM_ERRORS):
        for chunk in litellm.completion(messages=MESSAGES, stream=True, **_kwargs(srv, model)):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received, "some content should arrive before the failure"
    assert "".join(received) != Reply().content
    assert len(srv.requests) == 1


# -- Anthropic messages -------------------------------------------------------------------


def test_anthropic_usage_counts_cache_into_prompt_tokens(srv: FakeLLMServer) -> None:
    srv.script(
        "claude-sonnet-4-5",
        [Reply(input_tokens=50, cache_read=1000, cache_write=200, output_tokens=30)],
    )
    resp = litellm.completion(messages=MESSAGES, **_kwargs(srv, ANTHROPIC_MODEL))

    assert resp.usage.prompt_tokens == 50 + 1000 + 200
    assert resp.usage.completion_tokens == 30
    assert resp.usage.prompt_tokens_details.cached_tokens == 1000
    assert resp.usage.cache_read_input_tokens == 1000
    assert resp.usage.cache_creation_input_tokens == 200
    [(path, body, headers)] = srv.requests
    assert path == MESSAGES_PATH
    assert body["model"] == "claude-sonnet-4-5"
    assert headers["x-api-key"] == "sk-ant-fake"


def test_anthropic_stream_reports_usage(srv: FakeLLMServer) -> None:
    srv.script(None, [Reply(input_tokens=5, cache_read=7, cache_write=3, output_tokens=9)])
    chunks = list(
        litellm.completion(
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            **_kwargs(srv, ANTHROPIC_MODEL),
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == Reply().content
    usage = [u for c in chunks if (u := getattr(c, "usage", None)) is not None][-1]
    assert (usage.prompt_tokens, usage.completion_tokens) == (15, 9)


# -- embeddings ---------------------------------------------------------------------------


def test_embeddings(srv: FakeLLMServer) -> None:
    srv.script(None, [Reply(prompt_tokens=6)])
    resp = litellm.embedding(
        model="openai/text-embedding-3-small",
        api_base=srv.base_url,
        api_key="sk-fake",
        max_retries=0,
        input=["a", "b", "a"],
    )
    assert resp.usage.prompt_tokens == 6
    vectors = [d["embedding"] for d in resp.data]
    assert len(vectors) == 3
    assert vectors[0] == vectors[2] != vectors[1]
    assert srv.requests[0].path == EMBEDDINGS_PATH


def test_embeddings_base64_encoding(srv: FakeLLMServer) -> None:
    # The OpenAI SDK asks for base64 unless told otherwise; decode like it does.
    _, _, plain = _post(srv.base_url + "/embeddings", {"model": "e", "input": "x"})
    _, _, b64 = _post(
        srv.base_url + "/embeddings", {"model": "e", "input": "x", "encoding_format": "base64"}
    )
    raw = base64.b64decode(b64["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(plain["data"][0]["embedding"], rel=1e-6)


# -- scripting, recording and lifecycle ---------------------------------------------------


def test_model_queue_wins_then_any_queue_then_default(srv: FakeLLMServer) -> None:
    srv.script(None, [Reply(prompt_tokens=2)])
    srv.script("a", [Reply(prompt_tokens=1)])
    url = srv.base_url + "/chat/completions"
    seen = [_post(url, {"model": m})[2]["usage"]["prompt_tokens"] for m in ("a", "a", "a", "b")]
    assert seen == [1, 2, Reply().prompt_tokens, Reply().prompt_tokens]
    assert srv.pending() == 0 and srv.pending("a") == 0
    assert [r.body["model"] for r in srv.requests_to(CHAT_PATH)] == ["a", "a", "a", "b"]


def test_unknown_path_is_404_and_recorded(srv: FakeLLMServer) -> None:
    status, _, body = _post(srv.anthropic_base + "/v2/nothing", {"model": "m"})
    assert status == 404
    assert "no route" in body["error"]["message"]
    assert srv.requests[0].path == "/v2/nothing"


def test_reply_rejects_unbounded_delay() -> None:
    with pytest.raises(ValueError):
        Reply(delay=3600)


def test_exit_is_prompt_and_leaks_no_threads() -> None:
    outcome: list[BaseException | int] = []

    def call(url: str) -> None:
        try:
            outcome.append(_post(url, {"model": "slow"})[0])
        except BaseException as exc:  # noqa: BLE001 - we assert on what happened
            outcome.append(exc)

    with FakeLLMServer() as server:
        server.script("slow", [Reply(delay=20)])
        client = threading.Thread(target=call, args=(server.base_url + "/chat/completions",))
        client.start()
        deadline = time.monotonic() + 5
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
    assert time.monotonic() - started < 2, "exit must not wait for the scripted delay"
    client.join(5)
    assert not client.is_alive()
    assert outcome and isinstance(outcome[0], Exception)  # the client saw the connection drop
    assert not [t for t in threading.enumerate() if t.name.startswith("fakellm")]


GC_UNDER_POOL_LOCK = """
import gc
import httpcore._sync.connection_pool as cp

_assign = cp.ConnectionPool._assign_requests_to_connections


def assign(self):
    gc.collect()  # where an unlucky automatic collection can run: under the pool's lock
    return _assign(self)


cp.ConnectionPool._assign_requests_to_connections = assign
"""


def test_streams_left_suspended_are_finalized_between_tests(tmp_path: Path) -> None:
    """The conftest's collection between tests (collect_abandoned_streams) is what keeps a
    stream LiteLLM left suspended from deadlocking a later test on LiteLLM's shared Anthropic
    client (encode/httpcore#990; it hung a CI run). A collection forced under the pool's lock
    makes the rare timing certain: without the fixture the anthropic tests below hang on
    LiteLLM 1.80.7, the oldest release CI runs this file on (seen: pytest-timeout fires in
    test_anthropic_stream_reports_usage); 1.106.2 leaves no such stream on that client."""
    (tmp_path / "gc_under_pool_lock.py").write_text(GC_UNDER_POOL_LOCK)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    select = "mid_stream_failure_raises_in_caller or anthropic"
    args = ["-n", "0", "-p", "gc_under_pool_lock", "--timeout", "30", "-k", select]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args, str(Path(__file__))],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    out = proc.stdout + proc.stderr
    assert "Timeout" not in out, out[-3000:]
    assert proc.returncode == 0 and " passed" in out, out[-3000:]
