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
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, NamedTuple, Protocol

from llmtop.store.records import TAG_KEYS, CallRecord

DAY = 86_400.0

# --- the cast -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Feature:
    """One product feature: who owns it, how it calls models, and its share of realtime traffic."""

    name: str
    endpoint: str
    team: str
    workload: str
    share: float  # of the seasonal (non-batch) request rate
    model_groups: tuple[tuple[str, float], ...]  # (model group, weight)
    call_type: str
    stream: bool
    rate_limit_p: float  # chance one attempt is rejected with a 429
    server_error_p: float  # 5xx
    timeout_p: float
    max_retries: int = 1


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature(
            "chat",
            "/v1/chat",
            "assistant",
            "realtime",
            0.22,
            (("gpt-4o", 1.0),),
            "acompletion",
            True,
            0.015,
            0.003,
            0.001,
        ),
        Feature(
            "support-summarize",
            "/support/tickets/summarize",
            "support",
            "realtime",
            0.07,
            (("claude-sonnet-4-5", 1.0),),
            "acompletion",
            False,
            0.02,
            0.004,
            0.002,
        ),
        Feature(
            "classify",
            "/search/classify",
            "search",
            "realtime",
            0.38,
            (("gpt-4o-mini", 1.0),),
            "completion",
            False,
            0.01,
            0.002,
            0.0005,
        ),
        Feature(
            "embed",
            "/search/embed",
            "search",
            "realtime",
            0.22,
            (("text-embedding-3-small", 1.0),),
            "embedding",
            False,
            0.005,
            0.002,
            0.0005,
        ),
        Feature(
            "agent-step",
            "/agents/step",
            "agents",
            "agent",
            0.11,
            (("o3-mini", 0.7), ("gpt-4o", 0.3)),
            "acompletion",
            False,
            0.03,
            0.006,
            0.004,
            max_retries=2,
        ),
        Feature(
            "nightly-enrich",
            "jobs/enrich",
            "data",
            "batch",
            0.0,  # not part of the seasonal mix: see Simulator.enrich_rate
            (("gpt-4o-mini", 1.0),),
            "completion",
            False,
            0.04,
            0.002,
            0.001,
        ),
    )
}

#: model group -> (model name in LiteLLM's price map, provider, fallback group or None).
MODEL_GROUPS: dict[str, tuple[str, str, str | None]] = {
    "gpt-4o": ("gpt-4o", "openai", "claude-sonnet-4-5"),
    "gpt-4o-mini": ("gpt-4o-mini", "openai", None),
    "claude-sonnet-4-5": ("claude-sonnet-4-5", "anthropic", "claude-haiku-4-5"),
    "claude-haiku-4-5": ("claude-haiku-4-5", "anthropic", None),
    "o3-mini": ("o3-mini", "openai", "gpt-4o"),
    "text-embedding-3-small": ("text-embedding-3-small", "openai", None),
}

_REALTIME = [f for f in FEATURES.values() if f.share > 0]
_REALTIME_CUM = list(accumulate(f.share for f in _REALTIME))

_CUSTOMER_WORDS = (
    "acme northwind globex initech umbrella hooli vandelay stark wayne tyrell cyberdyne soylent "
    "wonka gringotts oscorp aperture blackmesa monarch dunder pied massive vehement prestige "
    "sterling wernham bluth krusty duff gekko nakatomi virtucon yoyodyne zorg octan kwik "
    "spacely cogswell rekall weyland ingen"
).split()

#: The incident: what `support-summarize` v2 (route r13) changes. Numbers chosen so its spend
#: rate rises ~8x: input x6, prompt-cache hits from ~70% to ~5%, every miss writes a cache entry
#: that is never read again (Anthropic bills writes at 1.25x input), and summaries get longer.
INCIDENT = {
    "feature": "support-summarize",
    "prompt_version": ("v1", "v2"),
    "route_version": ("r12", "r13"),
    "input_multiplier": 6.0,
    "cache_hit_rate": (0.70, 0.05),
}


# --- exceptions that look like LiteLLM's to the collector (type name + status_code) ---------------


class RateLimitError(Exception):
    status_code = 429


class InternalServerError(Exception):
    status_code = 500


class ServiceUnavailableError(Exception):
    status_code = 503


class Timeout(Exception):
    status_code = 408


