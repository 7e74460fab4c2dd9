"""The price catalogue: LiteLLM's bundled price map plus optional local overrides.

Why not just call ``litellm.cost_per_token``? Importing litellm takes seconds and a lot of
memory, which a terminal dashboard that prices every row cannot afford, and LiteLLM returns
$0 for models it does not know, which hides spend. This module reads the same JSON file
LiteLLM ships (found without importing litellm), resolves real-world model names to one
catalogue key, and prices usage in a couple of microseconds. Unknown or ambiguous models are
reported as *unpriced* (``total_usd is None`` plus a reason), never as $0.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import operator
import os
import re
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from llmtop.pricing._rates import SERVICE_TIER_SUFFIX, Plan, build_plan, is_token_priced

__all__ = [
    "Catalogue",
    "Cost",
    "PricingError",
    "catalogue",
    "cost",
    "load_catalogue",
    "resolve",
    "set_catalogue",
    "use_overrides",
]

PRICE_MAP_FILE = "model_prices_and_context_window_backup.json"
#: Top-level keys of the price map that are not models.
NON_MODEL_KEYS = frozenset({"sample_spec", "fallback_generalizations"})

#: Provider names that are really one billing family (prefix in model names → entry provider).
_FAMILY_ALIASES = {
    "bedrock_converse": "bedrock",
    "bedrock_mantle": "bedrock",
    "vertex_ai_beta": "vertex_ai",
    "text-completion-openai": "openai",
    "cohere_chat": "cohere",
    "azure_text": "azure",
}
#: Providers that are OpenAI-compatible gateways: their model names are other vendors' models,
#: so when no entry is filed under the gateway itself the name is looked up on its own.
_GATEWAY_PROVIDERS = frozenset({"openai", "litellm_proxy", "custom_openai"})
#: Snapshot suffixes a dated model name may carry: -2024-08-06, -20250929, @20240620.
_DATE_SUFFIX = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-20\d{6}|@20\d{6})$")
#: Bedrock cross-region inference profile prefixes (us.anthropic.claude-…).
_BEDROCK_GEO = re.compile(r"^(?:us|eu|apac|au|jp|ca|global|us-gov)\.(?=[a-z0-9-]+\.)")
#: A cloud region path segment (bedrock/us-east-1/…).
_REGION_SEGMENT = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")


class PricingError(Exception):
    """A price catalogue or override file is unusable; the message names file:line: key."""


class Cost(NamedTuple):
    """The price of one request, split by what was billed.

    A NamedTuple (immutable, no per-instance dict) because ``cost()`` builds one per request
    and must stay cheap. Unpriced requests have every ``*_usd`` field and ``total_usd`` set to
    None and ``reason`` set: an unknown price is not $0.

    ``output_usd`` is the plain text output; ``reasoning_usd`` and the output half of
    ``audio_usd`` are the parts of ``output_tokens`` billed as reasoning / audio. Likewise
    ``input_usd`` is the uncached, non-audio part of ``input_tokens``.
    """

    total_usd: float | None
    input_usd: float | None
    cache_read_usd: float | None
    cache_write_usd: float | None
    output_usd: float | None
    reasoning_usd: float | None
    audio_usd: float | None
    price_key: str | None
    reason: str | None
    notes: tuple[str, ...]
    version: str

    @property
    def priced(self) -> bool:
        """True when the request has a price (``total_usd`` is a number)."""
        return self.total_usd is not None


_new_cost = tuple.__new__


def _litellm_dir() -> Path:
    """Where litellm is installed, found without importing it (importing costs seconds)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        raise PricingError("litellm is not installed: cannot find the bundled price map")
    return Path(spec.origin).parent


def bundled_map_path() -> Path:
    """Path of the price map JSON that ships inside the installed litellm package."""
    return _litellm_dir() / PRICE_MAP_FILE


_litellm_version: str | None = None


