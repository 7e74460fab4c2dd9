"""A tiny app instrumented with llmtop: run it, then run `llmtop` in another terminal.

It calls LiteLLM against a fake OpenAI-compatible server that it starts itself on 127.0.0.1, so
it needs no API key and no network, yet every call goes through real LiteLLM and the real
collector callback (one registration line) and lands in llmtop's database priced as gpt-4o-mini
and text-embedding-3-small.

    python examples/app.py                 # one call every 0.5 s until Ctrl-C
    python examples/app.py --count 20 --interval 0.1 --db /tmp/llmtop-example.db
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Importing llmtop.collector first makes LiteLLM use its bundled price map (no network fetch).
import llmtop.collector  # noqa: F401  (import for its side effect, before litellm)


class FakeOpenAI(BaseHTTPRequestHandler):
    """Answers /chat/completions (plain and streamed, with usage) and /embeddings."""

    def log_message(self, format: str, *args: Any) -> None:  # keep the terminal quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        prompt = sum(len(str(m.get("content", ""))) // 4 + 4 for m in body.get("messages", []))
        time.sleep(random.uniform(0.05, 0.3))  # some latency worth looking at
        if self.path.endswith("/embeddings"):
            inputs = body.get("input")
            inputs = inputs if isinstance(inputs, list) else [inputs]
            n = sum(len(str(i)) // 4 + 1 for i in inputs)
            self._json(
                {
                    "object": "list",
                    "model": body.get("model"),
                    "data": [
                        {"object": "embedding", "index": i, "embedding": [0.0] * 8}
                        for i in range(len(inputs))
                    ],
                    "usage": {"prompt_tokens": n, "total_tokens": n},
                }
            )
            return
        completion = random.randint(20, 200)
        text = "lorem " * completion
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if not body.get("stream"):
            self._json(
                {
                    "id": f"chatcmpl-{random.getrandbits(48):x}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {
            "id": "chatcmpl-stream",
            "object": "chat.completion.chunk",
            "model": body.get("model"),
        }
        for word in ("Hello", " from", " the", " fake", " server."):
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": word}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            time.sleep(0.02)
        end = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
        # The usage chunk LiteLLM asks for with stream_options={"include_usage": True}.
        self.wfile.write(
            f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
        )
        self.wfile.write(b"data: [DONE]\n\n")

    def _json(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start_server() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=0, help="calls to make (0: until Ctrl-C)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between calls")
    parser.add_argument(
        "--db", default=None, help="llmtop database (default: $LLMTOP_DB or llmtop's)"
    )
    args = parser.parse_args()

    import litellm
    from llmtop.collector import Collector

    litellm.callbacks = [Collector(db=args.db)] if args.db else [Collector()]
    api_base = start_server()
    common = {"api_base": api_base, "api_key": "sk-fake-local"}
    users = [f"user-{i}" for i in range(12)]
    print(f"fake OpenAI server at {api_base}; writing calls to llmtop (Ctrl-C to stop)")

    n = 0
    try:
        while args.count == 0 or n < args.count:
            n += 1
            user = random.choice(users[:3] * 4 + users)  # a few users dominate, as in real life
            kind = random.random()
            if kind < 0.5:
                litellm.completion(
                    model="openai/gpt-4o-mini",
                    messages=[{"role": "user", "content": "Summarize this ticket " * 40}],
                    metadata={
                        "feature": "support-summarize",
                        "team": "support",
                        "prompt_version": "v1",
                    },
                    user=user,
                    **common,
                )
            elif kind < 0.8:
                for _ in litellm.completion(
                    model="openai/gpt-4o-mini",
                    messages=[{"role": "user", "content": "Hi there, how are you?"}],
                    stream=True,
                    stream_options={"include_usage": True},  # without it a stream logs 0 tokens
                    metadata={"feature": "chat", "team": "assistant", "tags": ["environment:dev"]},
                    user=user,
                    **common,
                ):
                    pass
            else:
                litellm.embedding(
                    model="openai/text-embedding-3-small",
                    input=["llmtop shows where the money goes"] * random.randint(1, 8),
                    metadata={"feature": "embed", "team": "search"},
                    **common,
                )
            print(f"\r{n} calls", end="", flush=True)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    print()
    for cb in litellm.callbacks:
        flush = getattr(cb, "flush", None)
        if flush is not None:
            flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
