"""The dashboard's alerts: when a pass runs, the connections it uses, and ack/snooze.

Alerts read on their own connection (and write alert state through their own AlertStore): a
slow pass over a big file must never hold up the dashboard's refresh. One pass at a time: during
an incident a pass takes seconds (the likely causes) while new rows ask for one every
ALERT_MIN_GAP; a request during a pass runs one more right after it.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from llmtop.store.alert_state import AlertStore
from llmtop.store.filters import format_window, parse_window
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
        clock: Callable[[], float],
    ) -> None:
        self.host = host
        self.db_path = db_path
        self.rules_path = rules_path
        #: Alerts are live whatever window the screen shows: a pass at a past window's end would
        #: resolve every open incident in the shared state (and reopen them, acks lost, back in
        #: the present), so passes and acks run at the clock's time, never the view's.
        self.clock = clock
        self.lock = threading.Lock()
        self.busy = False
        self.again = False
        #: time.monotonic() of the last pass's start (0: none yet).
        self.last_pass = 0.0
        self._rules: Any = None
        self._reader: Reader | None = None
        self._store: AlertStore | None = None
        #: Why alert state cannot be kept on this source (None: it can): set by the first pass.
        self.unrecordable: str | None = None
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

    @property
    def rules(self) -> Any:
        """The rules of the last pass (None before the first): the detail screen's windows."""
        return self._rules

    def _pass_worker(self) -> None:
        try:
            self.run_pass()
        finally:
            # A message, not call_from_thread: that would block this thread forever if the app
            # is quitting, and the app waits for its threads.
            self.host.post_message(AlertPassEnded())

    def run_pass(self) -> None:
        """One evaluation and its paging-state sync (in a worker thread)."""
        # Not skipped while paused: `p` freezes the view, not the paging. A dashboard paused
        # and left (the only process running alert passes, with [notify]) paged no one.
        self.last_pass = time.monotonic()
        try:
            from llmtop.alerts.cache import AlertCache
            from llmtop.alerts.evaluate import evaluate
            from llmtop.alerts.notify import sync_notifying
            from llmtop.alerts.rules import check_dimensions, default_rules_path, load_rules
            from llmtop.alerts.state import LookBack, unrecorded
            from llmtop.store.db import DatabaseError

            fresh = self._rules is None
            if fresh:
                self._rules = load_rules(self.rules_path or default_rules_path(self.db_path))
            now = self.clock()
            with self.lock:
                if self._reader is None:
                    self._reader = Reader(self.db_path)
                if fresh:
                    try:
                        check_dimensions(self._rules, self._reader)
                    except Exception:
                        self._rules = None  # said again at the next pass, until it is fixed
                        raise
                if self._cache is None:
                    self._cache = AlertCache()
                fired = evaluate(
                    self._reader,
                    self._rules,
                    now,
                    explain_budget=EXPLAIN_BUDGET,
                    cache=self._cache,
                )
                if self.unrecordable is None and self._store is None:
                    try:
                        self._store = AlertStore(self.db_path)
                    except DatabaseError as exc:
                        # A source llmtop only reads (a LiteLLM proxy's database): the alerts
                        # still show, unrecorded, and the reason is said once, not every pass.
                        self.unrecordable = str(exc)
                        self.host.post_message(LoadFailed(f"alerts shown, not recorded: {exc}"))
                if self._store is None:
                    new, states = [], unrecorded(fired, now)
                else:
                    try:
                        # [notify] events go to a background thread: delivery never holds the
                        # pass.
                        new, states = sync_notifying(self._store, fired, now, self._rules.notify)
                    except LookBack as exc:
                        # This host's clock is minutes behind another's that records the same
                        # state (a fleet): shown, not recorded, until it catches up.
                        self.host.post_message(LoadFailed(f"alerts shown, not recorded: {exc}"))
                        new, states = [], unrecorded(fired, now)
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
                states = alert_state.states(store, self.clock())
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