_ERRORS: dict[str, tuple[type[Exception], str, str, str]] = {
    # kind: (exception, error_code, normalized_error, message)
    "429": (RateLimitError, "429", "429_RATE_LIMIT_EXCEEDED", "Rate limit reached for requests"),
    "500": (
        InternalServerError,
        "500",
        "500_PROVIDER_INTERNAL_ERROR",
        "The server had an error while processing your request",
    ),
    "503": (
        ServiceUnavailableError,
        "503",
        "503_PROVIDER_OVERLOADED",
        "Overloaded",
    ),
    "408": (Timeout, "408", "408_UPSTREAM_TIMEOUT", "Request timed out after 30.0 seconds"),
}


# --- time shape -----------------------------------------------------------------------------------


def seasonality(t: float) -> float:
    """Relative traffic at local time t: a working-day hump, quiet nights, slower weekends.

    Local time because that is how a team reads "traffic doubles at 9am"; the same function
    shapes history and the live run, so baselines and live rates agree.
    """
    lt = time.localtime(t)
    h = lt.tm_hour + lt.tm_min / 60.0
    day = 0.18 + 0.82 * math.exp(-(((h - 13.5) / 4.0) ** 2))
    return day * (0.45 if lt.tm_wday >= 5 else 1.0)


def in_enrich_window(t: float) -> bool:
    """The nightly job runs 02:00-03:00 local, in bursts (6 minutes on, 4 off)."""
    lt = time.localtime(t)
    return lt.tm_hour == 2 and lt.tm_min % 10 < 6


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


