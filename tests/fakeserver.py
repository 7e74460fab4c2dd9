"""A scriptable fake OpenAI- and Anthropic-compatible HTTP server for tests.

Why this exists: llmtop sits behind LiteLLM, and the interesting behaviour (usage
accounting, cached/reasoning tokens, retries, streaming TTFT, failures mid-stream)
only shows up when LiteLLM talks to a real HTTP endpoint through its real provider
code. Mocking LiteLLM internals would test our assumptions about LiteLLM rather than
LiteLLM itself, and the machine running the tests is offline. So this module serves
the wire formats on 127.0.0.1 with the standard library only, and lets each test
script exactly what every request gets back.

Usage::

    with FakeLLMServer() as srv:
        srv.script("gpt-4o-mini", [Reply.rate_limit(), Reply(prompt_tokens=7)])
        litellm.completion(
            model="openai/gpt-4o-mini",
            api_base=srv.base_url,          # http://127.0.0.1:PORT/v1
            api_key="sk-fake",
            max_retries=0,                  # stop the OpenAI SDK's own 2 retries
            messages=[{"role": "user", "content": "hi"}],
        )
        litellm.completion(
            model="anthropic/claude-sonnet-4-5",
            api_base=srv.anthropic_base,    # http://127.0.0.1:PORT; LiteLLM adds /v1/messages
            api_key="sk-ant-fake",
            messages=[{"role": "user", "content": "hi"}],
        )
        assert len(srv.requests) == 3

Endpoints: ``POST /v1/chat/completions`` (plain and SSE streaming, honouring
``stream_options.include_usage``), ``POST /v1/embeddings`` (float and base64
encodings, because the OpenAI SDK asks for base64 by default) and
``POST /v1/messages`` (Anthropic Messages, plain and streaming). Anything else is
recorded and answered with a 404 so a wrong URL shows up as a clear failure.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, NamedTuple

__all__ = ["FakeLLMServer", "RecordedRequest", "Reply"]

# Bounds, so a buggy test or client can neither hang the suite nor eat memory.
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_DELAY_SECONDS = 30.0
MAX_RECORDED_REQUESTS = 10_000
MAX_QUEUED_REPLIES = 10_000
SOCKET_TIMEOUT_SECONDS = 15.0
JOIN_TIMEOUT_SECONDS = 5.0
EMBEDDING_DIM = 8

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MESSAGES_PATH = "/v1/messages"

FailMode = Literal["close", "error_event"]


@dataclass(frozen=True)
class Reply:
    """What the server does for one request.

    A plain ``Reply()`` is a success. Usage fields are reported verbatim so tests can
    assert that LiteLLM (and llmtop behind it) carries them through unchanged:

    * OpenAI: ``prompt_tokens``, ``completion_tokens``, ``cached_tokens``
      (``usage.prompt_tokens_details.cached_tokens``, already *included* in
      ``prompt_tokens`` as OpenAI does) and ``reasoning_tokens``
      (``usage.completion_tokens_details.reasoning_tokens``).
    * Anthropic: ``input_tokens`` (uncached input only, as Anthropic reports it),
      ``cache_read``, ``cache_write`` and ``output_tokens``. ``input_tokens`` and
      ``output_tokens`` default to ``prompt_tokens``/``completion_tokens`` so one
      ``Reply`` can serve both APIs in simple tests.

    ``status`` other than 200 makes it an error reply, shaped like the API that was
    called (OpenAI ``{"error": {...}}`` or Anthropic ``{"type": "error", ...}``).
    ``fail_after_chunks`` makes a *stream* break after that many content chunks,
    either by dropping the connection mid-body (``fail_mode="close"``) or by sending
    an in-band error event (``fail_mode="error_event"``); non-stream requests with
    it set fail the same way after the headers. ``delay`` is slept before the
    response starts (time-to-first-token); ``chunk_delay`` between stream chunks.
    """

    status: int = 200
    content: str = "Hello from the fake LLM server."
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    input_tokens: int | None = None
    cache_read: int = 0
    cache_write: int = 0
    output_tokens: int | None = None
    response_model: str | None = None
    finish_reason: str = "stop"
    delay: float = 0.0
    chunk_delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)
    error_message: str = "fake error"
    error_type: str | None = None
    error_code: str | None = None
    error_param: str | None = None
    anthropic_error_type: str = "api_error"
    fail_after_chunks: int | None = None
    fail_mode: FailMode = "close"

    def __post_init__(self) -> None:
        """Reject values that would make the fake hang or lie, at scripting time."""
        for name in ("delay", "chunk_delay"):
            value = getattr(self, name)
            if not 0.0 <= value <= MAX_DELAY_SECONDS:
                raise ValueError(f"{name} must be within [0, {MAX_DELAY_SECONDS}], got {value}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status, got {self.status}")
        if self.fail_after_chunks is not None and self.fail_after_chunks < 0:
            raise ValueError("fail_after_chunks must be >= 0")
        if self.fail_mode not in ("close", "error_event"):
            raise ValueError(f"fail_mode must be 'close' or 'error_event', got {self.fail_mode!r}")

    # -- ready-made replies for the failures LiteLLM maps to distinct exceptions --

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        anthropic_type: str = "api_error",
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """Any HTTP error with an API-shaped body."""
        return cls(
            status=status,
            error_message=message,
            error_type=type,
            error_code=code,
            error_param=param,
            anthropic_error_type=anthropic_type,
            headers=dict(headers or {}),
            delay=delay,
        )

    @classmethod
    def rate_limit(cls, retry_after: str = "0") -> Reply:
        """429 with ``retry-after`` so retrying clients do not actually wait."""
        return cls.error(
            429,
            "Rate limit reached for requests (fake).",
            type="requests",
            code="rate_limit_exceeded",
            anthropic_type="rate_limit_error",
            headers={"retry-after": retry_after},
        )

    @classmethod
    def server_error(cls) -> Reply:
        """500: what LiteLLM maps to InternalServerError."""
        return cls.error(
            500,
            "The server had an error while processing your request (fake).",
            type="server_error",
            anthropic_type="api_error",
        )

    @classmethod
    def context_length_exceeded(cls) -> Reply:
        """400 ``context_length_exceeded``: LiteLLM maps it to ContextWindowExceededError."""
        return cls.error(
            400,
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130000 tokens. Please reduce the length of the messages.",
            type="invalid_request_error",
            code="context_length_exceeded",
            param="messages",
            anthropic_type="invalid_request_error",
        )

    @classmethod
    def content_filter(cls) -> Reply:
        """400 content-policy rejection: LiteLLM maps it to ContentPolicyViolationError.

        The message text matters: LiteLLM recognises this case by substrings
        ("request was rejected as a result of our safety system", "content
        filtering policy"), not by status code.
        """
        return cls.error(
            400,
            "Your request was rejected as a result of our safety system "
            "(content filtering policy, fake).",
            type="invalid_request_error",
            code="content_policy_violation",
            param="prompt",
            anthropic_type="invalid_request_error",
        )

    @classmethod
    def stream_cut(cls, after: int = 2, **kwargs: Any) -> Reply:
        """A stream that sends ``after`` chunks and then drops the connection."""
        return cls(fail_after_chunks=after, fail_mode="close", **kwargs)

    @classmethod
    def stream_error(cls, after: int = 2, **kwargs: Any) -> Reply:
        """A stream that sends ``after`` chunks and then an in-band error event."""
        return cls(
            fail_after_chunks=after,
            fail_mode="error_event",
            error_message=kwargs.pop("error_message", "stream failed (fake)"),
            error_type=kwargs.pop("error_type", "server_error"),
            anthropic_error_type=kwargs.pop("anthropic_error_type", "overloaded_error"),
            **kwargs,
        )

    # -- derived values --

    @property
    def anthropic_input(self) -> int:
        """Anthropic's uncached input count (defaults to ``prompt_tokens``)."""
        return self.prompt_tokens if self.input_tokens is None else self.input_tokens

    @property
    def anthropic_output(self) -> int:
        """Anthropic's output count (defaults to ``completion_tokens``)."""
        return self.completion_tokens if self.output_tokens is None else self.output_tokens

    def openai_usage(self) -> dict[str, Any]:
        """The ``usage`` object OpenAI returns, with the detail blocks it always sends."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def anthropic_usage(self, *, output_tokens: int | None = None) -> dict[str, int]:
        """The ``usage`` object Anthropic returns."""
        return {
            "input_tokens": self.anthropic_input,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": self.anthropic_output if output_tokens is None else output_tokens,
        }

    def openai_error_body(self) -> dict[str, Any]:
        """OpenAI's error envelope."""
        return {
            "error": {
                "message": self.error_message,
                "type": self.error_type,
                "param": self.error_param,
                "code": self.error_code,
            }
        }

    def anthropic_error_body(self) -> dict[str, Any]:
        """Anthropic's error envelope."""
        return {
            "type": "error",
            "error": {"type": self.anthropic_error_type, "message": self.error_message},
        }


class RecordedRequest(NamedTuple):
    """One request as the server saw it; a tuple so ``path, body, headers = r`` works."""

    path: str
    body: Any
    headers: dict[str, str]


def _split_content(text: str) -> list[str]:
    """Split into word-ish pieces that concatenate back to ``text`` exactly."""
    pieces: list[str] = []
    current = ""
    for ch in text:
        current += ch
        if ch == " ":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces or [""]


def _fake_embedding(text: str) -> list[float]:
    """A deterministic unit vector per input, so equal inputs embed equally."""
    seed = sum((i + 1) * ord(c) for i, c in enumerate(text)) or 1
    raw = [math.sin(seed * (k + 1)) for k in range(EMBEDDING_DIM)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connection threads so close() can end them.

    The stock mixin either leaks daemon threads or blocks forever on a client that
    keeps a socket open; here every connection is known, can be shut down, and is
    joined with a timeout.
    """

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, owner: FakeLLMServer) -> None:
        self.owner = owner
        self._conn_lock = threading.Lock()
        self._conn_threads: set[threading.Thread] = set()
        self._conn_sockets: set[socket.socket] = set()
        self._conn_ids = itertools.count(1)
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start one named, tracked thread per connection."""
        thread = threading.Thread(
            target=self._run_connection,
            args=(request, client_address),
            name=f"fakellm-conn-{next(self._conn_ids)}",
            daemon=True,
        )
        with self._conn_lock:
            self._conn_threads.add(thread)
            self._conn_sockets.add(request)
        thread.start()

    def _run_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conn_threads.discard(threading.current_thread())
                self._conn_sockets.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record instead of printing: client disconnects are expected in failure tests."""
        exc = sys.exc_info()[1]
        if exc is not None:
            self.owner._record_error(exc)

    def close_connections(self) -> None:
        """Shut every open connection and wait (bounded) for its thread to finish."""
        with self._conn_lock:
            sockets = list(self._conn_sockets)
            threads = list(self._conn_threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + JOIN_TIMEOUT_SECONDS
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _AbortResponse(Exception):
    """Stop writing and drop the connection (server closing, or a scripted cut)."""


class _StreamFinished(Exception):
    """Raised after an in-band error event: the response is complete, stop writing."""


class _Handler(BaseHTTPRequestHandler):
    """Dispatches by path; everything API-specific lives in small methods below."""

    # HTTP/1.1 so streams can use chunked encoding: a connection dropped before the
    # terminating chunk is then a *protocol error* for the client, which is what a
    # real mid-stream failure looks like (with HTTP/1.0 it would look like a clean EOF).
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_SECONDS
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; tests inspect ``srv.requests`` instead."""

    @property
    def owner(self) -> FakeLLMServer:
        return self.server.owner

    # -- entry points --

    def do_GET(self) -> None:
        self._record(None)
        self._send_json(404, self._not_found_body())

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self._record(None)
            self._send_json(413, {"error": {"message": "body too large", "type": "fake"}})
            return
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self._record(body)
        path = self.path.split("?", 1)[0]
        if path not in (CHAT_PATH, EMBEDDINGS_PATH, MESSAGES_PATH):
            self._send_json(404, self._not_found_body())
            return
        body_dict: dict[str, Any] = body if isinstance(body, dict) else {}
        model = str(body_dict.get("model") or "")
        reply = self.owner._next_reply(model)
        try:
            self._sleep(reply.delay)
            if reply.status != 200:
                self._send_error_reply(path, reply)
            elif path == CHAT_PATH:
                self._chat(body_dict, model, reply)
            elif path == EMBEDDINGS_PATH:
                self._embeddings(body_dict, model, reply)
            else:
                self._messages(body_dict, model, reply)
        except _AbortResponse:
            self._drop_connection()

    # -- plumbing --

    def _record(self, body: Any) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.owner._record_request(RecordedRequest(self.path, body, headers))

    def _not_found_body(self) -> dict[str, Any]:
        return {"error": {"message": f"fake server: no route {self.path}", "type": "not_found"}}

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once (and abort the response) if the server is closing."""
        if seconds > 0 and self.owner._closing.wait(seconds):
            raise _AbortResponse
        if self.owner._closing.is_set():
            raise _AbortResponse

    def _send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        # One request per connection keeps every handler thread short-lived, so
        # shutdown never waits on an idle keep-alive socket.
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _send_error_reply(self, path: str, reply: Reply) -> None:
        body = reply.anthropic_error_body() if path == MESSAGES_PATH else reply.openai_error_body()
        self._send_json(reply.status, body, reply.headers)

    def _start_stream(self, reply: Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self) -> None:
        """The terminating zero-length chunk: without it the client sees a broken body."""
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _sse(self, data: Any, event: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        prefix = f"event: {event}\n" if event else ""
        self._write_chunk(f"{prefix}data: {text}\n\n".encode())

    def _drop_connection(self) -> None:
        """Close the socket mid-response: the client sees an incomplete chunked body."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- OpenAI chat completions --

    def _chat(self, body: dict[str, Any], model: str, reply: Reply) -> None:
        served = reply.response_model or model
        completion_id = f"chatcmpl-fake{self.owner._next_id()}"
        created = int(time.time())
        if not body.get("stream"):
            if reply.fail_after_chunks is not None:
                self._start_stream(reply)
                raise _AbortResponse
            self._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": served,
                    "system_fingerprint": "fp_fake",
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": reply.content,
                                "refusal": None,
                            },
                            "logprobs": None,
                            "finish_reason": reply.finish_reason,
                        }
                    ],
                    "usage": reply.openai_usage(),
                },
                reply.headers,
            )
            return

        stream_options = body.get("stream_options") or {}
        include_usage = bool(stream_options.get("include_usage"))

        def chunk(
            delta: dict[str, Any], finish: str | None, usage: Any = None, choices: bool = True
        ) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": served,
                "system_fingerprint": "fp_fake",
                "choices": (
                    [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                    if choices
                    else []
                ),
            }
            if include_usage:
                out["usage"] = usage
            return out

        self._start_stream(reply)
        events: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": piece}, None) for piece in _split_content(reply.content)]
        self._stream_events(
            reply,
            ((None, e) for e in events),
            on_error=lambda: self._sse(reply.openai_error_body()),
        )
        self._sleep(reply.chunk_delay)
        self._sse(chunk({}, reply.finish_reason))
        if include_usage:
            self._sse(chunk({}, None, usage=reply.openai_usage(), choices=False))
        self._sse("[DONE]")
        self._end_stream()

    def _stream_events(
        self,
        reply: Reply,
        events: Iterator[tuple[str | None, dict[str, Any]]],
        on_error: Callable[[], None],
    ) -> None:
        """Send content events, honouring ``chunk_delay`` and ``fail_after_chunks``.

        The first event goes out without ``chunk_delay`` (``delay`` already covered
        time-to-first-byte); each later one waits ``chunk_delay`` first.
        """
        limit = reply.fail_after_chunks
        for sent, (event, payload) in enumerate(events):
            if limit is not None and sent >= limit:
                break
            if sent:
                self._sleep(reply.chunk_delay)
            self._sse(payload, event)
        if limit is None:
            return
        # Also reached when asked to fail after more chunks than the content has.
        if reply.fail_mode == "error_event":
            on_error()
            self._end_stream()
            raise _StreamFinished
        raise _AbortResponse

    # -- OpenAI embeddings --

    def _embeddings(self, body: dict[str, Any], model: str, reply: Reply) -> None:
        raw_input = body.get("input", "")
        inputs: Sequence[Any] = (
            [raw_input]
            if isinstance(raw_input, str)
            or (isinstance(raw_input, list) and raw_input and isinstance(raw_input[0], int))
            else list(raw_input)
        )
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            vector = _fake_embedding(item if isinstance(item, str) else json.dumps(item))
            embedding: Any = (
                base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                if as_base64
                else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": reply.response_model or model,
                "usage": {
                    "prompt_tokens": reply.prompt_tokens,
                    "total_tokens": reply.prompt_tokens,
                },
            },
            reply.headers,
        )

    # -- Anthropic messages --

    def _messages(self, body: dict[str, Any], model: str, reply: Reply) -> None:
        served = reply.response_model or model
        message_id = f"msg_fake{self.owner._next_id()}"
        stop_reason = "end_turn" if reply.finish_reason == "stop" else reply.finish_reason
        if not body.get("stream"):
            if reply.fail_after_chunks is not None:
                self._start_stream(reply)
                raise _AbortResponse
            self._send_json(
                200,
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": served,
                    "content": [{"type": "text", "text": reply.content}],
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": reply.anthropic_usage(),
                },
                reply.headers,
            )
            return

        self._start_stream(reply)
        start = {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": served,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": reply.anthropic_usage(output_tokens=1),
            },
        }
        events: list[tuple[str | None, dict[str, Any]]] = [
            ("message_start", start),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
        ]
        events += [
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
            for piece in _split_content(reply.content)
        ]
        self._stream_events(
            reply, iter(events), on_error=lambda: self._sse(reply.anthropic_error_body(), "error")
        )
        self._sleep(reply.chunk_delay)
        self._sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        self._sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": reply.anthropic_output},
            },
            "message_delta",
        )
        self._sse({"type": "message_stop"}, "message_stop")
        self._end_stream()

    def handle_one_request(self) -> None:
        """Treat an in-band stream error as a finished response, not a handler crash."""
        try:
            super().handle_one_request()
        except _StreamFinished:
            self.close_connection = True


