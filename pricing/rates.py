"""Turn one catalogue entry into flat per-token rate tuples.

The catalogue entries are LiteLLM's price map rows: dozens of optional keys whose meaning
depends on which others are present (service-tier suffixes, ``_above_200k_tokens`` long-context
tiers, ``_batches`` prices, all-or-nothing ``tiered_pricing`` tables). Resolving all that on
every request would be slow, so this module does it once per (model, service tier, batch)
and hands ``cost()`` a *plan*: sorted token thresholds plus one precomputed rate tuple per
band. ``cost()`` then only picks a band and multiplies.

The rules follow LiteLLM 1.106.2's ``generic_cost_per_token`` / ``batch_cost_calculator``
(so totals agree with LiteLLM), except where LiteLLM contradicts the provider's published
billing; those places are marked "deliberate" below and listed in tests/test_pricing_litellm.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# A rate tuple, in this exact order (plain tuple: unpacking it is the fastest thing Python does):
#   0 input, 1 output, 2 cache_read, 3 cache_write (5 min), 4 cache_write_1h, 5 reasoning,
#   6 audio_input, 7 audio_output, 8 notes (see _Notes)
Rates = tuple[float, float, float, float, float, float, float, float, "Notes"]
# Notes: (always, if_cache_read, if_cache_write, if_cache_write_1h, if_audio, if_output)
Notes = tuple[tuple[str, ...], ...]
# Plan: (thresholds, rates per band, inclusive). Band index = number of thresholds the
# request's input_tokens has crossed (``>`` or, when inclusive, ``>=``).
Plan = tuple[tuple[float, ...], tuple[Rates, ...], bool]

#: LiteLLM's service-tier → price-key suffix map ("fast" is billed as priority).
SERVICE_TIER_SUFFIX: dict[str, str] = {
    "flex": "_flex",
    "balanced": "_balanced",
    "priority": "_priority",
    "fast": "_priority",
    "ultrafast": "_ultrafast",
}
_ALL_TIER_SUFFIXES = ("_ultrafast", "_priority", "_balanced", "_flex", "_fast", "_auto")
_THRESHOLD_PREFIXES = (
    "input_cost_per_token_above_",
    "output_cost_per_token_above_",
    "cache_read_input_token_cost_above_",
    "cache_creation_input_token_cost_above_",
)
#: xAI bills the long-context tier once the prompt *reaches* the threshold (LiteLLM agrees).
_INCLUSIVE_THRESHOLD_PROVIDERS = frozenset({"xai"})
#: Fireworks bills cached prompt tokens at 50% of the input price unless a model says otherwise.
_FIREWORKS_CACHE_READ_RATIO = 0.5

TOKEN_PRICE_KEYS = ("input_cost_per_token", "output_cost_per_token")


def num(value: Any) -> float | None:
    """A price as float, or None when absent/unusable (the map has a few string prices)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def is_token_priced(entry: Mapping[str, Any]) -> bool:
    """True when the entry can be billed from token counts.

    A non-zero per-token price (flat or in a ``tiered_pricing`` table) qualifies. Token prices
    that are all zero only count when nothing else prices the model: a free local model
    (Ollama) is really $0, but dall-e's ``output_cost_per_token: 0.0`` next to a per-pixel
    price is not, and pricing it per token would report $0 for a paid request.
    """
    tokens = [num(entry.get(k)) for k in TOKEN_PRICE_KEYS]
    if any(tokens):
        return True
    tiers = entry.get("tiered_pricing")
    if isinstance(tiers, list) and any(
        isinstance(t, dict) and "input_cost_per_token" in t and isinstance(t.get("range"), list)
        for t in tiers
    ):
        return True
    if all(v is None for v in tokens):
        return False
    return not any(
        "cost_per" in k and k not in TOKEN_PRICE_KEYS and num(v) for k, v in entry.items()
    )


def _threshold_value(text: str) -> float | None:
    """'200k' → 200000.0, '128' → 128.0; None when it is not a token threshold."""
    try:
        return float(text.replace("k", "")) * (1000 if "k" in text else 1)
    except ValueError:
        return None


