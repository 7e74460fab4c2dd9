"""The one record type that crosses from the collector into the database.

It carries resolved strings and numbers only, so anything that can build one (the LiteLLM
callback, the demo's simulator, a test) is written to the file by the same code.
"""

from __future__ import annotations

import dataclasses
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

#: Tag keys with their own column (and their own drill-down dimension).
TAG_KEYS: tuple[str, ...] = (
    "feature",
    "endpoint",
    "team",
    "environment",
    "workload",
    "customer",
    "user",
    "prompt_version",
    "route_version",
    "correlation_id",
)


@dataclass(slots=True)
class CallRecord:
    # collector.mapping.to_record builds this positionally (it runs once per call): keep the
    # field order, or update it there.
    started_at: float
    ended_at: float | None = None
    ttft_ms: float | None = None
    trace_id: str | None = None
    litellm_call_id: str | None = None
    call_type: str | None = None
    stream: bool = False
    provider: str | None = None
    model: str | None = None
    response_model: str | None = None
    model_group: str | None = None
    original_model_group: str | None = None
    price_key: str | None = None
    status: str = "success"
    error_class: str | None = None
    error_code: str | None = None
    normalized_error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    batch: bool = False
    service_tier: str | None = None
    litellm_cost_usd: float | None = None
    unmetered: bool = False
    cache_hit: bool = False
    attempt: int = 1
    is_retry: bool = False
    is_fallback: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    extra_tags: dict[str, str] = field(default_factory=dict)
    # Filled in by the writer from llmtop.pricing, off the caller's thread.
    cost_usd: float | None = None
    input_usd: float | None = None
    cache_read_usd: float | None = None
    cache_write_usd: float | None = None
    output_usd: float | None = None
    saved_usd: float | None = None
    unpriced: bool = False
    unpriced_reason: str | None = None
    price_version: str | None = None
    #: Why a value of the call was out of its physical range and not stored as it came
    #: (collector.mapping validates; the writer repairs rows the database refused).
    invalid: str | None = None


def pack_id(value: str | None) -> str | bytes | None:
    """A canonical lowercase UUID (what LiteLLM puts in call and trace ids) as its 16 bytes.

    Two ids per row are the widest thing in it: 37 bytes of text each become 17 on disk. Anything
    that is not exactly `str(uuid.UUID(value))` stays text, so packing is always lossless.
    """
    if value is None or len(value) != 36:
        return value
    # Canonical form checked by hand (uuid.UUID + str() cost ~3 us, twice per row): dashes at
    # 8-4-4-4-12, lowercase, 32 hex digits (fromhex skips whitespace, hence the length check).
    if value[8] != "-" or value[13] != "-" or value[18] != "-" or value[23] != "-":
        return value
    if value != value.lower():
        return value
    try:
        b = bytes.fromhex(value.replace("-", ""))
    except ValueError:
        return value
    return b if len(b) == 16 else value


def unpack_id(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return str(uuid.UUID(bytes=value))
    return value


_INT64 = 2**63 - 1
#: Lone UTF-16 surrogates: valid in a Python str, not encodable as UTF-8.
SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(value: Any) -> tuple[Any, bool]:
    """(a value SQLite can store with the same meaning, or None; whether it changed)."""
    if value is None or isinstance(value, bool):
        return value, False
    if isinstance(value, int):
        return (int(value), False) if -_INT64 <= value <= _INT64 else (None, True)
    if isinstance(value, float):
        return (value, False) if math.isfinite(value) else (None, True)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return str(value), type(value) is not str
        except UnicodeEncodeError:
            return SURROGATE.sub("\ufffd", value), True
    return None, True


def repaired(rec: CallRecord, why: str) -> CallRecord:
    """A copy of a record the database refused, with every value made storable.

    Surrogates become U+FFFD, non-finite floats and integers beyond 64 bits become NULL (0 for
    counts), anything else that is not a plain value is dropped; the row says why in `invalid`.
    Used by the writer only after the row, alone, was refused: the mapping has already cleaned
    every payload it built, so this catches records built elsewhere (the demo, a test, an app).
    """
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(rec):
        value = getattr(rec, f.name)
        if isinstance(value, dict):
            clean: dict[str, str] = {}
            for k, v in value.items():
                ks, _ = _storable(k) if isinstance(k, str) else (None, True)
                vs, _ = _storable(v) if isinstance(v, str) else (None, True)
                if ks and vs:
                    clean[ks] = vs
            changes[f.name] = clean
            continue
        fixed, changed = _storable(value)
        if changed:
            if fixed is None and isinstance(f.default, (int, float)) and f.default is not None:
                fixed = f.default
            if f.name == "started_at" and fixed is None:
                fixed = 0.0
            changes[f.name] = fixed
    prior = changes.get("invalid", rec.invalid)
    changes["invalid"] = "; ".join(filter(None, (prior, f"repaired: {why.split(':')[0]}")))
    return dataclasses.replace(rec, **changes)