class Attempt(NamedTuple):
    """One callback event: LiteLLM fires one per attempt, including failed ones."""

    end: float
    kwargs: dict[str, Any]
    failed: bool


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
        incident_at: float | None = None,
        n_users: int = 320,
        n_customers: int = 40,
        zipf_s: float = 1.15,
    ) -> None:
        self.sink = sink
        self.rng = random.Random(seed)
        self.incident_at = incident_at
        self.emitted = 0
        self._seq = 0
        self._pending: list[tuple[float, int, Attempt]] = []
        rng = self.rng
        self.customers = [
            f"{w}-{rng.choice(('inc', 'corp', 'labs', 'co', 'gmbh', 'ltd'))}"
            for w in _CUSTOMER_WORDS[:n_customers]
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
        return f"{prefix}{self.rng.getrandbits(64):016x}"

    def _lognorm(self, median: float, sigma: float) -> float:
        return median * math.exp(self.rng.gauss(0.0, sigma))

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
        shape = self._shape(feature, incident)
        attempts: list[Attempt] = []
        retries = fallbacks = 0
        original = group
        while True:
            err = self._error(feature)
            attempts.append(
                self._attempt(
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

    def _shape(self, feature: Feature, incident: bool) -> dict[str, Any]:
        """Token counts and timings of the successful response to this request."""
        rng, ln = self.rng, self._lognorm
        s: dict[str, Any] = {"cache_read": 0, "cache_write": 0, "reasoning": 0, "ttft": None}
        name = feature.name
        if name == "chat":
            # Multi-turn chat: OpenAI caches the conversation prefix once it is >= 1024 tokens.
            inp = int(ln(1400, 0.6)) + 200
            s["input"] = inp
            if inp >= 1024 and rng.random() < 0.5:
                s["cache_read"] = (int(inp * rng.uniform(0.5, 0.9)) // 128) * 128
            s["output"] = int(ln(320, 0.5)) + 10
            s["ttft"] = ln(0.45, 0.35)
            s["latency"] = s["ttft"] + s["output"] / rng.uniform(60, 110)
            s["unmetered"] = rng.random() < 0.02  # a proxy stream without include_usage
        elif name == "support-summarize":
            prefix = 3000  # system prompt + few-shot examples, cached with cache_control
            ticket = int(ln(900, 0.5)) + 100
            if not incident:
                s["input"] = prefix + ticket
                if rng.random() < INCIDENT["cache_hit_rate"][0]:
                    s["cache_read"] = prefix
                else:
                    s["cache_write"] = prefix
                s["output"] = int(ln(300, 0.35)) + 20
            else:
                # v2 puts the customer's whole history ahead of the instructions: the cached
                # prefix almost never matches, and each miss writes a one-off cache entry.
                s["input"] = int((prefix + ticket) * INCIDENT["input_multiplier"] * ln(1.0, 0.1))
                if rng.random() < INCIDENT["cache_hit_rate"][1]:
                    s["cache_read"] = prefix
                else:
                    s["cache_write"] = int(s["input"] * 0.85)
                s["output"] = int(ln(480, 0.35)) + 20
            s["latency"] = 0.7 + s["input"] / 25_000 + s["output"] / 70
        elif name == "classify":
            s["input"] = int(ln(380, 0.35)) + 40
            s["output"] = rng.randint(1, 12)
            s["latency"] = ln(0.32, 0.3) + s["output"] / 100
        elif name == "embed":
            s["input"] = int(ln(600, 0.8)) + 8
            s["output"] = 0
            s["latency"] = ln(0.12, 0.3) + s["input"] / 60_000
        elif name == "agent-step":
            s["input"] = int(ln(5200, 0.45)) + 500
            if s["input"] >= 1024 and rng.random() < 0.4:
                s["cache_read"] = (int(s["input"] * 0.6) // 128) * 128
            s["reasoning"] = int(ln(900, 0.7))
            s["output"] = s["reasoning"] + int(ln(350, 0.5))
            s["latency"] = 1.2 + s["output"] / 120
        else:  # nightly-enrich
            s["input"] = int(ln(700, 0.3)) + 50
            s["output"] = int(ln(150, 0.3)) + 5
            s["latency"] = ln(0.9, 0.25) + s["output"] / 110
        return s

    def _error(self, feature: Feature) -> str | None:
        r = self.rng.random()
        if r < feature.rate_limit_p:
            return "429"
        r -= feature.rate_limit_p
        if r < feature.server_error_p:
            return "503" if r < feature.server_error_p / 3 else "500"
        r -= feature.server_error_p
        if r < feature.timeout_p:
            return "408"
        return None

    def _attempt(
        self,
        feature: Feature,
        group: str,
        original: str,
        t: float,
        trace_id: str,
        tags: dict[str, str],
        user: str | None,
        shape: dict[str, Any],
        err: str | None,
        retries: int,
        fallbacks: int,
    ) -> Attempt:
        """One LiteLLM logging payload, shaped as the SDK's Router produces it."""
        rng = self.rng
        model, provider, _ = MODEL_GROUPS[group]
        call_id = self._id("call-")[:36]
        anthropic = provider == "anthropic"
        stream = feature.stream
        usage: dict[str, Any] | None
        error_information = None
        exception = None
        if err is None:
            inp, out = shape["input"], shape["output"]
            read, write = shape["cache_read"], shape["cache_write"]
            reasoning = shape["reasoning"] if model.startswith("o") else 0
            if reasoning == 0 and shape["reasoning"]:
                out -= shape["reasoning"]  # a non-reasoning fallback model answers directly
            if anthropic and feature.name != "support-summarize":
                read = write = 0
            if not anthropic:
                write = 0
            latency = shape["latency"]
            ttft = shape["ttft"]
            if stream and shape.get("unmetered"):
                inp = out = read = write = reasoning = 0
                usage = None
            else:
                usage = {
                    "prompt_tokens": inp,
                    "completion_tokens": out,
                    "total_tokens": inp + out,
                    "prompt_tokens_details": {"cached_tokens": read, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
                }
                if anthropic:
                    usage["prompt_tokens_details"]["cache_creation_tokens"] = write
                    usage["prompt_tokens_details"]["text_tokens"] = inp - read - write
                    usage["cache_creation_input_tokens"] = write
                    usage["cache_read_input_tokens"] = read
        else:
            exc_type, code, normalized, message = _ERRORS[err]
            if err == "503" and not anthropic:
                exc_type, code, normalized, message = _ERRORS["500"]
            inp = out = 0
            usage = None
            ttft = None
            latency = rng.uniform(25.0, 30.0) if err == "408" else rng.uniform(0.05, 0.4)
            if err in ("500", "503"):
                latency = rng.uniform(0.3, 3.0)
            error_information = {
                "error_class": exc_type.__name__,
                "error_code": code,
                "llm_provider": provider,
                "error_message": f"litellm.{exc_type.__name__}: {provider.title()}Exception - {message}",
                "normalized_error": normalized,
            }
            exception = exc_type(error_information["error_message"])
        end = t + latency
        slo: dict[str, Any] = {
            "id": None if err else f"{'msg_' if anthropic else 'chatcmpl-'}{call_id[5:]}",
            "litellm_call_id": call_id,
            "trace_id": trace_id,
            "session_id": None,
            "call_type": feature.call_type,
            "status": "failure" if err else "success",
            "stream": stream,
            "model": model,
            "custom_llm_provider": provider,
            "model_group": group,
            "startTime": t,
            "endTime": end,
            "completionStartTime": (t + ttft) if (stream and ttft is not None) else end,
            "prompt_tokens": inp,
            "completion_tokens": out,
            "total_tokens": inp + out,
            "response_cost": None,
            "cache_hit": False,
            "request_tags": [],
            "end_user": None,
            "metadata": {
                "usage_object": usage,
                "requester_metadata": {},
                "user_api_key_team_alias": None,
            },
            "error_information": error_information,
            "model_map_information": {"model_map_key": model},
        }
        md: dict[str, Any] = dict(tags)
        md.pop("user", None)
        md["model_group"] = group
        md["attempted_retries"] = retries
        md["attempted_fallbacks"] = fallbacks
        if fallbacks:
            md["original_model_group"] = original
        if feature.name == "chat":
            # Chat goes through the LiteLLM proxy: tags arrive as the request body's metadata,
            # the user as `end_user`, the team from the virtual key.
            slo["metadata"]["requester_metadata"] = dict(tags)
            slo["metadata"]["user_api_key_team_alias"] = feature.team
            slo["end_user"] = user
            optional: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
        else:
            optional = {"user": user} if user else {}
        kwargs: dict[str, Any] = {
            "model": model,
            "standard_logging_object": slo,
            "litellm_params": {"metadata": md},
            "optional_params": optional,
            "response_cost": None,
            "litellm_call_id": call_id,
        }
        if exception is not None:
            kwargs["exception"] = exception
        return Attempt(end, kwargs, err is not None)

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
                    r = rng.random() * _REALTIME_CUM[-1]
                    i = 0
                    while _REALTIME_CUM[i] < r:
                        i += 1
                    feat = _REALTIME[i]
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
        span = min(seconds, max_rows / max(rate * mass(now - 3600.0, now) / 3600.0, 1e-9))
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


def fast_record(a: Attempt) -> CallRecord:
    """The CallRecord `collector.mapping.to_record` makes of this simulator's payload.

    Why it exists: mapping spends ~40 us a row defensively cleaning arbitrary payloads, which
    makes a week of history take half a minute. The simulator's own payloads are already clean,
    so the backfill maps them directly; tests/test_demo.py checks field for field that this
    agrees with `to_record` on every kind of payload the simulator makes. Live traffic always
    goes through the real `CollectorCore.log` path.
    """
    kw = a.kwargs
    slo = kw["standard_logging_object"]
    md = kw["litellm_params"]["metadata"]
    usage = slo["metadata"]["usage_object"] or {}
    ptd = usage.get("prompt_tokens_details") or {}
    ctd = usage.get("completion_tokens_details") or {}
    err = slo["error_information"] or {}
    failed = a.failed
    stream = slo["stream"]
    inp, out = slo["prompt_tokens"], slo["completion_tokens"]
    retries, fallbacks = md["attempted_retries"], md["attempted_fallbacks"]
    tags = {k: md[k] for k in TAG_KEYS if k in md}
    user = kw["optional_params"].get("user") or slo["end_user"]
    if user:
        tags["user"] = user
    return CallRecord(
        started_at=slo["startTime"],
        ended_at=slo["endTime"],
        ttft_ms=(slo["completionStartTime"] - slo["startTime"]) * 1000.0 if stream else None,
        trace_id=slo["trace_id"],
        litellm_call_id=slo["litellm_call_id"],
        call_type=slo["call_type"],
        stream=stream,
        provider=slo["custom_llm_provider"],
        model=slo["model"],
        model_group=slo["model_group"],
        original_model_group=md.get("original_model_group") or slo["model_group"],
        price_key=slo["model_map_information"]["model_map_key"],
        status="failure" if failed else "success",
        error_class=err.get("error_class") if failed else None,
        error_code=err.get("error_code") if failed else None,
        normalized_error=err.get("normalized_error") if failed else None,
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=ptd.get("cached_tokens") or 0,
        cache_write_tokens=usage.get("cache_creation_input_tokens") or 0,
        reasoning_tokens=ctd.get("reasoning_tokens") or 0,
        unmetered=stream and not failed and inp == 0 and out == 0,
        attempt=1 + retries + fallbacks,
        is_retry=retries > 0,
        is_fallback=fallbacks > 0,
        tags=tags,
    )
