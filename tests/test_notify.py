"""`[notify]`: a real `llmtop check` process posting to a local webhook, once per incident.

A budget alert is the incident: its severity follows the budget amount in the rules file, so one
database walks an alert through page, repeat (no call), escalation and resolve.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from llmtop.alerts.notify import Event, Notifier, NotifyConfig
from llmtop.alerts.state import RESOLVE_AFTER

from tests.dbutil import scalar
from tests.tui_fixtures import NOW, build

SECRET = "/services/T000/B000/not-a-real-token"


class Hook:
    """A loopback webhook that records bodies and can answer 500 a few times first."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.fail_first = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.paths.append(self.path)
                if hook.fail_first > 0:
                    hook.fail_first -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                assert self.headers["Content-Type"] == "application/json"
                hook.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def rules(path: Path, amount: float, extra: str = "") -> Path:
    path.write_text(
        "[notify]\n"
        'webhook_url_env = "LLMTOP_TEST_HOOK"\n'
        'timeout = "5s"\nretries = 2\nbackoff = "1s"\n'
        f"{extra}\n"
        "[[budget]]\n"
        'name = "org"\n'
        f"amount = {amount!r}\n"
        'period = "month"\nprojection = false\n'
    )
    return path


def check(db: Path, config: Path, hook: Hook, now: float = NOW) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLMTOP_TEST_HOOK": hook.url}
    return subprocess.run(
        [sys.executable, "-m", "llmtop", "check", "--db", str(db), "--config", str(config)]
        + ["--now", str(now)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_one_call_per_page_escalation_and_resolve(
    llmtop_db: Path, tmp_path: Path, hook: Hook
) -> None:
    build(llmtop_db)
    spend = scalar(llmtop_db, "SELECT TOTAL(cost_usd) FROM requests")
    cfg = tmp_path / "rules.toml"

    res = check(llmtop_db, rules(cfg, spend / 0.9), hook)  # 90% of the budget: a warning
    assert res.returncode == 1, res.stdout + res.stderr
    assert [b["event"] for b in hook.bodies] == ["page"]
    page = hook.bodies[0]
    assert page["alert"]["severity"] == "warning" and page["alert"]["rule"].startswith("budget")
    assert page["text"].startswith("[llmtop] FIRING warning: ") and "owner:" in page["text"]
    assert hook.paths == [SECRET]

    for _ in range(2):  # the same incident, checked again: nothing new to say
        assert check(llmtop_db, cfg, hook).returncode == 1
    assert len(hook.bodies) == 1

    res = check(llmtop_db, rules(cfg, spend / 2), hook)  # 200%: critical
    assert res.returncode == 2
    assert [b["event"] for b in hook.bodies] == ["page", "escalate"]
    assert hook.bodies[1]["alert"]["severity"] == "critical"
    assert check(llmtop_db, cfg, hook).returncode == 2
    assert len(hook.bodies) == 2

    res = check(llmtop_db, rules(cfg, spend * 10), hook)  # 10%: nothing firing ...
    # ... for less than RESOLVE_AFTER: still open (listed quiet, as critical), nothing said
    assert res.returncode == 2 and "(quiet " in res.stdout, res.stdout
    assert len(hook.bodies) == 2
    later = NOW + RESOLVE_AFTER
    res = check(llmtop_db, cfg, hook, later)
    assert res.returncode == 0
    assert [b["event"] for b in hook.bodies] == ["page", "escalate", "resolve"]
    assert hook.bodies[2]["text"].startswith("[llmtop] RESOLVED ")
    assert check(llmtop_db, cfg, hook, later + 60).returncode == 0
    assert len(hook.bodies) == 3
    # The secret URL is never printed, nor stored.
    for out in (res.stdout, res.stderr):
        assert SECRET not in out
    dump = "\n".join(str(r) for r in _all_rows(llmtop_db, ("alerts", "drops")) if SECRET in str(r))
    assert not dump


def _all_rows(db: Path, tables: tuple[str, ...]) -> list[Any]:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return [r for t in tables for r in con.execute(f"SELECT * FROM {t}")]
    finally:
        con.close()


def test_retries_with_backoff_then_delivers_once(
    llmtop_db: Path, tmp_path: Path, hook: Hook
) -> None:
    build(llmtop_db)
    spend = scalar(llmtop_db, "SELECT TOTAL(cost_usd) FROM requests")
    hook.fail_first = 2
    res = check(llmtop_db, rules(tmp_path / "r.toml", spend / 2), hook)
    assert res.returncode == 2, res.stderr
    assert len(hook.paths) == 3 and [b["event"] for b in hook.bodies] == ["page"]


def test_command_gets_the_event_and_failures_are_one_line(
    llmtop_db: Path, tmp_path: Path, hook: Hook
) -> None:
    build(llmtop_db)
    spend = scalar(llmtop_db, "SELECT TOTAL(cost_usd) FROM requests")
    out = tmp_path / "events.jsonl"
    script = f"import os,sys; open({str(out)!r},'a').write(os.environ['LLMTOP_EVENT']+' '+sys.stdin.read()+'\\n')"
    cmd = json.dumps([sys.executable, "-c", script])
    hook.fail_first = 100  # the webhook keeps failing: the command still runs
    res = check(llmtop_db, rules(tmp_path / "r.toml", spend / 2, f"command = {cmd}"), hook)
    assert res.returncode == 2
    (line,) = out.read_text().splitlines()
    kind, body = line.split(" ", 1)
    assert kind == "page" and json.loads(body)["alert"]["severity"] == "critical"
    errors = [x for x in res.stderr.splitlines() if x.startswith("llmtop notify:")]
    assert len(errors) == 1 and "HTTP 500" in errors[0] and "$LLMTOP_TEST_HOOK" in errors[0]
    assert SECRET not in res.stderr


def test_a_malformed_webhook_url_is_one_line_that_never_shows_it(
    llmtop_db: Path, tmp_path: Path
) -> None:
    """`https://user:pw@host/x` (no port) made urllib raise InvalidURL quoting `pw@host`: a
    traceback on stderr (cron mail), exit 1. Now the gave-up line names the variable only."""
    build(llmtop_db)
    spend = scalar(llmtop_db, "SELECT TOTAL(cost_usd) FROM requests")
    cfg = rules(tmp_path / "r.toml", spend / 2)
    env = {**os.environ, "LLMTOP_TEST_HOOK": "https://user:hunter2@example.invalid/x"}
    res = subprocess.run(
        [sys.executable, "-m", "llmtop", "check", "--db", str(llmtop_db), "--config", str(cfg)]
        + ["--now", str(NOW)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert "hunter2" not in res.stderr + res.stdout and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].endswith("$LLMTOP_TEST_HOOK is not a valid URL"), (
        res.stderr
    )


def test_background_notifier_never_blocks_the_caller(hook: Hook) -> None:
    """The dashboard's path: submit returns at once while the endpoint is still failing."""
    hook.fail_first = 1
    os.environ["LLMTOP_TEST_HOOK"] = hook.url
    try:
        n = Notifier(NotifyConfig(webhook_url_env="LLMTOP_TEST_HOOK", backoff=0.2, retries=2))
        e = Event("page", "fp", "spike", "critical", "feature=chat", "spend 6x", "v2", None, NOW)
        n.submit([e])
        assert n.sent == 0  # returned before delivery
        assert n.join(30)
        assert n.sent == 1 and len(hook.bodies) == 1 and len(hook.paths) == 2
    finally:
        os.environ.pop("LLMTOP_TEST_HOOK", None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[notify]\nwebhook_url_env = "https://hooks.example/x"\n', "notify.webhook_url_env"),
        ("[notify]\n", "set webhook_url_env, command, or both"),
        ('[notify]\ncommand = ["x"]\non = ["pages"]\n', "notify.on"),
    ],
)
def test_bad_notify_section_is_one_line(
    llmtop_db: Path, tmp_path: Path, hook: Hook, body: str, message: str
) -> None:
    build(llmtop_db)
    cfg = tmp_path / "r.toml"
    cfg.write_text(body)
    res = check(llmtop_db, cfg, hook)
    assert res.returncode == 3 and res.stderr.count("\n") == 1
    assert f"{cfg}:" in res.stderr and message in res.stderr
    assert "hooks.example" not in res.stderr
