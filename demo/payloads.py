"""LiteLLM logging payloads for the demo: what `CollectorCore.log` receives for one attempt.

Shapes follow the kwargs LiteLLM hands its logging callbacks (SDK Router and proxy), so the
demo exercises the production mapping. `fast_record` is the backfill's fast path: the
CallRecord the collector's mapping makes of these (already clean) payloads, without its
defensive cleaning; tests/test_demo.py proves the two equal field for field on every kind of
payload made here, and live traffic always takes the real path.
"""

from __future__ import annotations

import math
import random
from typing import Any, NamedTuple

from llmtop.demo.scenario import ERRORS, INCIDENT, MODEL_GROUPS, Feature
from llmtop.store.records import TAG_KEYS, CallRecord


class Attempt(NamedTuple):
    """One callback event: LiteLLM fires one per attempt, including failed ones."""

    end: float
    kwargs: dict[str, Any]
    failed: bool


class Payloads:
    """Draws one request's token counts, errors and payloads from the simulator's generator.

    It shares the simulator's `random.Random`, so a seed gives the same rows as ever.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{self.rng.getrandbits(64):016x}"

    def lognorm(self, median: float, sigma: float) -> float:
        return median * math.exp(self.rng.gauss(0.0, sigma))

    def shape(self, feature: Feature, incident: bool) -> dict[str, Any]:
        """Token counts and timings of the successful response to this request."""
        rng, ln = self.rng, self.lognorm
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

    def error(self, feature: Feature) -> str | None:
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

    def attempt(
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
        call_id = self.new_id("call-")[:36]
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
            exc_type, code, normalized, message = ERRORS[err]
            if err == "503" and not anthropic:
                exc_type, code, normalized, message = ERRORS["500"]
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
