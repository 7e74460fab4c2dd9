"""The collector behind a real LiteLLM proxy (`litellm --config`, 2 workers, Router retries).

LiteLLM's proxy extra pins `rich<14`, which Textual cannot live with, so the proxy runs from its
own virtual environment: `.ci/run` makes `.venv-proxy` (litellm[proxy] plus llmtop, no
dashboard). Where it is missing this test skips and says so, unless LLMTOP_REQUIRE_PROXY=1 (CI
sets it), where it fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fakeserver import FakeLLMServer, Reply

ROOT = Path(__file__).resolve().parent.parent
PROXY_BIN = Path(os.environ.get("LLMTOP_PROXY_VENV", ROOT / ".venv-proxy")) / "bin" / "litellm"

CONFIG = """
model_list:
  - model_name: chat
    litellm_params: {model: openai/gpt-4o-mini, api_base: os.environ/FAKE_BASE, api_key: sk-fake, max_retries: 0}
  - model_name: storm
    litellm_params: {model: openai/gpt-4o-mini-storm, api_base: os.environ/FAKE_BASE, api_key: sk-fake, max_retries: 0}
  - model_name: mystery
    litellm_params: {model: openai/not-a-priced-model, api_base: os.environ/FAKE_BASE, api_key: sk-fake, max_retries: 0}
router_settings:
  num_retries: 2
  retry_after: 0
litellm_settings:
  callbacks: ["llmtop.collector.proxy.collector"]
"""


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def post(port: int, body: dict) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer sk-master", "Content-Type": "application/json"},
    )
    try:
        return urllib.request.urlopen(req, timeout=60).status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def proxy_bin() -> Path:
    if not PROXY_BIN.exists():
        why = f"no LiteLLM proxy environment at {PROXY_BIN.parent.parent} (.ci/run makes it)"
        if os.environ.get("LLMTOP_REQUIRE_PROXY") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return PROXY_BIN


def test_behind_a_real_proxy_rows_tags_users_retries_and_unpriced_costs(
    proxy_bin: Path, tmp_path: Path
) -> None:
    db = tmp_path / "proxy.db"
    (tmp_path / "config.yaml").write_text(CONFIG)
    with FakeLLMServer(default_reply=Reply(prompt_tokens=11)) as srv:
        srv.script("gpt-4o-mini-storm", [Reply.rate_limit()] * 60)  # a 429 storm: 20 × 3 tries
        port = free_port()
        env = {
            **os.environ,
            "FAKE_BASE": srv.base_url,
            "LITELLM_MASTER_KEY": "sk-master",
            "LLMTOP_DB": str(db),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        log = open(tmp_path / "proxy.log", "w")  # noqa: SIM115
        proxy = subprocess.Popen(
            [str(proxy_bin), "--config", "config.yaml", "--port", str(port), "--num_workers", "2"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=1)
                    break
                except OSError as exc:
                    if time.monotonic() > deadline or proxy.poll() is not None:
                        log_tail = (tmp_path / "proxy.log").read_text()[-3000:]
                        raise AssertionError(log_tail) from exc
                    time.sleep(0.3)
            msg = [{"role": "user", "content": "SECRET-PROMPT-proxy"}]
            for i in range(10):
                body = {"model": "chat", "messages": msg, "user": f"u-{i}", "tags": ["team:t1"]}
                if i % 2:
                    body["metadata"] = {"feature": "f1", "customer": "acme"}
                assert post(port, body) == 200
            for _ in range(20):
                assert post(port, {"model": "storm", "messages": msg, "user": "u-storm"}) == 429
            assert post(port, {"model": "mystery", "messages": msg, "user": "u-m"}) == 200
            assert len(srv.requests_to("/v1/chat/completions")) == 10 + 60 + 1
            # The proxy's async success hooks run after the response: wait for every row
            # (10 chat, 60 storm attempts, 1 mystery) before stopping it.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    with sqlite3.connect(db) as c:
                        if c.execute("SELECT count(*) FROM calls").fetchone()[0] >= 71:
                            break
                except sqlite3.Error:
                    pass
                time.sleep(0.1)
        finally:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(60)
            log.close()

    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY id")]
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert b"SECRET-PROMPT" not in db.read_bytes()
    chat = [r for r in rows if r["model"] == "openai/gpt-4o-mini"]
    assert len(chat) == 10
    # The request's `user` is the user; the master key's placeholder never is; `customer` only
    # when the request says so.
    assert sorted(r["user"] for r in chat) == sorted(f"u-{i}" for i in range(10))
    assert {r["customer"] for r in chat} == {"acme", None}
    assert all(r["team"] == "t1" for r in chat)
    assert all(r["feature"] == "f1" for r in chat if r["customer"] == "acme")
    # The storm: every upstream attempt is a row, the hidden ones marked as inferred.
    storm = [r for r in rows if r["model"] == "openai/gpt-4o-mini-storm"]
    assert len(storm) == 60
    assert sum(r["is_retry"] for r in storm) == 40
    assert {r["status"] for r in storm} == {"failure"}
    assert sum(1 for r in storm if "inferred" in (r["tags_json"] or "")) == 40
    assert all(r["user"] == "u-storm" for r in storm)
    # A model LiteLLM could not price: NULL, not $0.
    (mystery,) = [r for r in rows if r["model"] == "openai/not-a-priced-model"]
    assert mystery["litellm_cost_usd"] is None and mystery["unpriced"] == 1
