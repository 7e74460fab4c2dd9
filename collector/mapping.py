"""From LiteLLM's logging payload to a CallRecord, on the writer thread.

Where each field comes from is documented in ../shared/reference/litellm-callbacks.md; the traps
it lists (unpriced models reported as $0, SDK metadata dropped from the standard logging object,
streams without usage) are handled here and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

from llmtop.collector.clean import clean_id, clean_value, env_tags
from llmtop.collector.compat import (
    derive_normalized_error,
    original_group_from_previous,
    refine_bad_request,
    router_deployment_model,
    stream_usage_estimated,
)
from llmtop.collector.tags import NO_PROXY, PROXY_KEYS, collect_tags
from llmtop.store.records import CallRecord

#: Physical ranges a call's numbers must fall in; a value outside is not stored as it came (one
#: absurd row would otherwise dominate every sum on the dashboard): it is set to NULL/0 and the
#: row carries an `invalid` reason the dashboard counts.
MAX_TOKENS = 2**40
MAX_LATENCY_S = 86_400.0
MAX_CALL_USD = 10_000.0
MAX_ATTEMPTS = 1_000


class Captured(NamedTuple):
    """What the hot path keeps: references only, mapped later off the caller's thread."""

    slo: Any
    metadata: dict[str, Any] | None
    optional_user: Any
    response_cost: Any
    exception_class: str | None
    exception_status: Any
    model: Any
    start_time: Any
    end_time: Any
    failed: bool
    # kwargs["stream"]: the standard logging object leaves `stream` None on a stream that fails
    # mid-way, and that row must still say it was a stream (and carry its TTFT).
    stream: Any = None
    # The class behind a generic connection error (openai 3.x wraps the transport's
    # RemoteProtocolError in APIConnectionError): failures only, so it costs the hot path nothing.
    exception_cause: str | None = None


# What the mapping reads from the standard logging object, fetched in one C-level pass: the
# mapping runs once per call on the writer thread, where every look-up is throughput.
_SLO_KEYS = (
    "startTime",
    "endTime",
    "stream",
    "completionStartTime",
    "metadata",
    "prompt_tokens",
    "completion_tokens",
    "status",
    "error_information",
    "model_map_information",
    "response",
    "model_parameters",
    "model_group",
    "request_tags",
    "end_user",
    "cache_hit",
    "call_type",
    "trace_id",
    "litellm_call_id",
    "custom_llm_provider",
    "model",
    "saved_cache_cost",
)
_slo_fields = itemgetter(*_SLO_KEYS)
_NO_SLO = (None,) * len(_SLO_KEYS)


def _epoch(value: Any) -> float | None:
    """Epoch seconds, or None for anything that is not a finite time after 1970 and before 2200."""
    if value is None:
        return None
    if isinstance(value, datetime):
        try:
            value = value.timestamp()
        except (OverflowError, OSError, ValueError):
            return None
    elif not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except OverflowError:
        return None
    return out if 0.0 < out < 7.3e9 else None  # NaN fails both comparisons


def _count(value: Any, problems: list[str], what: str) -> int:
    """A token or attempt count: 0..MAX_TOKENS, else 0 and a reason on the row."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and 0 <= value <= MAX_TOKENS:
        return int(value)
    if isinstance(value, int) and 0 <= value <= MAX_TOKENS:
        return int(value)
    if isinstance(value, (int, float)):
        problems.append(f"{what} out of range")
    return 0


def _money(value: Any, problems: list[str], what: str) -> float | None:
    """A dollar amount: finite, 0..MAX_CALL_USD, else None and a reason on the row."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if 0.0 <= out <= MAX_CALL_USD:
        return out
    problems.append(f"{what} out of range")
    return None


def _int(value: Any) -> int:
    """A count where a wrong value only means 'none' (usage details): 0..MAX_TOKENS, else 0."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and 0 <= value <= MAX_TOKENS:
        return int(value)
    if isinstance(value, float) and 0 <= value <= MAX_TOKENS:  # NaN fails the comparison
        return int(value)
    return 0


def _dict(value: Any) -> dict[Any, Any]:
    return value if type(value) is dict or isinstance(value, dict) else _EMPTY


_EMPTY: dict[Any, Any] = {}


def from_proxy(cap: Captured) -> bool:
    """A payload from LiteLLM proxy (a virtual key authenticated it): the proxy logs only a
    request's first failure and its final outcome, so its other attempts are inferred."""
    md = cap.metadata
    return isinstance(md, dict) and (
        "user_api_key_hash" in md or "user_api_key_request_route" in md
    )