def _thresholds(entry: Mapping[str, Any], sfx: str) -> list[tuple[float, str]]:
    """Long-context thresholds that apply at this service tier, ascending, as (value, text)."""
    found: dict[float, str] = {}
    for key, value in entry.items():
        if value is None or not key.startswith(_THRESHOLD_PREFIXES) or "_tokens" not in key:
            continue
        if key.endswith("_batches") or (
            key.endswith(_ALL_TIER_SUFFIXES) and not (sfx and key.endswith(sfx))
        ):
            continue
        text = key.rsplit("_above_", 1)[1].split("_tokens")[0]
        t = _threshold_value(text)
        if t is not None and not math.isnan(t):
            found.setdefault(t, text)
    return sorted(found.items())


class _Getter:
    """LiteLLM's get_cost_per_unit: the service-tier key if priced, else the plain key."""

    __slots__ = ("entry", "sfx")

    def __init__(self, entry: Mapping[str, Any], sfx: str) -> None:
        self.entry = entry
        self.sfx = sfx

    def __call__(self, key: str, default: float | None) -> float | None:
        if self.sfx:
            v = num(self.entry.get(key + self.sfx))
            if v is not None:
                return v
        v = num(self.entry.get(key))
        return default if v is None else v


def _standard_band(
    entry: Mapping[str, Any], provider: str, sfx: str, crossed: list[str], scale: float
) -> Rates:
    """Rates for a non-batch request at one service tier that crossed the given thresholds."""
    get = _Getter(entry, sfx)
    inp = get("input_cost_per_token", 0.0) or 0.0
    out = get("output_cost_per_token", 0.0) or 0.0
    if not out:
        # Image-generation models price their (image) output tokens here instead.
        img = num(entry.get("output_cost_per_image_token"))
        if img is not None:
            out = img
    cw = get("cache_creation_input_token_cost", None)
    cw1h = num(entry.get("cache_creation_input_token_cost_above_1hr"))
    cr = get("cache_read_input_token_cost", None)
    if cr is None and provider == "fireworks_ai":
        base_in = num(entry.get("input_cost_per_token"))
        if base_in is not None:
            cr = base_in * _FIREWORKS_CACHE_READ_RATIO
    # Long context: the whole request is billed at the highest crossed tier (not marginally).
    for text in crossed:
        inp = get(f"input_cost_per_token_above_{text}_tokens", inp) or 0.0
        out = get(f"output_cost_per_token_above_{text}_tokens", out) or 0.0
        cw = get(f"cache_creation_input_token_cost_above_{text}_tokens", cw)
        cw1h = get(f"cache_creation_input_token_cost_above_1hr_above_{text}_tokens", cw1h)
        cr = get(f"cache_read_input_token_cost_above_{text}_tokens", cr)
    always: list[str] = []
    if sfx and not any(k.endswith(sfx) for k in entry):
        always.append(f"no {sfx[1:]} price: billed at standard rates")
    if crossed:
        always.append(
            f"long-context rates (input above {crossed[-1]} tokens) applied to the whole request"
        )
    n_cr: tuple[str, ...] = ()
    n_cw: tuple[str, ...] = ()
    n_cw1h: tuple[str, ...] = ()
    if cr is None:
        cr = inp
        n_cr = ("no cache_read price: billed cache reads at input rate",)
    elif provider == "fireworks_ai" and num(entry.get("cache_read_input_token_cost")) is None:
        n_cr = ("no cache_read price: billed cache reads at 50% of input (Fireworks default)",)
    if cw is None:
        cw = inp
        n_cw = ("no cache_write price: billed cache writes at input rate",)
    if cw1h is None:
        cw1h = cw
        n_cw1h = ("no 1h cache_write price: billed 1h cache writes at the 5-minute write rate",)
    # Reasoning: tier-specific reasoning price, else the tier's output price when the tier has
    # one, else the plain reasoning price, else output (OpenAI bills reasoning as output).
    rsn: float | None = num(entry.get("output_cost_per_reasoning_token" + sfx)) if sfx else None
    if rsn is None:
        if sfx and num(entry.get("output_cost_per_token" + sfx)) is not None:
            rsn = out
        else:
            rsn = num(entry.get("output_cost_per_reasoning_token"))
            if rsn is None:
                rsn = out
    n_audio: list[str] = []
    ain = num(entry.get("input_cost_per_audio_token" + sfx)) if sfx else None
    if ain is None:
        ain = num(entry.get("input_cost_per_audio_token"))
    if ain is None:
        ain = inp
        n_audio.append("no audio input price: billed audio input at text input rate")
    aout = num(entry.get("output_cost_per_audio_token"))
    if aout is None:
        aout = out
        n_audio.append("no audio output price: billed audio output at text output rate")
    n_out: tuple[str, ...] = ()
    if num(entry.get("output_cost_per_token")) is None and out == 0.0:
        n_out = ("catalogue has no output price for this model: output billed at $0",)
    notes: Notes = (tuple(always), n_cr, n_cw, n_cw1h, tuple(n_audio), n_out)
    return _scaled((inp, out, cr, cw, cw1h, rsn, ain, aout, notes), scale)


