"""A seeded, realistic LLM workload that goes through the real collector path.

Why payloads and not rows: the demo must exercise exactly what a user's app exercises. Every call
is built as the kwargs dict LiteLLM hands its logging callbacks (shapes from
shared/reference/litellm-callbacks.md) and passed to `CollectorCore.log`, so mapping, attempt
numbering, pricing and batching in the demo are the production code, not a copy. litellm itself
is never imported: the demo starts in a fraction of a second and runs on machines without it.

Why an injectable clock: every generator takes the time span it covers as arguments and draws
from one `random.Random(seed)`, so a test can replay ten simulated minutes in milliseconds and
get the same rows every time. Only `Simulator.run_live` reads the wall clock.

The story the data tells (see `FEATURES`): six features owned by five teams, a heavy-tailed user
population, daily seasonality, rate limits with retries and fallbacks, a nightly batch burst, and
one scripted incident: `support-summarize` ships prompt v2 and its spend rate jumps about 8x.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from llmtop.demo.payloads import Attempt, Payloads, fast_record
from llmtop.demo.scenario import (
    CUSTOMER_WORDS,
    FEATURES,
    INCIDENT,
    MODEL_GROUPS,
    REALTIME,
    REALTIME_CUM,
    Feature,
    in_enrich_window,
    seasonality,
)
from llmtop.store.records import CallRecord


def _poisson(rng: random.Random, mu: float) -> int:
    if mu <= 0:
        return 0
    if mu < 30:
        limit, k, p = math.exp(-mu), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    return max(0, round(rng.gauss(mu, math.sqrt(mu))))


# --- the simulator --------------------------------------------------------------------------------


class Sink(Protocol):
    """What the simulator writes to: `CollectorCore` (the real path) or a list in a test."""

    def log(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any, failed: bool
    ) -> None: ...


class Simulator:
    """Generates requests for any time span; writes them through a collector-shaped sink.

    `rate` is calls per second at the seasonal level of `rate_ref` (default: the time the live
    run starts), so `--speed 20` means 20 calls/s now, and history at the same hour of another
    day has the same density.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        seed: int = 0,
        stream: int = 0,
        incident_at: float | None = None,
        n_users: int = 320,
        n_customers: int = 40,
        zipf_s: float = 1.15,
    ) -> None:
        self.sink = sink
        rng = random.Random(seed)
        self.rng = rng
        self.payloads = Payloads(rng)
        self.incident_at = incident_at
        self.emitted = 0
        self._seq = 0
        self._pending: list[tuple[float, int, Attempt]] = []
        rng = self.rng
        self.customers = [
            f"{w}-{rng.choice(('inc', 'corp', 'labs', 'co', 'gmbh', 'ltd'))}"
            for w in CUSTOMER_WORDS[:n_customers]
        ]
        # Heavy-tailed users: Zipf weights, so the first one or two users dominate spend. Each
        # user belongs to one customer; names are shuffled so rank is not visible in the name.
        self.users = [f"user-{rng.getrandbits(24):06x}" for _ in range(n_users)]
        cw = [1.0 / (i + 1) ** 0.8 for i in range(len(self.customers))]
        self.user_customer = {u: rng.choices(self.customers, weights=cw)[0] for u in self.users}
        acc, self._user_cum = 0.0, []
        for i in range(n_users):
            acc += 1.0 / (i + 1) ** zipf_s
            self._user_cum.append(acc)
        if stream:
            # The same customers and users (the seed's), another stream of traffic: the live run
            # must not replay the history's first minutes, nor invent a new population, whose
            # every user the new-entity rule would rightly page as new.
            self.rng = random.Random(seed * 1_000_003 + stream)
            self.payloads = Payloads(self.rng)

    # --- draws --------------------------------------------------------------------------------
    def _user(self) -> str:
        r = self.rng.random() * self._user_cum[-1]
        lo, hi = 0, len(self._user_cum) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._user_cum[mid] < r:
                lo = mid + 1
            else:
                hi = mid
        return self.users[lo]

    def _id(self, prefix: str) -> str:
        return self.payloads.new_id(prefix)

    # --- one request ----------------------------------------------------------------------------
    def request(self, feature: Feature, t: float) -> list[Attempt]:
        """All attempts of one request arriving at t: a 429 is followed by a retry (same
        trace_id) and, when the retry is rate limited too, a fallback to another model group."""
        rng = self.rng
        group = (
            feature.model_groups[0][0]
            if len(feature.model_groups) == 1
            else rng.choices(
                [g for g, _ in feature.model_groups], [w for _, w in feature.model_groups]
            )[0]
        )
        incident = (
            feature.name == INCIDENT["feature"]
            and self.incident_at is not None
            and t >= self.incident_at
        )
        user = None if feature.workload == "batch" else self._user()
        customer = self.user_customer[user] if user else rng.choice(self.customers)
        tags = {
            "feature": feature.name,
            "endpoint": feature.endpoint,
            "team": feature.team,
            "environment": "prod",
            "workload": feature.workload,
            "customer": customer,
            "prompt_version": "v2" if incident else "v1",
            "route_version": "r13" if incident else "r12",
            "correlation_id": self._id("req_"),
        }
        if user:
            tags["user"] = user
        trace_id = self._id("trace-")
        # Shape is drawn once per request, so a retry resends the same prompt.
        shape = self.payloads.shape(feature, incident)
        attempts: list[Attempt] = []
        retries = fallbacks = 0
        original = group
        while True:
            err = self.payloads.error(feature)
            attempts.append(
                self.payloads.attempt(
                    feature,
                    group,
                    original,
                    t,
                    trace_id,
                    tags,
                    user,
                    shape,
                    err,
                    retries,
                    fallbacks,
                )
            )
            t = attempts[-1].end
            if err is None:
                break
            if retries < feature.max_retries and rng.random() < (0.95 if err == "429" else 0.7):
                retries += 1
                t += rng.uniform(0.2, 2.0) if err == "429" else rng.uniform(0.05, 0.5)
                continue
            fb = MODEL_GROUPS[group][2]
            if err == "429" and fb and not fallbacks:
                fallbacks += 1
                group = fb
                t += rng.uniform(0.01, 0.1)
                continue
            break
        return attempts

    # --- spans of time --------------------------------------------------------------------------
    def enrich_rate(self, rate: float) -> float:
        """Calls/s of the nightly job while it runs: as busy as the daytime realtime mix."""
        return rate * 0.8

    def arrivals(
        self, t0: float, t1: float, rate: float, rate_ref: float, step: float = 1.0
    ) -> Iterator[tuple[float, Feature]]:
        """Request arrivals in [t0, t1): seasonal realtime traffic plus nightly batch bursts.

        Step-wise Poisson so a span is generated in O(requests), with the seasonal rate looked up
        once per step (local time is cheap but not free).
        """
        rng = self.rng
        ref = max(seasonality(rate_ref), 1e-6)
        enrich = FEATURES["nightly-enrich"]
        t = t0
        while t < t1:
            dt = min(step, t1 - t)
            mu = rate * seasonality(t) / ref * dt
            mu_enrich = self.enrich_rate(rate) * dt if in_enrich_window(t) else 0.0
            n = _poisson(rng, mu)
            m = _poisson(rng, mu_enrich)
            times = sorted(
                [(t + rng.random() * dt, None) for _ in range(n)]
                + [(t + rng.random() * dt, enrich) for _ in range(m)],
                key=lambda x: x[0],
            )
            for at, feat in times:
                if feat is None:
                    r = rng.random() * REALTIME_CUM[-1]
                    i = 0
                    while REALTIME_CUM[i] < r:
                        i += 1
                    feat = REALTIME[i]
                yield at, feat
            t += dt

    def emit(self, attempts: Iterable[Attempt]) -> None:
        """Hand attempts to the sink in order (the writer numbers attempts by arrival)."""
        log = self.sink.log
        for a in attempts:
            s = a.kwargs["standard_logging_object"]
            log(a.kwargs, None, s["startTime"], s["endTime"], a.failed)
            self.emitted += 1

    def backfill(
        self,
        now: float,
        seconds: float,
        *,
        rate: float,
        max_rows: int = 300_000,
        on_progress: Callable[[int], None] | None = None,
        flush: Callable[[], object] | None = None,
        submit_record: Callable[[CallRecord], None] | None = None,
    ) -> int:
        """Write past traffic for [now - seconds, now), before the live loop starts.

        Density: the live rate throughout; if `max_rows` cannot hold `seconds` of it, the span is
        shortened (the most recent part is kept). Rows are emitted in arrival
        order per request; `flush` is called every 20k rows so the writer's bounded queue
        never overflows (backpressure instead of drops). With `submit_record` (the writer's
        `submit`), rows skip the defensive mapping via `fast_record`, about twice as fast.
        """
        if seconds <= 0:
            return 0

        # Expected rows per unit of rate, measured with the same season curve.
        def mass(a: float, b: float) -> float:
            ref = max(seasonality(now), 1e-6)
            t, total = a, 0.0
            while t < b:
                dt = min(60.0, b - t)
                total += seasonality(t) / ref * dt + (0.8 * dt if in_enrich_window(t) else 0.0)
                t += dt
            return total * 1.05  # retries and fallbacks add a few rows

        # One density for all of history: baselines, 3-sigma bands and 7-day averages are only
        # meaningful if a past hour holds as many calls as a live one. When the row budget
        # cannot hold `seconds` at the live rate, history is shortened, never thinned.
        if rate <= 0:
            return 0
        # Walk back a minute at a time until the rows expected reach max_rows: the live rate is
        # the rate at `now`, and a quiet Sunday 4 a.m. start makes a weekday noon in history ten
        # times as dense (sizing from the last hour alone wrote 1.4M rows for a 400k budget).
        budget, span = max_rows / rate, 0.0
        while span < seconds:
            dt = min(60.0, seconds - span)
            m = mass(now - span - dt, now - span)
            if m >= budget:
                span += dt * budget / m
                break
            budget -= m
            span += dt
        #: The history actually written, in seconds (the caller says when it was shortened).
        self.history_seconds = span
        before = self.emitted
        next_flush = before + 20_000
        for at, feat in self.arrivals(now - span, now, rate, now, step=60.0 if rate < 2 else 1.0):
            done = [a for a in self.request(feat, at) if a.end <= now]
            if submit_record is None:
                self.emit(done)
            else:
                for a in done:
                    submit_record(fast_record(a))
                self.emitted += len(done)
            if self.emitted >= next_flush:
                next_flush = self.emitted + 20_000
                if flush is not None:
                    flush()
                if on_progress is not None:
                    on_progress(self.emitted - before)
        return self.emitted - before

    def advance(self, t0: float, t1: float, *, rate: float, rate_ref: float) -> int:
        """Generate arrivals in [t0, t1) and emit every attempt that has ended by t1.

        Attempts that end later (slow generations, timeouts, retries) wait in a heap, so a row
        appears when its callback would fire, never ahead of the clock.
        """
        before = self.emitted
        pending = self._pending
        for at, feat in self.arrivals(t0, t1, rate, rate_ref):
            for a in self.request(feat, at):
                self._seq += 1
                heapq.heappush(pending, (a.end, self._seq, a))
        while pending and pending[0][0] <= t1:
            self.emit([heapq.heappop(pending)[2]])
        return self.emitted - before

    def drain(self) -> int:
        """Emit everything still pending (end of a simulated span)."""
        before = self.emitted
        while self._pending:
            self.emit([heapq.heappop(self._pending)[2]])
        return self.emitted - before

    def run_span(self, start: float, end: float, *, rate: float, tick: float = 1.0) -> int:
        """Simulated time, no sleeping: what the live loop would write between start and end."""
        before = self.emitted
        t = start
        while t < end:
            t1 = min(t + tick, end)
            self.advance(t, t1, rate=rate, rate_ref=start)
            t = t1
        self.drain()
        return self.emitted - before

    def run_live(
        self,
        *,
        rate: float,
        duration: float | None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        tick: float = 0.1,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Real time: every `tick`, write what happened since the last one, until `duration`."""
        before = self.emitted
        start = last = clock()
        while not should_stop():
            now = clock()
            if duration is not None and now >= start + duration:
                self.advance(last, start + duration, rate=rate, rate_ref=start)
                break
            if now > last:
                self.advance(last, now, rate=rate, rate_ref=start)
                last = now
            sleep(max(0.0, tick - (clock() - now)))
        return self.emitted - before
