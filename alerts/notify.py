"""Telling on-call: a webhook and/or a command, once per incident page, escalation and resolve.

Configured by `[notify]` in the rules file. Which alerts page is decided by the paging state in
the database (alerts/state.py): every process sharing the file (dashboards, `llmtop check` from
cron) agrees an incident already paged, so it is announced once whoever sees it first. The
webhook's URL is a secret (Slack's carries its token in the path): the rules file names the
environment variable that holds it, and no message, log line or database row ever contains it.
Delivery retries with backoff under a timeout; the dashboard hands events to a background thread
so a slow endpoint never holds the screen.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from llmtop.alerts.model import Alert, AlertState, SyncResult
from llmtop.alerts.state import sync_pass
from llmtop.store.alert_state import AlertStore

EVENTS = ("page", "escalate", "resolve")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class NotifyConfig:
    """`[notify]`: where events go and how hard to try."""

    webhook_url_env: str | None = None
    command: tuple[str, ...] = ()
    on: tuple[str, ...] = EVENTS
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 1.0


def parse_notify(ck: Any, data: Any) -> NotifyConfig | None:
    """Validate `[notify]` with the rules file's checker (its `file:line: key: problem` errors)."""
    if data is None:
        return None
    w = ("notify",)
    d = ck.table(data, w, ("webhook_url_env", "command", "on", "timeout", "retries", "backoff"))
    env = d.get("webhook_url_env")
    if env is not None and (not isinstance(env, str) or not _ENV_NAME.match(env)):
        raise ck.fail(
            (*w, "webhook_url_env"),
            'must name an environment variable holding the URL, like "LLMTOP_WEBHOOK_URL"'
            " (the URL is a secret: it never goes in this file, and is not repeated here)",
        )
    cmd = d.get("command", [])
    if not isinstance(cmd, list) or not all(isinstance(x, str) and x for x in cmd):
        raise ck.fail(
            (*w, "command"), f'must be a list like ["notify-send", "llmtop"], got {cmd!r}'
        )
    if env is None and not cmd:
        raise ck.fail(w, "set webhook_url_env, command, or both")
    on = d.get("on", list(EVENTS))
    if not isinstance(on, list) or not on or any(x not in EVENTS for x in on):
        raise ck.fail((*w, "on"), f"must be a list of {', '.join(EVENTS)}, got {on!r}")
    return NotifyConfig(
        webhook_url_env=env,
        command=tuple(cmd),
        on=tuple(dict.fromkeys(on)),
        timeout=ck.window(d, w, "timeout", 10.0),
        retries=ck.integer(d, w, "retries", 3, 0),
        backoff=ck.window(d, w, "backoff", 1.0),
    )


@dataclass(frozen=True)
class Event:
    kind: str  # page | escalate | resolve
    fingerprint: str
    rule: str
    severity: str
    scope: str
    title: str
    cause: str
    owner: str | None
    since: float

    @property
    def text(self) -> str:
        """One line a chat channel shows as it is (Slack's `text`)."""
        head = {"page": "FIRING", "escalate": "ESCALATED", "resolve": "RESOLVED"}[self.kind]
        parts = [f"[llmtop] {head} {self.severity}: {self.title} ({self.scope or 'all'})"]
        if self.kind != "resolve":
            parts.append(f"cause: {self.cause or '-'}")
        parts.append(f"owner: {self.owner or '-'}")
        return "; ".join(parts)

    def payload(self) -> dict[str, Any]:
        since = datetime.fromtimestamp(self.since, timezone.utc).isoformat(timespec="seconds")
        return {
            "text": self.text,
            "event": self.kind,
            "alert": {
                "fingerprint": self.fingerprint,
                "rule": self.rule,
                "severity": self.severity,
                "scope": self.scope,
                "title": self.title,
                "cause": self.cause,
                "owner": self.owner,
                "since": since,
            },
        }


def _event(kind: str, a: Alert | AlertState) -> Event:
    return Event(
        kind, a.fingerprint, a.rule, a.severity, a.scope, a.title, a.cause, a.owner, a.since
    )


def events_of(result: SyncResult) -> list[Event]:
    """What one sync announces: its pages and escalations, and the incidents it resolved that
    had been announced (each by the process whose pass decided it, so once)."""
    events = [_event(p.kind, p.alert) for p in result.pages]
    by_fp = {s.fingerprint: s for s in result.states}
    for inc in result.closed:
        root = by_fp.get(inc.root)
        if inc.paged is not None and root is not None and inc.resolved_at is not None:
            events.append(_event("resolve", replace(root, severity=inc.severity)))
    return events