# --- what the panel, the toast and the detail screen share -------------------------------------
# The alert engine is being changed alongside this (stable fingerprints, one severity per
# incident, an "escalated" mark, a snooze-length parser, resolved incidents per pass). These
# functions are the dashboard's only way to ask: each uses the engine's public answer when it
# has one and otherwise works it out from the states the engine stores, so the panel, the toast
# and the detail screen can never disagree with each other.


def incident_severity(root: Any, children: Sequence[Any] = ()) -> str:
    """The one severity an incident shows everywhere: critical if any alert filed under it is
    (the engine pages the root with it; `llmtop check` prints it)."""
    severities = [getattr(a, "severity", "warning") for a in (root, *children)]
    from llmtop.alerts import incidents as engine

    severity_of = getattr(engine, "severity_of", None)  # the engine's one function, once landed
    if callable(severity_of):
        return str(severity_of(severities))
    return "critical" if "critical" in severities else "warning"


def is_escalated(a: Any) -> bool:
    """The incident turned critical after it was acknowledged (it paged once more)."""
    return bool(getattr(a, "escalated", False))


#: The snooze lengths `z` offers, in order; a typed length or clock time works too.
SNOOZE_CHOICES: tuple[str, ...] = ("15m", "1h", "4h", "until tomorrow 09:00")


def parse_snooze(text: str, now: float) -> float:
    """A snooze length → the instant it ends (epoch seconds). '15m', '1h', '4h', '2d';
    'until tomorrow 09:00' (or 'tomorrow 9:00', 'tomorrow'); 'until 18:30' (its next
    occurrence, local time). ValueError with one line saying what is accepted."""
    from llmtop.alerts import state as engine

    parse = getattr(engine, "parse_snooze", None)  # the engine's parser, once landed
    if callable(parse):
        return float(parse(text, now))
    t = " ".join(text.lower().split())
    t = t.removeprefix("until ").strip()
    if not t:
        raise ValueError("a snooze length: 15m, 1h, 4h, or until tomorrow 09:00")
    base = datetime.fromtimestamp(now)
    day = 0
    if t.startswith("tomorrow"):
        day, t = 1, (t.removeprefix("tomorrow").strip() or "09:00")
    m = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?", t)
    if m and (day or ":" in t):
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        if hour > 23 or minute > 59:
            raise ValueError(f"no such time {t!r}: use HH:MM")
        at = base.replace(hour=hour, minute=minute, second=0, microsecond=0)
        at += timedelta(days=day)
        if not day and at <= base:
            at += timedelta(days=1)
        return at.timestamp()
    try:
        length = parse_window(t)
    except ValueError:
        raise ValueError(
            f"bad snooze length {text.strip()!r}: use 15m, 1h, 4h, or until tomorrow 09:00"
        ) from None
    return now + length


def toast_text(root: Any, children: Sequence[Any] = ()) -> str:
    """One line: severity, scope, headline. The cause, owner and related alerts are in the
    detail screen (enter on the alert); a toast at 80 columns has room for one line only."""
    sev = incident_severity(root, children).upper()
    mark = " (escalated)" if is_escalated(root) else ""
    more = f" · +{len(children)} related" if children else ""
    text = f"{sev}{mark} {root.scope or 'all'} · {root.title}{more}"
    return " ".join(text.split())  # never a line break: tag values can hold one