class FakeLLMServer:
    """The fake server: start it, script replies, point LiteLLM at it, inspect requests.

    Thread-safe: requests are served on per-connection threads, and scripting or
    reading ``requests`` from the test thread at the same time is fine.
    """

    def __init__(self, default_reply: Reply | None = None) -> None:
        self.default_reply: Reply = default_reply or Reply()
        self._lock = threading.Lock()
        self._queues: dict[str | None, deque[Reply]] = {}
        self._requests: deque[RecordedRequest] = deque(maxlen=MAX_RECORDED_REQUESTS)
        self._errors: deque[BaseException] = deque(maxlen=100)
        self._ids = itertools.count(1)
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> FakeLLMServer:
        """Bind an ephemeral 127.0.0.1 port and serve on a background thread."""
        if self._server is not None:
            raise RuntimeError("FakeLLMServer already started")
        self._closing.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fakellm-serve",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut open connections, and join every thread (bounded)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._closing.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(JOIN_TIMEOUT_SECONDS)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses --

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeLLMServer is not running")
        return int(self._server.server_address[1])

    @property
    def anthropic_base(self) -> str:
        """``api_base`` for ``anthropic/`` models: LiteLLM appends ``/v1/messages`` itself."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """``api_base`` for ``openai/`` models (the OpenAI SDK appends ``/chat/completions``)."""
        return f"{self.anthropic_base}/v1"

    # -- scripting --

    def script(self, model: str | None, replies: Sequence[Reply]) -> None:
        """Queue ``replies`` for requests whose body ``model`` equals ``model``.

        ``None`` matches any model. A model-specific queue wins over the ``None``
        queue; once both are empty, ``default_reply`` is used. Calling again appends.
        Note the body model is LiteLLM's *stripped* name: ``openai/gpt-4o-mini`` is
        sent as ``gpt-4o-mini``.
        """
        with self._lock:
            queue = self._queues.setdefault(model, deque())
            if len(queue) + len(replies) > MAX_QUEUED_REPLIES:
                raise ValueError(f"at most {MAX_QUEUED_REPLIES} queued replies")
            queue.extend(replies)

    def pending(self, model: str | None = None) -> int:
        """How many scripted replies for ``model`` are still unused."""
        with self._lock:
            return len(self._queues.get(model, ()))

    def reset(self) -> None:
        """Forget scripts, recorded requests and errors (the default reply is kept)."""
        with self._lock:
            self._queues.clear()
            self._requests.clear()
            self._errors.clear()

    # -- inspection --

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Only the requests to one path, e.g. ``"/v1/chat/completions"``."""
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised while serving (e.g. a client hanging up mid-stream)."""
        with self._lock:
            return list(self._errors)

    # -- called from handler threads --

    def _next_reply(self, model: str) -> Reply:
        with self._lock:
            for key in (model, None):
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
            return self.default_reply

    def _record_request(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)
