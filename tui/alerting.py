"""The dashboard's alerts: when a pass runs, the connections it uses, and ack/snooze.

Alerts read on their own connection (and write alert state through their own AlertStore): a
slow pass over a big file must never hold up the dashboard's refresh. One pass at a time: during
an incident a pass takes seconds (the likely causes) while new rows ask for one every
ALERT_MIN_GAP; a request during a pass runs one more right after it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from llmtop.store.alert_state import AlertStore
from llmtop.store.reader import Reader
from llmtop.tui.messages import AlertPassEnded, AlertsEvaluated, AlertStateChanged, LoadFailed
from textual.dom import DOMNode

#: Seconds of likely-cause analysis per alert pass before the rest wait for the next pass.
EXPLAIN_BUDGET = 3.0


class AlertScheduler:
    def __init__(
        self,
        host: DOMNode,
        db_path: Path,
        rules_path: Path | None,
        now: Callable[[], float],
        paused: Callable[[], bool],
        clock: Callable[[], float],
    ) -> None:
        self.host = host
        self.db_path = db_path
        self.rules_path = rules_path
        self.now = now
        self.paused = paused
        self.clock = clock
        self.lock = threading.Lock()
        self.busy = False
        self.again = False
        #: time.monotonic() of the last pass's start (0: none yet).
        self.last_pass = 0.0
        self._rules: Any = None
        self._reader: Reader | None = None
        self._store: AlertStore | None = None
        self._cache: Any = None  # alerts.cache.AlertCache, imported with the first pass

    def evaluate(self) -> None:
        """Start a pass, unless one is running: then one more runs right after it."""
        if self.busy:
            self.again = True
            return
        self.busy, self.again = True, False
        self.host.run_worker(self._pass_worker, thread=True, exclusive=True, group="alerts")

    def pass_ended(self) -> None:
        """The host got AlertPassEnded."""
        self.busy = False
        if self.again:
            self.evaluate()

    def reload_rules(self) -> None:
        self._rules = None

    def _pass_worker(self) -> None:
        try:
            self.run_pass()
        finally:
            # A message, not call_from_thread: that would block this thread forever if the app
            # is quitting, and the app waits for its threads.
            self.host.post_message(AlertPassEnded())

    def run_pass(self) -> None:
        """One evaluation and its paging-state sync (in a worker thread)."""
        self.last_pass = time.monotonic()
        if self.paused():
            return
        try:
            from llmtop.alerts.cache import AlertCache
            from llmtop.alerts.evaluate import evaluate
            from llmtop.alerts.notify import sync_notifying
            from llmtop.alerts.rules import default_rules_path, load_rules

            if self._rules is None:
                self._rules = load_rules(self.rules_path or default_rules_path(self.db_path))
            now = self.now()
            with self.lock:
                if self._reader is None:
                    self._reader = Reader(self.db_path)
                if self._cache is None:
                    self._cache = AlertCache()
                fired = evaluate(
                    self._reader,
                    self._rules,
                    now,
                    explain_budget=EXPLAIN_BUDGET,
                    cache=self._cache,
                )
                if self._store is None:
                    self._store = AlertStore(self.db_path)
                # [notify] events go to a background thread: delivery never holds the pass.
                new, states = sync_notifying(self._store, fired, now, self._rules.notify)
        except Exception as exc:  # an alerting problem must not take the dashboard down
            self.host.post_message(LoadFailed(f"alerts: {exc}"))
            return
        self.host.post_message(AlertsEvaluated(new, states))

    def change(self, fingerprint: str, what: str, until: float | None = None) -> None:
        """Ack ("ack") or snooze ("snooze" until `until`) an alert, in a worker thread."""
        self.host.run_worker(
            partial(self._change, fingerprint, what, until), thread=True, group="alert-state"
        )

    def _change(self, fingerprint: str, what: str, until: float | None) -> None:
        from llmtop.alerts import state as alert_state

        # Its own short-lived connection, not the pass's: a pass over a big file can take many
        # seconds during an incident, and an ack must not wait for it to show.
        try:
            store = AlertStore(self.db_path)
            try:
                if what == "ack":
                    alert_state.ack(store, fingerprint)
                else:
                    alert_state.snooze(store, fingerprint, until or self.clock())
                states = alert_state.states(store, self.now())
            finally:
                store.close()
        except Exception as exc:
            self.host.post_message(LoadFailed(f"alerts: {exc}"))
            return
        self.host.post_message(AlertsEvaluated([], states))
        self.host.post_message(AlertStateChanged())

    def close(self) -> None:
        with self.lock:
            if self._reader is not None:
                self._reader.close()
            if self._store is not None:
                self._store.close()