def toast_for(new: Sequence[Any], states: Sequence[Any]) -> tuple[str, str]:
    """(text, Textual notification severity) of the one toast for a pass's new pages: the
    first (critical first), with how many more came with it. Plain text: shown markup-off,
    since alert text quotes tag values, which must stay inert."""
    from llmtop.tui.format import safe
    from llmtop.tui.widgets.alerts_panel import group_states

    live = [s for s in states if getattr(s, "state", "open") != "resolved"]
    under = {root.fingerprint: children for root, children in group_states(live)}
    first = new[0]
    children = under.get(first.fingerprint, [])
    # The stored state says whether this page is an escalation (the Alert itself does not).
    stored = next((s for s in states if s.fingerprint == first.fingerprint), first)
    text = toast_text(stored if is_escalated(stored) else first, children)
    if len(new) > 1:
        text += f" · +{len(new) - 1} more new"
    severity = "error" if incident_severity(first, children) == "critical" else "warning"
    return safe(text).plain, severity


# --- the detail screen's figures -------------------------------------------------------------

#: Points in the detail screen's spend chart.
CHART_POINTS = 36
#: Windows just before the alert's that make a spike's baseline (the rule's own is 2 hours).
TRAILING_WINDOWS = 12
#: Chart bucket lengths (round ones, so the axis says "$ per 5m", never "$ per 437s").
BUCKETS = (60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
#: Previous days whose same window gives the baseline the detail screen shows.
BASELINE_DAYS = 7


@dataclass(frozen=True)
class AlertFigures:
    """The numbers behind an alert, read for its detail screen: the scope's spend in the rule's
    window against the same window on the previous days, and its spend over time around the
    alert's start."""

    window: float
    spend: float
    requests: int
    #: Spend in each baseline window (newest first) and what they are.
    baseline: tuple[float, ...]
    baseline_label: str
    #: (start of each chart bucket, spend in it), oldest first; buckets are `bucket` s long.
    series: tuple[tuple[float, float], ...]
    bucket: float
    now: float
    #: Requests in each baseline window, as `baseline`.
    baseline_requests: tuple[int, ...] = ()

    @property
    def per_call(self) -> float | None:
        return self.spend / self.requests if self.requests else None

    @property
    def baseline_per_call(self) -> float | None:
        n = sum(self.baseline_requests)
        return sum(self.baseline) / n if n else None

    @property
    def mean(self) -> float | None:
        return sum(self.baseline) / len(self.baseline) if self.baseline else None

    @property
    def sigma(self) -> float | None:
        n = len(self.baseline)
        if n < 2 or self.mean is None:
            return None
        m = self.mean
        return (sum((x - m) ** 2 for x in self.baseline) / (n - 1)) ** 0.5

    @property
    def sigmas(self) -> float | None:
        """How many baseline σ the window is above the baseline mean."""
        s, m = self.sigma, self.mean
        return (self.spend - m) / s if s and m is not None else None

    @property
    def ratio(self) -> float | None:
        m = self.mean
        return self.spend / m if m else None

    @property
    def extra(self) -> float | None:
        """Dollars over the baseline mean."""
        m = self.mean
        return None if m is None else self.spend - m


def rule_window(rules: Any, rule: str) -> float:
    """The window the alert's rule judges (its section's `window`); one hour for budgets and
    rules without one."""
    from llmtop.alerts.detectors import RATE_RULES

    section = "rates" if rule in RATE_RULES else rule
    w = getattr(getattr(rules, section, None), "window", None)
    return float(w) if isinstance(w, (int, float)) and w > 0 else 3600.0


def rule_is_spike(rule: str) -> bool:
    return rule == "spike"


#: Rules whose verdict is a cost per call since a change: their figures are per call, over the
#: time since the change, not an hour's spend (a deploy that doubles each call's cost on a quiet
#: hour can spend less than the same hour of busier days, and the figures argued against it).
PER_CALL_RULES = frozenset({"cost_per_call"})


def alert_window(rules: Any, alert: Any, now: float) -> float:
    """The window an alert's figures compare: since the change for a cost per call, else the
    rule's own (rule_window)."""
    if alert.rule in PER_CALL_RULES:
        return max(60.0, now - alert.since)
    return rule_window(rules, alert.rule)


def spike_baseline(
    base: Sequence[tuple[float, float]], window: float
) -> tuple[list[tuple[int, float, float]], str]:
    """The spike rule's own normal as windows of the alert's length: the ranges it took as
    normal (the trailing two hours, the same time on previous days, or last week's busiest
    window), each cut into `window`-long pieces, so their mean is the headline's "its normal".
    Worked out afresh (the 12 windows before), the detail said "its normal $8.88/h" in the
    headline beside "x4.7 its baseline", and the two drifted apart as the incident went on."""
    pieces: list[tuple[int, float, float]] = []
    for a, b in sorted(base, reverse=True):
        n = max(1, round((b - a) / window))
        step = (b - a) / n
        pieces += [(len(pieces) + i + 1, a + i * step, a + (i + 1) * step) for i in range(n)]
    w = format_window(round(window))
    if len(base) == 1 and len(pieces) == 1:
        label = f"its normal, the busiest {w} around this time last week"
    elif len(base) == 1:
        label = f"its normal, the {len(pieces)} {w} windows of the {format_window(round(base[0][1] - base[0][0]))} before"  # fmt: skip
    else:
        label = f"its normal, this time of day on the previous {len(base)} days ({len(pieces)} {w} windows)"  # fmt: skip
    return pieces, label


def read_figures(db_path: Path, alert: Any, window: float, now: float) -> AlertFigures:
    """Read an alert's figures through the store's alert queries (in a worker thread; its own
    short-lived connection, so an alert pass holding the scheduler's is never waited for)."""
    from llmtop.store.alert_queries import aggregate, first_row_at
    from llmtop.store.filters import parse_filter

    clauses = parse_filter(alert.scope or "")
    base = tuple(getattr(alert, "base", ()) or ())
    if rule_is_spike(alert.rule) and base and getattr(alert, "last_seen", None):
        # The instant of the pass that judged it: the last window is the headline's, and the
        # normal (its base ranges, kept from that pass) is the headline's too.
        now = min(now, alert.last_seen)
    span = max(4 * window, now - alert.since + 2 * window, 3600.0)
    bucket = next((b for b in BUCKETS if b * CHART_POINTS >= span), BUCKETS[-1])
    points = min(CHART_POINTS, math.ceil(span / bucket))
    start = now - bucket * points
    reader = Reader(db_path)
    try:
        first = first_row_at(reader) or now
        # The same window on previous days; a spike (or a file younger than two days) is
        # judged against the windows just before it instead, as the spike rule does.
        days = [
            (d, now - d * 86400 - window, now - d * 86400)
            for d in range(1, BASELINE_DAYS + 1)
            if now - d * 86400 - window >= first
        ]
        label = f"same {format_window(round(window))} on the previous {len(days)} days"
        if rule_is_spike(alert.rule) and base:
            days, label = spike_baseline(base, window)
        elif rule_is_spike(alert.rule) or len(days) < 2:
            days = [
                (d, now - (d + 1) * window, now - d * window)
                for d in range(1, TRAILING_WINDOWS + 1)
                if now - (d + 1) * window >= first
            ]
            label = f"the {len(days)} {format_window(round(window))} windows before"
        chart = [(10_000 + i, start + i * bucket, start + (i + 1) * bucket) for i in range(points)]
        ranges = [(0, now - window, now), *days, *chart]
        got = {idx: agg for idx, _keys, agg in aggregate(reader, ranges, (), clauses)}
    finally:
        reader.close()
    cur = got.get(0)
    return AlertFigures(
        window=window,
        spend=cur.spend if cur else 0.0,
        requests=int(cur.requests) if cur else 0,
        baseline=tuple(got[d].spend if d in got else 0.0 for d, _a, _b in days),
        baseline_requests=tuple(int(got[d].requests) if d in got else 0 for d, _a, _b in days),
        baseline_label=label,
        series=tuple((a, got[i].spend if i in got else 0.0) for i, a, _b in chart),
        bucket=bucket,
        now=now,
    )
