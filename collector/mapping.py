"""From LiteLLM's logging payload to a CallRecord, on the writer thread.

Where each field comes from is documented in ../shared/reference/litellm-callbacks.md; the traps
it lists (unpriced models reported as $0, SDK metadata dropped from the standard logging object,
streams without usage) are handled here and nowhere else.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

from llmtop.collector.compat import (
    derive_normalized_error,
    original_group_from_previous,
    refine_bad_request,
    router_deployment_model,
    stream_usage_estimated,
)
from llmtop.store.records import SURROGATE, TAG_KEYS, CallRecord

MAX_TAG_VALUE = 200
MAX_TAG_KEY = 64
MAX_EXTRA_TAGS = 32
#: Physical ranges a call's numbers must fall in; a value outside is not stored as it came (one
#: absurd row would otherwise dominate every sum on the dashboard): it is set to NULL/0 and the
#: row carries an `invalid` reason the dashboard counts.
MAX_TOKENS = 2**40
MAX_LATENCY_S = 86_400.0
MAX_CALL_USD = 10_000.0
MAX_ATTEMPTS = 1_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_KEY_OK = re.compile(r"[^A-Za-z0-9_.\-]")
_TAG_SET = frozenset(TAG_KEYS)


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


# The same few strings (models, providers, tag values) recur on almost every row: memoising the
# cleaning (bounded, writer-thread only) roughly halves the mapping cost per row.
_MAX_MEMO = 50_000


class _Memo(dict):  # type: ignore[type-arg]
    """`clean(text)` by text, looked up in one C-level subscript; bounded (cleared when full).

    Callers look up exact `str` keys (and None) only: 1, 1.0 and True are equal dict keys but
    clean to different text, and so are a `(str, Enum)` member and its value.
    """

    def __init__(self, clean: Callable[[Any], str | None]) -> None:
        super().__init__({None: None})
        self._clean = clean

    def __missing__(self, text: Any) -> str | None:
        out = self._clean(text)
        if len(self) >= _MAX_MEMO:
            self.clear()
            self[None] = None
        self[text] = out
        return out


def _clean_value(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, tuple, set, bytes)):
        return None
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        text = str(value)
    except Exception:  # a hostile __str__ is not a tag
        return None
    if type(text) is not str:
        return None
    s = _CONTROL.sub("", text).strip()
    if not s:
        return None
    s = s[:MAX_TAG_VALUE]
    if not s.isascii():
        # Lone surrogates (what os.fsdecode or a badly decoded header gives) cannot be encoded
        # as UTF-8: one in a batch used to fail every later write. Each becomes U+FFFD.
        s = SURROGATE.sub("\ufffd", s)
    return s


def _clean_key(key: str) -> str | None:
    return _KEY_OK.sub("_", key.strip())[:MAX_TAG_KEY] or None


_value_memo = _Memo(_clean_value)
_key_memo = _Memo(_clean_key)


def clean_value(value: Any) -> str | None:
    """Tag values are short, printable, single-line text; anything else is not a tag."""
    if type(value) is str or value is None:
        return _value_memo[value]
    # Not memoised: a str subclass (a `(str, Enum)` member) would hit its equal plain string's
    # entry, though its text is its own.
    return _clean_value(value)


def clean_id(value: Any) -> str | None:
    """clean_value for ids, unique per call: checked in place rather than memoised."""
    if type(value) is str and len(value) <= MAX_TAG_VALUE and value.isascii():
        if value.isprintable():  # ASCII printable: no control characters to remove
            return value.strip() or None
    return _clean_value(value)


def clean_key(key: Any) -> str | None:
    """Tag keys are short identifiers; other characters become `_`."""
    if type(key) is str:
        return _key_memo[key]
    return _clean_key(key) if isinstance(key, str) else None


def parse_tag_string(spec: str) -> dict[str, str]:
    """`team=search,environment=prod` (LLMTOP_TAGS) into a dict; malformed parts are skipped."""
    out: dict[str, str] = {}
    for part in spec.split(","):
        if "=" not in part:
            continue
        k, _, v = part.partition("=")
        ck, cv = clean_key(k), clean_value(v)
        if ck and cv:
            out[ck] = cv
    return out


_env_cache: tuple[str, dict[str, str]] | None = None


def env_tags() -> dict[str, str]:
    global _env_cache
    spec = os.environ.get("LLMTOP_TAGS", "")
    if _env_cache is None or _env_cache[0] != spec:
        _env_cache = (spec, parse_tag_string(spec))
    return _env_cache[1]


#: Key user ids that name no person: LiteLLM proxy files master-key requests under these.
PLACEHOLDER_USERS = frozenset({"default_user_id", "litellm_proxy_admin_name", ""})

# Where the proxy's virtual key puts its owner fields (standard logging metadata).
_PROXY_KEYS = (
    "requester_metadata",
    "user_api_key_team_alias",
    "team_alias",
    "user_api_key_team_id",
    "team_id",
    "user_api_key_user_id",
    "user_api_key_end_user_id",
    "user_api_key_org_alias",
    "user_api_key_org_id",
    "user_api_key_alias",
    "usage_object",
)
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
_NO_PROXY = (None,) * len(_PROXY_KEYS)


def _put(tags: dict[str, str], extra: dict[str, str], key: Any, value: Any, extras: bool) -> None:
    """First source to name a key wins; later sources only fill gaps."""
    if value is None:  # most proxy fields are present but empty
        return
    k = clean_key(key)
    if k is None:
        return
    if k in _TAG_SET:
        if k not in tags:
            v = clean_value(value)
            if v is not None:
                tags[k] = v
    elif extras and k not in extra and len(extra) < MAX_EXTRA_TAGS:
        v = clean_value(value)
        if v is not None:
            extra[k] = v


def _put_dict(tags: dict[str, str], extra: dict[str, str], d: Any) -> None:
    if isinstance(d, dict):
        for k, v in d.items():
            _put(tags, extra, k, v, True)


def _put_known(tags: dict[str, str], d: dict[Any, Any]) -> None:
    # Only the exact tag names count at the top level of metadata (which also holds LiteLLM's
    # own keys); they need no key cleaning, and their order does not matter: one source.
    for k in _TAG_SET.intersection(d):
        if k not in tags and (v := d[k]) is not None and (v := clean_value(v)) is not None:
            tags[k] = v


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


def _collect_tags(
    smd: dict[str, Any],
    proxy: tuple[Any, ...],
    md: dict[str, Any] | None,
    request_tags: Any,
    end_user: Any,
    env: dict[str, str],
) -> tuple[dict[str, str], dict[str, str]]:
    tags: dict[str, str] = {}
    extra: dict[str, str] = {}
    # 1. explicit metadata={"llmtop": {...}}, then 2. top-level metadata keys on the SDK call.
    if md:
        _put_dict(tags, extra, md.get("llmtop"))
        _put_known(tags, md)
    req, team_alias, team_alias2, team_id, team_id2, user_id, end_user_id, org, org_id, alias, _ = (
        proxy
    )
    # 3. proxy request metadata (the request body's `metadata`).
    if isinstance(req, dict):
        _put_dict(tags, extra, req.get("llmtop"))
        _put_known(tags, req)
    # 4. proxy key / team / org fields from the virtual key, and the request's user.
    if (v := team_alias or team_alias2) is not None:
        _put(tags, extra, "team", v, False)
    if (v := team_id or team_id2) is not None:
        _put(tags, extra, "team", v, False)
    # The request's own `user` (the proxy's end user) is the user; a virtual key's user id only
    # fills the gap, and never a placeholder identity (the master key's `default_user_id`), which
    # would file every request under one made-up user.
    for v in (end_user, end_user_id):
        if v is not None:
            _put(tags, extra, "user", v, False)
    if user_id is not None and user_id not in PLACEHOLDER_USERS:
        _put(tags, extra, "user", user_id, False)
    if (v := org or org_id) is not None:
        _put(tags, extra, "org", v, True)
    if alias is not None:
        _put(tags, extra, "api_key_alias", alias, True)
    # 5. request tags: "key:value" / "key=value" become tags, plain ones are kept as a list.
    if request_tags:
        plain: list[str] = []
        for tag in request_tags:
            if not isinstance(tag, str) or tag.startswith("User-Agent:"):
                continue
            sep = "=" if "=" in tag else (":" if ":" in tag else None)
            if sep:
                k, _, v = tag.partition(sep)
                _put(tags, extra, k, v, True)
            else:
                v = clean_value(tag)
                if v:
                    plain.append(v)
        if plain and "tags" not in extra:
            extra["tags"] = clean_value(",".join(plain)) or ""
    # 6. process defaults from LLMTOP_TAGS.
    if env:
        _put_dict(tags, extra, env)
    return tags, extra


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
    proxy = tuple(map(smd.get, _PROXY_KEYS)) if smd else _NO_PROXY
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

    tags, extra = _collect_tags(
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