def litellm_version() -> str:
    """Installed litellm version, read from package metadata (no import)."""
    global _litellm_version
    if _litellm_version is None:
        try:
            _litellm_version = importlib.metadata.version("litellm")
        except importlib.metadata.PackageNotFoundError:
            _litellm_version = "unknown"
    return _litellm_version


def _family(provider: str | None) -> str:
    """'vertex_ai-language-models' → 'vertex_ai', 'bedrock_converse' → 'bedrock'."""
    if not provider:
        return ""
    p = provider.lower()
    if p in _FAMILY_ALIASES:
        return _FAMILY_ALIASES[p]
    root = p.split("-", 1)[0] if not p.startswith("text-completion") else p
    return _FAMILY_ALIASES.get(root, root)


def _price_signature(entry: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Every price-bearing field, to tell whether two candidate entries bill the same."""
    return tuple(sorted((k, repr(v)) for k, v in entry.items() if "cost" in k or "pricing" in k))


def _as_count(name: str, value: Any, required: bool) -> int:
    """Validate one token count; the slow path behind cost()'s ``type(x) is int`` check.

    Accepted: ints ≥ 0, whole floats (3.0, as some providers' JSON gives) and int-like objects
    (numpy integers). Rejected with ValueError naming the argument: negatives, bools,
    fractional/NaN/inf floats, strings, and None for the required counts (a missing count
    would silently price as $0). None for an optional count means 0.
    """
    if value is None:
        if required:
            raise ValueError(f"{name} is required: expected an integer ≥ 0, got None")
        return 0
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected an integer ≥ 0, got bool {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"{name}: expected an integer ≥ 0, got non-integer float {value!r}")
        value = int(value)
    elif not isinstance(value, int):
        try:
            value = operator.index(value)
        except TypeError:
            raise ValueError(
                f"{name}: expected an integer ≥ 0, got {type(value).__name__} {value!r}"
            ) from None
    if value < 0:
        raise ValueError(f"{name}: expected an integer ≥ 0, got {value}")
    return int(value)


_COUNT_NAMES = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)

# A prepared lookup: (rates of band 0, thresholds, all bands, inclusive, price_key).
# Unpriced: (None, None, None, reason, price_key).
_Hit = tuple[Any, Any, Any, Any, "str | None"]


class Catalogue:
    """Model prices: resolution from names to catalogue keys, and cost computation.

    Thread-safe for concurrent ``cost()``/``resolve()`` calls: the memo dicts are only ever
    filled with values computed from immutable data, so a racing duplicate insert is harmless.
    """

    def __init__(
        self,
        entries: dict[str, Mapping[str, Any]],
        *,
        version: str,
        aliases: Mapping[str, str] | None = None,
        scales: Mapping[str, float] | None = None,
        source: str = "",
    ) -> None:
        self._entries = entries
        self.version = version
        self.source = source
        self._aliases: dict[str, str] = dict(aliases or {})
        self._scales: dict[str, float] = dict(scales or {})
        self._lower: dict[str, list[str]] | None = None
        self._families: set[str] | None = None
        self._resolved: dict[tuple[str, str | None], tuple[str | None, str | None]] = {}
        self._fast: dict[str, _Hit] = {}
        self._slow: dict[tuple[Any, ...], _Hit] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- introspection
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[str]:
        """Every model key in the catalogue (bundled and overridden)."""
        return list(self._entries)

    def entry(self, key: str) -> Mapping[str, Any] | None:
        """The raw catalogue entry for an exact key (read-only by convention)."""
        return self._entries.get(key)

    @property
    def aliases(self) -> Mapping[str, str]:
        """Override-file aliases, alias → catalogue key."""
        return dict(self._aliases)

    def discount(self, key: str) -> float:
        """The override discount fraction applied to ``key`` (0.0 when none)."""
        return 1.0 - self._scales.get(key, 1.0)

    def token_priced_keys(self) -> list[str]:
        """Keys of entries that can be priced per token (what ``cost()`` can price)."""
        return [k for k, e in self._entries.items() if is_token_priced(e)]

    # ----------------------------------------------------------------- resolution
    def _lower_index(self) -> dict[str, list[str]]:
        if self._lower is None:
            with self._lock:
                if self._lower is None:
                    idx: dict[str, list[str]] = {}
                    for k in self._entries:
                        idx.setdefault(k.lower(), []).append(k)
                    self._lower = idx
        return self._lower

    def _known_families(self) -> set[str]:
        if self._families is None:
            fams = {_family(e.get("litellm_provider")) for e in self._entries.values()}
            fams.update(_FAMILY_ALIASES)
            fams.discard("")
            self._families = fams
        return self._families

    def _match(self, name: str, family: str | None) -> list[str]:
        """Keys equal to ``name`` (exactly, else case-insensitively) in ``family`` if given."""
        e = self._entries.get(name)
        if e is not None and (family is None or _family(e.get("litellm_provider")) == family):
            return [name]
        hits = self._lower_index().get(name.lower(), [])
        if family is not None:
            hits = [k for k in hits if _family(self._entries[k].get("litellm_provider")) == family]
        return hits

    def _candidates(self, name: str, provider: str | None) -> list[str]:
        """Catalogue keys ``name`` can mean, from the most to the least specific rule."""
        fam = _family(provider) if provider else None
        if provider:
            pre = provider + "/"
            if not name.startswith(pre):
                hits = self._match(pre + name, None)
                if hits:
                    return hits
        hits = self._match(name, fam)
        if hits:
            return hits
        if "/" in name:
            head, rest = name.split("/", 1)
            head_fam = _family(head)
            if head_fam in self._known_families() and (fam is None or fam == head_fam):
                if "/" in rest and _REGION_SEGMENT.match(rest.split("/", 1)[0]):
                    # bedrock/us-east-1/anthropic.claude… : region-specific key, else global one.
                    hits = self._match(name, None) or self._match(rest.split("/", 1)[1], head_fam)
                    if hits:
                        return hits
                hits = self._match(rest, head_fam)
                if hits:
                    return hits
                return self._candidates_bedrock_geo(rest, head_fam)
        hits = self._candidates_bedrock_geo(name, fam)
        if hits:
            return hits
        if provider and fam in _GATEWAY_PROVIDERS:
            return self._candidates(name, None)
        return []

    def _candidates_bedrock_geo(self, name: str, fam: str | None) -> list[str]:
        """us.anthropic.claude-… → anthropic.claude-… when no geo-specific price exists."""
        if fam not in (None, "bedrock"):
            return []
        m = _BEDROCK_GEO.match(name)
        if not m:
            return []
        return self._match(name[m.end() :], "bedrock")

    def _pick(self, name: str, cands: list[str]) -> tuple[str | None, str | None]:
        if len(cands) == 1:
            return cands[0], None
        sigs = {_price_signature(self._entries[k]) for k in cands}
        if len(sigs) == 1:
            return sorted(cands)[-1], None
        shown = ", ".join(sorted(cands)[:6]) + (", …" if len(cands) > 6 else "")
        return None, f"ambiguous model {name!r}: matches {shown}"

    def _resolve_uncached(self, model: str, provider: str | None) -> tuple[str | None, str | None]:
        if not isinstance(model, str) or not model.strip():
            return None, f"unknown model {model!r}"
        name = model.strip()
        alias = self._aliases.get(name)
        if alias is not None:
            name = alias
        cands = self._candidates(name, provider)
        if not cands:
            m = _DATE_SUFFIX.search(name)
            if m:
                base = name[: m.start()]
                cands = self._candidates(base, provider)
                if not cands:
                    # The undated base is not a key either: its dated siblings may be, and are
                    # used only when they all bill the same.
                    sib = re.compile(re.escape(base.lower()) + _DATE_SUFFIX.pattern)
                    cands = [
                        k
                        for k in self._candidates_prefix(base, provider)
                        if sib.fullmatch(k.lower())
                    ]
        if not cands:
            return None, f"unknown model {model!r}" + (
                f" (provider {provider!r})" if provider else ""
            )
        key, reason = self._pick(model, cands)
        if key is not None and not is_token_priced(self._entries[key]):
            return key, f"model {model!r} is not priced per token (catalogue key {key!r})"
        return key, reason

    def _candidates_prefix(self, base: str, provider: str | None) -> list[str]:
        """Keys that start with ``base`` (any case), optionally under ``provider/``."""
        b = base.lower()
        pre = (provider.lower() + "/") if provider else None
        out = []
        for low, keys in self._lower_index().items():
            if low.startswith(b) or (pre is not None and low.startswith(pre + b)):
                out.extend(keys)
        if provider:
            fam = _family(provider)
            out = [k for k in out if _family(self._entries[k].get("litellm_provider")) == fam]
        return out

    def resolve(self, model: str, provider: str | None = None) -> tuple[str | None, str | None]:
        """Map a model name as seen in traffic to ``(catalogue key, reason it is unpriced)``.

        ``(key, None)`` when priced; ``(None, reason)`` when unknown or ambiguous;
        ``(key, reason)`` when the key exists but is not priced per token. Memoized.
        """
        k = (model, provider)
        hit = self._resolved.get(k)
        if hit is None:
            hit = self._resolve_uncached(model, provider)
            self._resolved[k] = hit
        return hit

    # ----------------------------------------------------------------- pricing
    def plan(self, key: str, service_tier: str | None = None, batch: bool = False) -> Plan:
        """The precomputed rate bands for one catalogue key (see ``_rates``)."""
        e = self._entries[key]
        return build_plan(
            e, str(e.get("litellm_provider") or ""), service_tier, batch, self._scales.get(key, 1.0)
        )

    def _prepare(
        self,
        model: str,
        provider: str | None,
        price_key: str | None,
        service_tier: str | None,
        batch: bool,
    ) -> _Hit:
        key: str | None
        reason: str | None
        if price_key is not None and price_key in self._entries:
            key, reason = price_key, None
            if not is_token_priced(self._entries[key]):
                reason = f"model {model!r} is not priced per token (catalogue key {key!r})"
        else:
            key, reason = self.resolve(model, provider)
        if key is None or reason is not None:
            return (None, None, None, reason, key)
        if service_tier is not None and not isinstance(service_tier, str):
            raise ValueError(f"service_tier: expected a string or None, got {service_tier!r}")
        bounds, bands, inclusive = self.plan(key, service_tier, bool(batch))
        extra: tuple[str, ...] = ()
        if service_tier and service_tier.lower() not in SERVICE_TIER_SUFFIX:
            if service_tier.lower() not in ("auto", "default", "standard", "on_demand"):
                extra = (f"unknown service_tier {service_tier!r}: billed at standard rates",)
        elif service_tier and batch:
            extra = ("batch requests are billed at batch rates; service_tier ignored",)
        final = tuple(_finish_notes(b, extra) for b in bands)
        return (final[0], bounds or None, final, inclusive, key)

    def cost(
        self,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        audio_input_tokens: int = 0,
        audio_output_tokens: int = 0,
        batch: bool = False,
        service_tier: str | None = None,
        provider: str | None = None,
        cache_write_1h: bool = False,
        price_key: str | None = None,
    ) -> Cost:
        """Price one request. See ``llmtop.pricing.cost`` for the argument contract."""
        return self._cost(
            model,
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
            audio_input_tokens,
            audio_output_tokens,
            batch,
            service_tier,
            provider,
            cache_write_1h,
            price_key,
        )

    def _cost(
        self,
        model: str,
        it: Any,
        ot: Any,
        cr: Any,
        cw: Any,
        rt: Any,
        ai: Any,
        ao: Any,
        batch: bool,
        service_tier: str | None,
        provider: str | None,
        cw1h: bool,
        price_key: str | None,
    ) -> Cost:
        # Hot path: keep it flat. Memoized plan lookup, int checks, a few multiplies.
        if provider is None and price_key is None and service_tier is None and not batch:
            hit = self._fast.get(model)
            if hit is None:
                hit = self._fast[model] = self._prepare(model, None, None, None, False)
        else:
            mk = (model, provider, price_key, service_tier, bool(batch))
            hit = self._slow.get(mk)
            if hit is None:
                hit = self._slow[mk] = self._prepare(
                    model, provider, price_key, service_tier, batch
                )
        if not (
            type(it) is int
            and type(ot) is int
            and type(cr) is int
            and type(cw) is int
            and type(rt) is int
            and type(ai) is int
            and type(ao) is int
            and (it | ot | cr | cw | rt | ai | ao) >= 0
        ):
            it, ot, cr, cw, rt, ai, ao = (
                _as_count(n, v, i < 2)
                for i, (n, v) in enumerate(
                    zip(_COUNT_NAMES, (it, ot, cr, cw, rt, ai, ao), strict=True)
                )
            )
        unc = it - cr - cw - ai
        txt = ot - rt - ao
        if unc < 0 or txt < 0:
            _raise_inconsistent(it, ot, cr, cw, rt, ai, ao)
        r = hit[0]
        if r is None:
            return _new_cost(
                Cost, (None, None, None, None, None, None, None, hit[4], hit[3], (), self.version)
            )
        if hit[1] is not None:
            r = hit[2][(bisect_right if hit[3] else bisect_left)(hit[1], it)]
        inp, out, crr, cwr, cw1r, rr, air, aor, notes = r
        input_usd = unc * inp
        cache_read_usd = cr * crr
        cache_write_usd = cw * (cw1r if cw1h else cwr)
        output_usd = txt * out
        reasoning_usd = rt * rr
        audio_usd = ai * air + ao * aor
        n = notes[0]
        if notes[1] is not None:
            n = _conditional_notes(notes, cr, cw, cw1h, ai or ao, txt)
        return _new_cost(
            Cost,
            (
                input_usd
                + cache_read_usd
                + cache_write_usd
                + output_usd
                + reasoning_usd
                + audio_usd,
                input_usd,
                cache_read_usd,
                cache_write_usd,
                output_usd,
                reasoning_usd,
                audio_usd,
                hit[4],
                None,
                n,
                self.version,
            ),
        )


def _finish_notes(band: Any, extra: tuple[str, ...]) -> Any:
    """Replace a band's raw notes with (always, conditional-or-None) for the hot path."""
    always, n_cr, n_cw, n_cw1h, n_audio, n_out = band[8]
    cond = (n_cr, n_cw, n_cw1h, n_audio, n_out)
    has_cond = any(cond)
    return (*band[:8], (always + extra, cond if has_cond else None))


def _conditional_notes(
    notes: Any, cr: int, cw: int, cw1h: bool, audio: int, txt: int
) -> tuple[str, ...]:
    n_cr, n_cw, n_cw1h, n_audio, n_out = notes[1]
    out = list(notes[0])
    if cr:
        out += n_cr
    if cw:
        out += n_cw1h if cw1h else n_cw
    if audio:
        out += n_audio
    if txt:
        out += n_out
    return tuple(out)


def _raise_inconsistent(it: int, ot: int, cr: int, cw: int, rt: int, ai: int, ao: int) -> None:
    if cr + cw + ai > it:
        raise ValueError(
            "cache_read_tokens + cache_write_tokens + audio_input_tokens "
            f"({cr} + {cw} + {ai} = {cr + cw + ai}) exceed input_tokens ({it}); "
            "input_tokens must count every prompt token, cached and audio included"
        )
    raise ValueError(
        f"reasoning_tokens + audio_output_tokens ({rt} + {ao} = {rt + ao}) exceed "
        f"output_tokens ({ot}); output_tokens must count every completion token"
    )


# --------------------------------------------------------------------------- loading
def _read_bundled() -> dict[str, Mapping[str, Any]]:
    path = bundled_map_path()
    try:
        with open(path, "rb") as fh:
            raw = json.load(fh)
    except (OSError, ValueError) as exc:
        raise PricingError(f"{path}: cannot read litellm's price map: {exc}") from exc
    return {k: v for k, v in raw.items() if k not in NON_MODEL_KEYS and isinstance(v, dict)}


def load_catalogue(overrides: str | os.PathLike[str] | None = None) -> Catalogue:
    """Build a fresh catalogue: the bundled LiteLLM map, then ``overrides`` (TOML) on top.

    Raises PricingError (with file:line: key) when the override file is invalid.
    """
    entries = _read_bundled()
    version = f"litellm-{litellm_version()}"
    if overrides is None:
        return Catalogue(entries, version=version, source=str(bundled_map_path()))
    from llmtop.pricing.overrides import apply_overrides

    return apply_overrides(entries, Path(overrides), version)


_shared: Catalogue | None = None
_shared_lock = threading.Lock()


def catalogue() -> Catalogue:
    """The process-wide catalogue, loaded once on first use (thread-safe).

    Overrides come from the TOML file named by ``$LLMTOP_PRICES`` when it is set.
    """
    global _shared
    cat = _shared
    if cat is None:
        with _shared_lock:
            cat = _shared
            if cat is None:
                cat = _shared = load_catalogue(os.environ.get("LLMTOP_PRICES") or None)
    return cat


def set_catalogue(cat: Catalogue | None) -> None:
    """Install ``cat`` as the shared catalogue (None: reload lazily on next use)."""
    global _shared
    with _shared_lock:
        _shared = cat


def use_overrides(path: str | os.PathLike[str] | None) -> Catalogue:
    """Load a catalogue with ``path`` as overrides and make it the shared one."""
    cat = load_catalogue(path)
    set_catalogue(cat)
    return cat


def resolve(model: str, provider: str | None = None) -> tuple[str | None, str | None]:
    """``catalogue().resolve(model, provider)``: (catalogue key, reason it is unpriced)."""
    return catalogue().resolve(model, provider)


def cost(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    audio_input_tokens: int = 0,
    audio_output_tokens: int = 0,
    batch: bool = False,
    service_tier: str | None = None,
    provider: str | None = None,
    cache_write_1h: bool = False,
    price_key: str | None = None,
) -> Cost:
    """Price one request with the shared catalogue.

    Token counts follow what providers report: ``input_tokens`` counts every prompt token
    (cache reads, cache writes and audio included), ``output_tokens`` every completion token
    (reasoning and audio included). ``price_key`` is an exact catalogue key tried before name
    resolution (LiteLLM's ``model_map_key``). Unknown/ambiguous models come back unpriced
    (``total_usd is None``, ``reason`` set). Invalid counts raise ValueError.
    """
    cat = _shared
    if cat is None:
        cat = catalogue()
    return cat._cost(
        model,
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        reasoning_tokens,
        audio_input_tokens,
        audio_output_tokens,
        batch,
        service_tier,
        provider,
        cache_write_1h,
        price_key,
    )


def cache_read_saving(price_key: str, tokens: int) -> float | None:
    """Dollars `tokens` cached-read tokens saved under a price key: the full input rate minus
    what they cost as cache reads (None when the key is unpriced). The dashboard passes this to
    the store (store.snapshot.Savings), which never imports pricing."""
    cat = catalogue()
    full = cat.cost(price_key, input_tokens=tokens, output_tokens=0, price_key=price_key)
    cached = cat.cost(
        price_key,
        input_tokens=tokens,
        output_tokens=0,
        cache_read_tokens=tokens,
        price_key=price_key,
    )
    if full.total_usd is None or cached.total_usd is None:
        return None
    return full.total_usd - cached.total_usd