#: Error classes that only wrap the real one (the transport's), across openai releases.
WRAPPER_ERRORS = frozenset({"APIConnectionError"})


def cause_name(exc: BaseException | None) -> str | None:
    """The innermost explicit cause of an exception (`raise ... from`), at most 8 deep."""
    inner = None
    for _ in range(8):
        exc = getattr(exc, "__cause__", None)
        if exc is None:
            break
        inner = exc
    return type(inner).__name__ if inner is not None else None


def litellm_unpriced(mmi: dict[Any, Any]) -> bool:
    """LiteLLM found no price: no map entry (the SDK), or an entry without token prices (the
    proxy builds one from the deployment's model_info)."""
    if "model_map_value" not in mmi:
        return False
    mv = mmi["model_map_value"]
    if mv is None:
        return True
    return (
        isinstance(mv, dict)
        and mv.get("input_cost_per_token") is None
        and mv.get("output_cost_per_token") is None
    )


def to_record(cap: Captured, env: dict[str, str] | None = None) -> CallRecord:
    """Map one captured payload; raises only on payloads too malformed to describe a call.

    `env`: the process's LLMTOP_TAGS, parsed (the writer reads the environment once per batch:
    reading it per row cost as much as all the other tags).
    """
    slo = cap.slo
    if type(slo) is dict:
        try:
            f = _slo_fields(slo)
        except KeyError:  # not LiteLLM's full standard logging object: read what is there
            f = tuple(map(slo.get, _SLO_KEYS))
    elif isinstance(slo, dict):  # a subclass: .get, never a __getitem__ that might insert
        f = tuple(map(slo.get, _SLO_KEYS))
    else:
        f = _NO_SLO
    (
        start_v, end_v, stream_v, cst_v, smd, prompt_v, completion_v, status, err, mmi, response,
        mp, model_group_v, request_tags, end_user, cache_hit_v, call_type_v, trace_v, call_id_v,
        provider_v, model_v, saved_v,
    ) = f  # fmt: skip
    md = cap.metadata if isinstance(cap.metadata, dict) else None
    problems: list[str] = []
    started = _epoch(start_v) or _epoch(cap.start_time)
    if started is None:
        raise ValueError("payload has no usable start time")
    ended = _epoch(end_v) or _epoch(cap.end_time)
    if ended is not None and not 0.0 <= ended - started <= MAX_LATENCY_S:
        problems.append("latency out of range")
        ended = None
    stream = bool(stream_v) or cap.stream is True
    ttft_ms = None
    if stream and (cst := _epoch(cst_v)) is not None:
        ttft_ms = (cst - started) * 1000.0
        if not 0.0 <= ttft_ms <= MAX_LATENCY_S * 1000.0:
            problems.append("ttft out of range")
            ttft_ms = None

    if not smd:
        smd = _EMPTY
    elif not isinstance(smd, dict):
        if not isinstance(smd, Mapping):
            raise ValueError("the standard logging object's metadata is not a mapping")
        smd = dict(smd)
    proxy = tuple(map(smd.get, PROXY_KEYS)) if smd else NO_PROXY
    usage = _dict(proxy[-1])
    if usage:
        ptd = _dict(usage.get("prompt_tokens_details"))
        ctd = _dict(usage.get("completion_tokens_details"))
        cache_read = _int(ptd.get("cached_tokens")) or _int(usage.get("cache_read_input_tokens"))
        cache_write = _int(usage.get("cache_creation_input_tokens")) or _int(
            ptd.get("cache_creation_tokens")
        )
        reasoning = _int(ctd.get("reasoning_tokens"))
        audio_in, audio_out = _int(ptd.get("audio_tokens")), _int(ctd.get("audio_tokens"))
    else:
        cache_read = cache_write = reasoning = audio_in = audio_out = 0
    input_tokens = _count(prompt_v, problems, "input tokens")
    output_tokens = _count(completion_v, problems, "output tokens")

    failed = cap.failed or status == "failure"
    if stream and usage and not failed and not cache_hit_v:
        if stream_usage_estimated(usage, mp, provider_v):  # a tokenizer guess is not a count
            input_tokens = output_tokens = reasoning = 0
    err = _dict(err)
    if failed:
        error_code = clean_value(err.get("error_code")) or clean_value(cap.exception_status)
        error_class = clean_value(err.get("error_class")) or cap.exception_class
        if error_class in WRAPPER_ERRORS and cap.exception_cause:
            error_class = clean_value(cap.exception_cause) or error_class
        sent_class = error_class
        error_class = refine_bad_request(error_class, err.get("error_message"))
        normalized_error = clean_value(err.get("normalized_error"))
        if "normalized_error" not in err or (  # LiteLLM before 1.104 sends none: derive LiteLLM's
            error_class != sent_class and normalized_error == "400_INVALID_REQUEST"
        ):  # (and LiteLLM's code for a plain 400 is not the refined class's)
            normalized_error = derive_normalized_error(
                error_class, error_code, err.get("error_message")
            )
    else:
        error_code = clean_value(err.get("error_code")) if err else None
        error_class = normalized_error = None

    price_key = clean_value(mmi.get("model_map_key")) if isinstance(mmi, dict) else None
    response_model = clean_value(response.get("model")) if isinstance(response, dict) else None
    service_tier = clean_value(mp.get("service_tier")) if isinstance(mp, dict) else None

    model_group = clean_value(model_group_v)
    if md:
        if model_group is None:
            model_group = clean_value(md.get("model_group"))
        original = clean_value(md.get("original_model_group"))
        if original is None and "previous_models" in md:  # LiteLLM before ~1.9x
            original = clean_value(original_group_from_previous(md["previous_models"], trace_v))
        fallbacks = _count(md.get("attempted_fallbacks"), problems, "attempts")
        retries = _count(md.get("attempted_retries"), problems, "attempts")
        if retries + fallbacks > MAX_ATTEMPTS:
            problems.append("attempts out of range")
            retries = fallbacks = 0
    else:
        original, fallbacks, retries = None, 0, 0
    is_fallback = bool(fallbacks) or bool(original and model_group and original != model_group)

    tags, extra = collect_tags(
        smd,
        proxy,
        md,
        request_tags,
        end_user or cap.optional_user,
        env_tags() if env is None else env,
    )

    litellm_cost = _money(cap.response_cost, problems, "litellm cost")
    if litellm_cost == 0.0 and isinstance(mmi, dict) and litellm_unpriced(mmi):
        # LiteLLM reports 0.0 for a model missing from its price map (the proxy passes that on):
        # that is "LiteLLM could not price it", not "free".
        litellm_cost = None
    cache_hit = bool(cache_hit_v)
    call_type = clean_value(call_type_v)
    model = clean_value(model_v) or clean_value(cap.model)
    if md and "deployment" in md:  # a Router call: LiteLLM 1.80 drops the provider prefix
        model = clean_value(router_deployment_model(model, md["deployment"]))
    return CallRecord(
        started,
        ended,
        ttft_ms,
        clean_id(trace_v),
        clean_id(call_id_v if call_id_v is not None or type(slo) is not dict else slo.get("id")),
        call_type,
        stream,
        clean_value(provider_v),
        model,
        response_model,
        model_group,
        original or model_group,
        price_key,
        "failure" if failed else "success",
        error_class,
        error_code,
        normalized_error,
        input_tokens,
        output_tokens,
        cache_read,
        cache_write,
        reasoning,
        audio_in,
        audio_out,
        bool(call_type and "batch" in call_type),
        service_tier,
        litellm_cost,
        stream and not failed and not cache_hit and input_tokens == 0 and output_tokens == 0,
        cache_hit,
        1 + retries + fallbacks,
        retries > 0,
        is_fallback,
        tags,
        extra,
        saved_usd=_money(saved_v, problems, "saved cost") if cache_hit else None,
        invalid="; ".join(dict.fromkeys(problems)) if problems else None,
    )
