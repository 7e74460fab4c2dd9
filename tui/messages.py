"""Past-tense messages posted by workers; handlers only assign reactives."""

from __future__ import annotations

from typing import Any

from llmtop.store.views import RequestDetail, RequestRow, Snapshot
from textual.message import Message


class SnapshotLoaded(Message):
    """A snapshot to show. `cached`: kept from an earlier read of this view, posted so a key
    paints at once (no read ended). `ahead`: read ahead for a view not on screen (only kept)."""

    def __init__(self, snapshot: Snapshot, *, cached: bool = False, ahead: bool = False) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.cached = cached
        self.ahead = ahead


class RequestsLoaded(Message):
    def __init__(self, rows: tuple[RequestRow, ...]) -> None:
        super().__init__()
        self.rows = rows


class DetailLoaded(Message):
    def __init__(self, detail: RequestDetail | None) -> None:
        super().__init__()
        self.detail = detail


class AlertsEvaluated(Message):
    def __init__(self, new: list[Any], states: list[Any]) -> None:
        super().__init__()
        self.new = new
        self.states = states


class AlertPassEnded(Message):
    """An alert pass finished (however it ended): the next one may start."""


class AlertStateChanged(Message):
    """An alert was acknowledged or snoozed: show it by evaluating again."""


class DataChanged(Message):
    """The database (or its WAL) changed on disk: time to read again."""

    def can_replace(self, message: Message) -> bool:
        # A pending twin says the same thing: one refresh covers both.
        return isinstance(message, DataChanged)


class LoadFailed(Message):
    def __init__(self, error: str, *, snapshot: bool = False) -> None:
        super().__init__()
        self.error = error
        self.snapshot = snapshot  # True when the failed read was the dashboard's snapshot


class AckRequested(Message):
    """The user acknowledged an alert (the screen writes it)."""

    def __init__(self, fingerprint: str) -> None:
        super().__init__()
        self.fingerprint = fingerprint


class SnoozeRequested(Message):
    """The user snoozed an alert until `until` (epoch seconds)."""

    def __init__(self, fingerprint: str, until: float) -> None:
        super().__init__()
        self.fingerprint = fingerprint
        self.until = until


class JumpRequested(Message):
    """The user asked for the drill-down that explains an alert: a filter and a grouping."""

    def __init__(self, filter_text: str, group_by: str) -> None:
        super().__init__()
        self.filter_text = filter_text
        self.group_by = group_by


class AlertDetailRequested(Message):
    """The user opened an alert (enter on its line): the screen shows its detail."""

    def __init__(self, fingerprint: str) -> None:
        super().__init__()
        self.fingerprint = fingerprint


class SnoozeLengthRequested(Message):
    """The user pressed `z` on an alert: the screen asks how long, then snoozes it."""

    def __init__(self, fingerprint: str) -> None:
        super().__init__()
        self.fingerprint = fingerprint


class AlertFiguresLoaded(Message):
    """An alert's figures were read for its detail screen (tui.alerting.AlertFigures)."""

    def __init__(self, figures: Any) -> None:
        super().__init__()
        self.figures = figures


class ExportWritten(Message):
    """An export a worker streamed to a file: `rows` written, or `error` (one line)."""

    def __init__(self, path: Any, rows: int, error: str | None = None) -> None:
        super().__init__()
        self.path = path
        self.rows = rows
        self.error = error
