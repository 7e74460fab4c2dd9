"""The demo's story as data: six features owned by five teams, their models and failure rates,
the customers, the scripted incident, and the daily shape of traffic.

Why apart from the generator: changing what the demo shows (a new feature, another incident)
is an edit here, and simulator.py/payloads.py stay about how calls are generated.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from itertools import accumulate

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

REALTIME = [f for f in FEATURES.values() if f.share > 0]
REALTIME_CUM = list(accumulate(f.share for f in REALTIME))

CUSTOMER_WORDS = (
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


ERRORS: dict[str, tuple[type[Exception], str, str, str]] = {
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