def _scaled(r: Rates, scale: float) -> Rates:
    if scale == 1.0:
        return r
    notes = r[8]
    pct = round((1.0 - scale) * 100, 6)
    new_notes: Notes = ((*notes[0], f"override discount {pct:g}% applied"), *notes[1:])
    return (
        r[0] * scale,
        r[1] * scale,
        r[2] * scale,
        r[3] * scale,
        r[4] * scale,
        r[5] * scale,
        r[6] * scale,
        r[7] * scale,
        new_notes,
    )


def _tier_plan(entry: Mapping[str, Any], tiers: list[Any], scale: float) -> Plan | None:
    """All-or-nothing ``tiered_pricing`` table (Alibaba/Volcengine): one tier for everything."""
    valid = [
        t
        for t in tiers
        if isinstance(t, dict)
        and isinstance(t.get("range"), list)
        and len(t["range"]) == 2
        and "input_cost_per_token" in t
    ]
    if not valid:
        return None
    valid.sort(key=lambda t: float(t["range"][0]))
    model_out = num(entry.get("output_cost_per_token")) or 0.0
    bands: list[Rates] = []
    for t in valid:
        inp = num(t.get("input_cost_per_token")) or 0.0
        out = (
            (num(t["output_cost_per_token"]) or 0.0) if "output_cost_per_token" in t else model_out
        )
        cw_raw = num(t.get("cache_creation_input_token_cost"))
        cw = inp if cw_raw is None else cw_raw
        cw1h_raw = num(t.get("cache_creation_input_token_cost_above_1hr"))
        cw1h = cw if cw1h_raw is None else cw1h_raw
        cr_raw = num(t.get("cache_read_input_token_cost"))
        cr = inp if cr_raw is None else cr_raw
        rsn_raw = num(t.get("output_cost_per_reasoning_token"))
        if rsn_raw is not None:
            rsn = rsn_raw
        elif "output_cost_per_token" in t:
            rsn = out
        else:
            rsn = num(entry.get("output_cost_per_reasoning_token")) or out
        lo, hi = t["range"]
        always = (
            f"tiered price for {int(lo):,}-{int(hi):,} input tokens applied to the whole request",
        )
        notes: Notes = (
            always,
            ("no cache_read price: billed cache reads at input rate",) if cr_raw is None else (),
            ("no cache_write price: billed cache writes at input rate",) if cw_raw is None else (),
            (),
            ("no audio price: billed audio at text rates",),
            (),
        )
        bands.append(_scaled((inp, out, cr, cw, cw1h, rsn, inp, out, notes), scale))
    # Tier i matches range_start < n <= range_end; above the last range → last tier.
    ends = tuple(float(t["range"][1]) for t in valid[:-1])
    return ends, tuple(bands), False