def sync_events(
    store: AlertStore, alerts: Sequence[Alert], now: float
) -> tuple[list[Alert], list[AlertState], list[Event]]:
    """alerts.state.sync, plus what to announce (events_of)."""
    res = sync_pass(store, alerts, now)
    return res.new, res.states, events_of(res)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Notifier:
    """Delivers events: `deliver` waits (for `llmtop check`), `submit` hands them to a thread."""

    def __init__(self, config: NotifyConfig, log: Callable[[str], None] = _log) -> None:
        self.config = config
        self.log = log
        self.sent = 0
        self.failed = 0
        self._queue: queue.Queue[Event] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def deliver(self, events: Sequence[Event]) -> None:
        for e in events:
            if e.kind not in self.config.on:
                continue
            ok = True
            if self.config.webhook_url_env:
                ok &= self._retry(e, self._post, f"webhook (${self.config.webhook_url_env})")
            if self.config.command:
                ok &= self._retry(e, self._run, f"command {self.config.command[0]}")
            if ok:
                self.sent += 1
            else:
                self.failed += 1

    def submit(self, events: Sequence[Event]) -> None:
        """Never blocks: the events go to the notifier's thread."""
        for e in events:
            self._queue.put(e)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="llmtop-notify", daemon=True
                )
                self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait (bounded) until every submitted event is delivered or given up."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _work(self) -> None:
        while True:
            try:
                e = self._queue.get(timeout=5.0)
            except queue.Empty:
                return
            try:
                self.deliver([e])
            except Exception as exc:  # never let one bad event end the thread silently
                # The type only: a message can quote the webhook's URL (a secret).
                self.log(f"llmtop notify: {type(exc).__name__}")
            finally:
                self._queue.task_done()

    def _retry(self, e: Event, send: Callable[[Event], str | None], what: str) -> bool:
        problem = "not tried"
        for attempt in range(self.config.retries + 1):
            if attempt:
                time.sleep(self.config.backoff * 2 ** (attempt - 1))
            problem = send(e)
            if problem is None:
                return True
            if problem.startswith("permanent: "):
                break
        self.log(f"llmtop notify: {what}: gave up on the {e.kind} of {e.fingerprint}: {problem}")
        return False

    def _post(self, e: Event) -> str | None:
        """None when delivered, else why (never the URL: it is a secret)."""
        url = os.environ.get(self.config.webhook_url_env or "", "")
        if not url.startswith(("http://", "https://")):
            return f"permanent: ${self.config.webhook_url_env} is not set to an http(s) URL"
        req = urllib.request.Request(
            url,
            data=json.dumps(e.payload()).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "llmtop"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.config.timeout) as resp:
                resp.read()
            return None
        except urllib.error.HTTPError as exc:
            code = exc.code
            kind = "" if code == 429 or code >= 500 else "permanent: "
            return f"{kind}HTTP {code}"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"{type(reason).__name__}" if not isinstance(reason, str) else "unreachable"
        except (ValueError, http.client.InvalidURL):
            # http.client.InvalidURL (`https://user:pw@host` without a port reads `pw@host` as
            # the port): its message quotes the URL, a secret, so only the variable is named.
            return f"permanent: ${self.config.webhook_url_env} is not a valid URL"
        except Exception as exc:  # noqa: BLE001 - whatever urllib raises: a line, never a crash
            return type(exc).__name__

    def _run(self, e: Event) -> str | None:
        env = {
            **os.environ,
            "LLMTOP_EVENT": e.kind,
            "LLMTOP_SEVERITY": e.severity,
            "LLMTOP_TEXT": e.text,
        }
        try:
            res = subprocess.run(
                list(self.config.command),
                input=json.dumps(e.payload()),
                text=True,
                env=env,
                capture_output=True,
                timeout=self.config.timeout,
            )
        except FileNotFoundError:
            return f"permanent: {self.config.command[0]}: not found"
        except (subprocess.TimeoutExpired, OSError) as exc:
            return type(exc).__name__
        return None if res.returncode == 0 else f"exit status {res.returncode}"


_notifiers: dict[NotifyConfig, Notifier] = {}


def sync_pass_notifying(
    store: AlertStore,
    alerts: Sequence[Alert],
    now: float,
    config: NotifyConfig | None,
    *,
    previous: float | None = None,
) -> SyncResult:
    """The dashboard's sync: alerts.state.sync_pass, handing this pass's events (events_of) to a
    background notifier when `[notify]` is configured."""
    res = sync_pass(store, alerts, now, previous=previous)
    if config is None:
        return res
    events = events_of(res)
    if events:
        notifier = _notifiers.get(config)
        if notifier is None:
            notifier = _notifiers[config] = Notifier(config)
        notifier.submit(events)
    return res


def sync_notifying(
    store: AlertStore, alerts: Sequence[Alert], now: float, config: NotifyConfig | None
) -> tuple[list[Alert], list[AlertState]]:
    """sync_pass_notifying, as alerts.state.sync's (pages, states)."""
    res = sync_pass_notifying(store, alerts, now, config)
    return res.new, res.states
