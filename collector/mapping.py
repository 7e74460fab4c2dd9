"""From LiteLLM's logging payload to a CallRecord, on the writer thread.

Where each field comes from is documented in ../shared/reference/litellm-callbacks.md; the traps
it lists (unpriced models reported as $0, SDK metadata dropped from the standard logging object,
streams without usage) are handled here and nowhere else.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any, NamedTuple

from llmtop.store.records import TAG_KEYS, CallRecord

MAX_TAG_VALUE = 200
MAX_TAG_KEY = 64
MAX_EXTRA_TAGS = 32
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


# The same few strings (models, providers, tag values) recur on almost every row: memoising the
# cleaning (bounded, writer-thread only) roughly halves the mapping cost per row.
_MAX_MEMO = 50_000
_MISS = object()
_value_memo: dict[str, str | None] = {}
_key_memo: dict[str, str | None] = {}


def clean_value(value: Any) -> str | None:
    """Tag values are short, printable, single-line text; anything else is not a tag."""
    if type(value) is str:
        hit = _value_memo.get(value, _MISS)
        if hit is not _MISS:
            return hit  # type: ignore[return-value]
        out = _clean_value(value)
        if len(_value_memo) >= _MAX_MEMO:
            _value_memo.clear()
        _value_memo[value] = out
        return out
    return _clean_value(value)


def _clean_value(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, tuple, set, bytes)):
        return None
    if isinstance(value, bool):
        value = "true" if value else "false"
    s = _CONTROL.sub("", str(value)).strip()
    if not s:
        return None
    return s[:MAX_TAG_VALUE]


def clean_key(key: Any) -> str | None:
    """Tag keys are short identifiers; other characters become `_`."""
    if not isinstance(key, str):
        return None
    hit = _key_memo.get(key, _MISS)
    if hit is not _MISS:
        return hit  # type: ignore[return-value]
    k = _KEY_OK.sub("_", key.strip())[:MAX_TAG_KEY] or None
    if len(_key_memo) >= _MAX_MEMO:
        _key_memo.clear()
    _key_memo[key] = k
    return k


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


class _Tags:
    """First source to name a key wins; later sources only fill gaps."""

    def __init__(self) -> None:
        self.tags: dict[str, str] = {}
        self.extra: dict[str, str] = {}

    def put(self, key: Any, value: Any, *, allow_extra: bool) -> None:
        if value is None:  # most proxy fields are present but empty
            return
        k = clean_key(key)
        if k is None:
            return
        if k in _TAG_SET:
            if k not in self.tags:
                v = clean_value(value)
                if v is not None:
                    self.tags[k] = v
        elif allow_extra and k not in self.extra and len(self.extra) < MAX_EXTRA_TAGS:
            v = clean_value(value)
            if v is not None:
                self.extra[k] = v

    def put_dict(self, d: Any, *, extras: bool) -> None:
        if isinstance(d, dict):
            for k, v in d.items():
                self.put(k, v, allow_extra=extras)

    def put_known(self, d: Any) -> None:
        if isinstance(d, dict):
            for k in TAG_KEYS:
                if k in d:
                    self.put(k, d[k], allow_extra=False)


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    return None


def _int(value: Any) -> int:
    if type(value) is int:
        return value if value > 0 else 0
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if value > 0 else 0
    if isinstance(value, float) and value == value and value > 0:
        return int(value)
    return 0


def _str(value: Any) -> str | None:
    return None if value is None else clean_value(value)


def _collect_tags(
    slo: dict[str, Any], md: dict[str, Any] | None, optional_user: Any, env: dict[str, str]
) -> _Tags:
    t = _Tags()
    # 1. explicit metadata={"llmtop": {...}}, then 2. top-level metadata keys on the SDK call.
    if md:
        t.put_dict(md.get("llmtop"), extras=True)
        t.put_known(md)
    smd = slo.get("metadata") or {}
    # 3. proxy request metadata (the request body's `metadata`).
    req = smd.get("requester_metadata")
    if isinstance(req, dict):
        t.put_dict(req.get("llmtop"), extras=True)
        t.put_known(req)
    # 4. proxy key / team / org fields from the virtual key.
    t.put("team", smd.get("user_api_key_team_alias") or smd.get("team_alias"), allow_extra=False)
    t.put("team", smd.get("user_api_key_team_id") or smd.get("team_id"), allow_extra=False)
    t.put("user", smd.get("user_api_key_user_id"), allow_extra=False)
    t.put("customer", smd.get("user_api_key_end_user_id"), allow_extra=False)
    t.put(
        "org", smd.get("user_api_key_org_alias") or smd.get("user_api_key_org_id"), allow_extra=True
    )
    t.put("api_key_alias", smd.get("user_api_key_alias"), allow_extra=True)
    # 5. request tags: "key:value" / "key=value" become tags, plain ones are kept as a list.
    plain: list[str] = []
    for tag in slo.get("request_tags") or ():
        if not isinstance(tag, str) or tag.startswith("User-Agent:"):
            continue
        sep = "=" if "=" in tag else (":" if ":" in tag else None)
        if sep:
            k, _, v = tag.partition(sep)
            t.put(k, v, allow_extra=True)
        else:
            v = clean_value(tag)
            if v:
                plain.append(v)
    if plain and "tags" not in t.extra:
        t.extra["tags"] = clean_value(",".join(plain)) or ""
    # 6. end user on the call.
    t.put("user", slo.get("end_user") or optional_user, allow_extra=False)
    # 7. process defaults from LLMTOP_TAGS.
    t.put_dict(env, extras=True)
    return t


def to_record(cap: Captured, env: dict[str, str] | None = None) -> CallRecord:
    """Map one captured payload; raises only on payloads too malformed to describe a call.

    `env`: the process's LLMTOP_TAGS, parsed (the writer reads the environment once per batch:
    reading it per row cost as much as all the other tags).
    """
    slo = cap.slo if isinstance(cap.slo, dict) else {}
    md = cap.metadata if isinstance(cap.metadata, dict) else None
    started = _epoch(slo.get("startTime")) or _epoch(cap.start_time)
    if started is None:
        raise ValueError("payload has no start time")
    ended = _epoch(slo.get("endTime")) or _epoch(cap.end_time)
    stream = bool(slo.get("stream")) or cap.stream is True
    cst = _epoch(slo.get("completionStartTime"))
    ttft_ms = (cst - started) * 1000.0 if stream and cst is not None else None

    smd = slo.get("metadata") or {}
    usage = smd.get("usage_object") or {}
    if not isinstance(usage, dict):
        usage = {}
    ptd = usage.get("prompt_tokens_details") or {}
    ctd = usage.get("completion_tokens_details") or {}
    if not isinstance(ptd, dict):
        ptd = {}
    if not isinstance(ctd, dict):
        ctd = {}
    input_tokens = _int(slo.get("prompt_tokens"))
    output_tokens = _int(slo.get("completion_tokens"))
    cache_read = _int(ptd.get("cached_tokens")) or _int(usage.get("cache_read_input_tokens"))
    cache_write = _int(usage.get("cache_creation_input_tokens")) or _int(
        ptd.get("cache_creation_tokens")
    )

    failed = cap.failed or slo.get("status") == "failure"
    err = slo.get("error_information") or {}
    if not isinstance(err, dict):
        err = {}
    error_code = _str(err.get("error_code")) or (_str(cap.exception_status) if failed else None)

    mmi = slo.get("model_map_information") or {}
    price_key = _str(mmi.get("model_map_key")) if isinstance(mmi, dict) else None
    response = slo.get("response")
    response_model = _str(response.get("model")) if isinstance(response, dict) else None
    mp = slo.get("model_parameters") or {}
    service_tier = _str(mp.get("service_tier")) if isinstance(mp, dict) else None

    model_group = _str(slo.get("model_group")) or (_str(md.get("model_group")) if md else None)
    original = _str(md.get("original_model_group")) if md else None
    fallbacks = _int(md.get("attempted_fallbacks")) if md else 0
    retries = _int(md.get("attempted_retries")) if md else 0
    is_fallback = bool(fallbacks) or bool(original and model_group and original != model_group)

    tags = _collect_tags(slo, md, cap.optional_user, env_tags() if env is None else env)
    if "correlation_id" not in tags.tags and md and (cid := clean_value(md.get("correlation_id"))):
        tags.tags["correlation_id"] = cid

    rc = cap.response_cost
    litellm_cost = float(rc) if isinstance(rc, (int, float)) and not isinstance(rc, bool) else None
    cache_hit = bool(slo.get("cache_hit"))
    call_type = _str(slo.get("call_type"))
    return CallRecord(
        started_at=started,
        ended_at=ended,
        ttft_ms=ttft_ms,
        trace_id=_str(slo.get("trace_id")),
        litellm_call_id=_str(slo.get("litellm_call_id")),
        call_type=call_type,
        stream=stream,
        provider=_str(slo.get("custom_llm_provider")),
        model=_str(slo.get("model")) or _str(cap.model),
        response_model=response_model,
        model_group=model_group,
        original_model_group=original or model_group,
        price_key=price_key,
        status="failure" if failed else "success",
        error_class=(_str(err.get("error_class")) or cap.exception_class) if failed else None,
        error_code=error_code,
        normalized_error=_str(err.get("normalized_error")) if failed else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=_int(ctd.get("reasoning_tokens")),
        audio_input_tokens=_int(ptd.get("audio_tokens")),
        audio_output_tokens=_int(ctd.get("audio_tokens")),
        batch=bool(call_type and "batch" in call_type),
        service_tier=service_tier,
        litellm_cost_usd=litellm_cost,
        unmetered=(
            stream and not failed and not cache_hit and input_tokens == 0 and output_tokens == 0
        ),
        cache_hit=cache_hit,
        attempt=1 + retries + fallbacks,
        is_retry=retries > 0,
        is_fallback=is_fallback,
        tags=tags.tags,
        extra_tags=tags.extra,
        saved_usd=_float_or_none(slo.get("saved_cache_cost")) if cache_hit else None,
    )


def _float_or_none(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
