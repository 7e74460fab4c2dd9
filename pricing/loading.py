"""The process-wide price catalogue: where LiteLLM's bundled map is, loading it with local
overrides on top, and the module-level `cost()` / `resolve()` the collector prices rows with.

Why apart from catalogue.py: the Catalogue is pure (entries in, prices out) and overrides.py
builds one from a TOML file; this module uses both, so the imports run one way:
rates <- catalogue <- overrides <- loading.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmtop.pricing.catalogue import NON_MODEL_KEYS, PRICE_MAP_FILE, Catalogue
from llmtop.pricing.costs import Cost, PricingError
from llmtop.pricing.overrides import apply_overrides


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
    return cat.cost_positional(
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
