"""The dashboard's alert handlers: passes, toasts, ack, snooze, the alert detail and the jump
to a drill-down. A mixin of DashboardScreen, kept apart so the screen's own file stays about
layout, reading and table keys; it acts only through the screen's public members (`alerts`,
`alert_states`, `jump`, `now`, `clock`, `db_path`)."""

from __future__ import annotations

import time
from typing import Any

from llmtop.tui.alerting import toast_for
from llmtop.tui.messages import (
    AckRequested,
    AlertDetailRequested,
    AlertPassEnded,
    AlertsEvaluated,
    AlertStateChanged,
    JumpRequested,
    SnoozeLengthRequested,
    SnoozeRequested,
)
from llmtop.tui.widgets.alerts_panel import AlertsPanel

#: An alert toast's life: long enough to read one line, short enough not to sit on the screen.
TOAST_SECONDS = 4.0


class AlertHandlers:
    """Textual finds `on_*` handlers along the MRO, so a plain mixin is enough."""

    #: time.monotonic() of the last alert toast.
    toasted_at: float | None = None
    alerts: Any
    alert_states: Any
    app: Any
    db_path: Any

    def on_alert_pass_ended(self, _message: AlertPassEnded) -> None:
        self.alerts.pass_ended()

    def on_alert_state_changed(self, _message: AlertStateChanged) -> None:
        self.alerts.evaluate()

    def on_alerts_evaluated(self, message: AlertsEvaluated) -> None:
        self.alert_states = message.states
        if message.new:
            self.toast(message.new, message.states)

    def toast(self, new: list[Any], states: list[Any]) -> None:
        """One one-line toast per pass (tui.alerting.toast_for); a newer one replaces one still
        showing rather than stacking up onto the table."""
        text, severity = toast_for(new, states)
        if self.toasted_at is not None and time.monotonic() - self.toasted_at < TOAST_SECONDS:
            self.app.clear_notifications()
        self.toasted_at = time.monotonic()
        self.notify(text, severity=severity, timeout=TOAST_SECONDS, markup=False)
        self.app.bell()

    def on_ack_requested(self, message: AckRequested) -> None:
        self.alerts.change(message.fingerprint, "ack")

    def on_snooze_requested(self, message: SnoozeRequested) -> None:
        self.alerts.change(message.fingerprint, "snooze", message.until)

    def on_snooze_length_requested(self, message: SnoozeLengthRequested) -> None:
        from llmtop.tui.screens.snooze_prompt import SnoozePrompt

        fp = message.fingerprint
        a = next((s for s in self.alert_states if s.fingerprint == fp), None)

        def chosen(until: float | None) -> None:
            if until is not None:
                self.alerts.change(fp, "snooze", until)

        self.app.push_screen(SnoozePrompt(a.scope if a else "", self.clock()), chosen)

    def on_alert_detail_requested(self, message: AlertDetailRequested) -> None:
        from llmtop.tui.alerting import alert_window
        from llmtop.tui.screens.alert_detail import AlertDetailScreen

        a = next((s for s in self.alert_states if s.fingerprint == message.fingerprint), None)
        if a is None:
            return
        panel = self.query_one(AlertsPanel)

        def closed(outcome: tuple[str, str] | None) -> None:
            if outcome is None:
                return
            what, fp = outcome
            if what == "jump":
                self.jump(*a.drill)
            elif what == "ack":
                self.alerts.change(fp, "ack")
            elif what == "snooze":
                self.post_message(SnoozeLengthRequested(fp))

        screen = AlertDetailScreen(
            a,
            panel.incident(a.fingerprint),
            self.db_path,
            alert_window(self.alerts.rules, a, self.clock()),
            self.clock(),  # alerts are live whatever window the screen shows
        )
        self.app.push_screen(screen, closed)

    def on_jump_requested(self, message: JumpRequested) -> None:
        self.jump(message.filter_text, message.group_by)
