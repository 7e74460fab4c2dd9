"""The price catalogue: LiteLLM's bundled price map plus optional local overrides.

Why not just call ``litellm.cost_per_token``? Importing litellm takes seconds and a lot of
memory, which a terminal dashboard that prices every row cannot afford, and LiteLLM returns
$0 for models it does not know, which hides spend. This module reads the same JSON file
LiteLLM ships (found without importing litellm), resolves real-world model names to one
catalogue key, and prices usage in a couple of microseconds. Unknown or ambiguous models are
reported as *unpriced* (``total_usd is None`` plus a reason), never as $0.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from typing import Any

from llmtop.pricing.costs import (
    COUNT_NAMES,
    Cost,
    PricingError,
    as_count,
    new_cost,
    raise_inconsistent,
)
from llmtop.pricing.rates import SERVICE_TIER_SUFFIX, Plan, build_plan, is_token_priced

__all__ = ["Catalogue", "Cost", "PricingError"]

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

    def add_alias(self, alias: str, key: str) -> None:
        """Make `alias` name catalogue key `key` (an override file's aliases, once resolved)."""
        self._aliases[alias] = key
        self._resolved.clear()  # earlier resolutions may have missed the alias

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
        """The precomputed rate bands for one catalogue key (see ``rates``)."""
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
        return self.cost_positional(
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

    def cost_positional(
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
                as_count(n, v, i < 2)
                for i, (n, v) in enumerate(
                    zip(COUNT_NAMES, (it, ot, cr, cw, rt, ai, ao), strict=True)
                )
            )
        unc = it - cr - cw - ai
        txt = ot - rt - ao
        if unc < 0 or txt < 0:
            raise_inconsistent(it, ot, cr, cw, rt, ai, ao)
        r = hit[0]
        if r is None:
            return new_cost(
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
        return new_cost(
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