def _batch_band(entry: Mapping[str, Any], std: Rates, prompt_band_tokens: float | None) -> Rates:
    """Batch-API rates: the model's ``*_batches`` prices, else 50% of the standard rates.

    OpenAI, Anthropic, Google (Gemini/Vertex), Mistral and Bedrock all price their batch APIs at
    half the synchronous price, which is also LiteLLM's fallback. ``std`` must be the standard
    (non-batch, default tier) band so the fallback halves the long-context rate when the prompt
    crossed a threshold. Reasoning and audio tokens have no batch price: like LiteLLM, they are
    billed at the batch text-output / input rate.
    """
    notes = std[8]
    batch_in = num(entry.get("input_cost_per_token_batches"))
    batch_out = num(entry.get("output_cost_per_token_batches"))
    if prompt_band_tokens is not None:
        # Batch long-context tiers: "<prefix>_above_<T>_tokens_batches", highest crossed wins.
        def tiered(prefix: str, flat: float | None) -> float | None:
            best: tuple[float, float] | None = None
            for key, value in entry.items():
                if not (key.startswith(prefix + "_above_") and key.endswith("_tokens_batches")):
                    continue
                t = _threshold_value(key[len(prefix) + 7 : -len("_tokens_batches")])
                v = num(value)
                if t is None or v is None or not prompt_band_tokens > t:
                    continue
                if best is None or t > best[0]:
                    best = (t, v)
            return flat if best is None else best[1]

        batch_in = tiered("input_cost_per_token", batch_in)
        batch_out = tiered("output_cost_per_token", batch_out)
    std_in, std_out = std[0], std[1]
    if batch_in is not None:
        cr_b = num(entry.get("cache_read_input_token_cost_batches"))
        cw_b = num(entry.get("cache_creation_input_token_cost_batches"))
        # LiteLLM bills cache tokens without a batch cache price as ordinary batch input.
        n_cr = (
            ("no batch cache_read price: billed cache reads at batch input rate",)
            if cr_b is None
            else ()
        )
        n_cw = (
            ("no batch cache_write price: billed cache writes at batch input rate",)
            if cw_b is None
            else ()
        )
        cr = batch_in if cr_b is None else cr_b
        cw = batch_in if cw_b is None else cw_b
        ain_b = num(entry.get("input_cost_per_audio_token_batches"))
        ain = batch_in if ain_b is None else ain_b
        always = list(notes[0])
        if batch_out is None:
            out = std_out / 2
            always.append(
                "no batch output price: billed output at 50% of standard (provider batch rule)"
            )
        else:
            out = batch_out
        return (
            batch_in,
            out,
            cr,
            cw,
            cw,
            out,
            ain,
            out,
            (tuple(always), n_cr, n_cw, (), (), notes[5]),
        )
    always = (*notes[0], "no batch price: billed at 50% of standard rates (provider batch rule)")
    out = std_out / 2 if batch_out is None else batch_out
    half_cw = std[3] / 2
    return (
        std_in / 2,
        out,
        std[2] / 2,
        half_cw,
        half_cw,
        out,
        std_in / 2,
        out,
        (always, *notes[1:]),
    )


def build_plan(
    entry: Mapping[str, Any], provider: str, service_tier: str | None, batch: bool, scale: float
) -> Plan:
    """Precompute every band one (model, service tier, batch) combination can bill at."""
    tiers = entry.get("tiered_pricing")
    if isinstance(tiers, list) and tiers:
        plan = _tier_plan(entry, tiers, scale)
        if plan is not None:
            if batch:
                ends, bands, incl = plan
                return ends, tuple(_batch_band({}, b, None) for b in bands), incl
            return plan
    sfx = "" if batch else SERVICE_TIER_SUFFIX.get((service_tier or "").lower(), "")
    found = _thresholds(entry, sfx)
    inclusive = provider in _INCLUSIVE_THRESHOLD_PROVIDERS
    texts = [text for _, text in found]
    bands = [_standard_band(entry, provider, sfx, texts[:i], 1.0) for i in range(len(found) + 1)]
    bounds = tuple(t for t, _ in found)
    if batch:
        # Batch bands: also split at the batch-only thresholds.
        batch_bounds = sorted(
            {
                t
                for key, value in entry.items()
                if key.endswith("_tokens_batches") and "_above_" in key and num(value) is not None
                for t in [_threshold_value(key.rsplit("_above_", 1)[1][: -len("_tokens_batches")])]
                if t is not None
            }
            | set(bounds)
        )
        out_bands: list[Rates] = []
        for i in range(len(batch_bounds) + 1):
            # A representative prompt size inside band i decides which thresholds it crossed.
            probe = batch_bounds[i - 1] + 0.5 if i else 0.0
            std = bands[sum(1 for b in bounds if probe > b)]
            out_bands.append(_scaled(_batch_band(entry, std, probe), scale))
        return tuple(batch_bounds), tuple(out_bands), inclusive
    return bounds, tuple(_scaled(b, scale) for b in bands), inclusive
