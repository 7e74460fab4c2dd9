"""Local price overrides: a small TOML file that wins over LiteLLM's bundled prices.

Why: self-hosted models have no public price, negotiated discounts are not in any public
map, and teams call models by internal aliases. The format (documented in the README)::

    [models."my-llama-70b"]        # a custom model, prices in USD per million tokens
    input_per_mtok = 0.60
    output_per_mtok = 0.80
    cache_read_per_mtok = 0.06

    [models."gpt-4o"]              # an existing model: 15% off every rate
    discount = 0.15

    [aliases]
    "prod-chat" = "gpt-4o-mini"

Validation is strict because a typo in a price file silently mis-prices every request:
every error names file, line and key, e.g. ``prices.toml:7: models."x".input_per_mtok:
expected a number ≥ 0, got 'abc'``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmtop.pricing.catalogue import Catalogue
from llmtop.pricing.costs import PricingError
from llmtop.pricing.rates import is_token_priced

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: Friendly per-million-token names → LiteLLM per-token keys.
FRIENDLY_KEYS: dict[str, str] = {
    "input_per_mtok": "input_cost_per_token",
    "output_per_mtok": "output_cost_per_token",
    "cache_read_per_mtok": "cache_read_input_token_cost",
    "cache_write_per_mtok": "cache_creation_input_token_cost",
    "cache_write_1h_per_mtok": "cache_creation_input_token_cost_above_1hr",
    "reasoning_per_mtok": "output_cost_per_reasoning_token",
    "audio_input_per_mtok": "input_cost_per_audio_token",
    "audio_output_per_mtok": "output_cost_per_audio_token",
    "batch_input_per_mtok": "input_cost_per_token_batches",
    "batch_output_per_mtok": "output_cost_per_token_batches",
}
_STRING_KEYS = ("provider", "mode")
_TOP_LEVEL = ("models", "aliases")


def _numeric_rate_keys(entries: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    """Every LiteLLM price key that holds a plain number somewhere in the bundled map."""
    keys: set[str] = set()
    for e in entries.values():
        for k, v in e.items():
            if "cost" in k and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys.add(k)
    return frozenset(keys)


class _Locator:
    """Find the line a key sits on. tomllib reports no positions, so scan the text."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def _key_re(self, key: str) -> str:
        return rf"(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"

    def table_line(self, *parts: str) -> int | None:
        pat = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(self._key_re(p) for p in parts) + r"\s*\]")
        for i, line in enumerate(self.lines, 1):
            if pat.match(line):
                return i
        return None

    def key_line(self, table: tuple[str, ...], key: str) -> int:
        start = self.table_line(*table) if table else 0
        pat = re.compile(r"^\s*" + self._key_re(key) + r"\s*=")
        if start is not None:
            for i in range(start, len(self.lines)):
                line = self.lines[i]
                if i > start and re.match(r"^\s*\[", line):
                    break
                if pat.match(line):
                    return i + 1
        # Dotted keys or inline tables: first line mentioning the key.
        dotted = re.compile(r"(?:^|[\s.{,])" + self._key_re(key) + r"\s*=")
        for i, line in enumerate(self.lines, 1):
            if dotted.search(line):
                return i
        return start or 1

    def error(self, line: int, where: str, msg: str) -> PricingError:
        return PricingError(f"{self.path}:{line}: {where}: {msg}")


def _qual(name: str) -> str:
    return f'models."{name}"'


def _version(path: Path, data: bytes, base: str) -> str:
    digest = hashlib.sha256(data).hexdigest()[:12]
    mtime = _dt.datetime.fromtimestamp(path.stat().st_mtime, tz=_dt.timezone.utc)
    return f"{base}+overrides-{digest}-{mtime:%Y-%m-%d}"


def parse_overrides(
    path: Path, bundled: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, float], dict[str, str], bytes]:
    """Read and validate an override file.

    Returns (model entries to merge, price scale per key, aliases, raw bytes).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PricingError(f"{path}: cannot read override file: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")  # a BOM (Windows editors) is not TOML
    except UnicodeDecodeError as exc:
        raise PricingError(f"{path}:1: not UTF-8 text: {exc}") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        if line is None:
            m = re.search(r"line (\d+)", str(exc))
            line = int(m.group(1)) if m else 1
        msg = getattr(exc, "msg", None) or re.sub(r"\s*\(at line.*\)$", "", str(exc))
        raise PricingError(f"{path}:{line}: TOML syntax error: {msg}") from exc
    loc = _Locator(path, text)

    for top in doc:
        if top not in _TOP_LEVEL:
            raise loc.error(
                loc.table_line(top) or loc.key_line((), top),
                top,
                f"unknown section (expected one of: {', '.join(_TOP_LEVEL)})",
            )
    models_raw = doc.get("models", {})
    if not isinstance(models_raw, dict):
        raise loc.error(loc.key_line((), "models"), "models", "expected a table of models")
    aliases_raw = doc.get("aliases", {})
    if not isinstance(aliases_raw, dict):
        raise loc.error(loc.key_line((), "aliases"), "aliases", "expected a table of alias = model")

    rate_keys = _numeric_rate_keys(bundled)
    merged: dict[str, dict[str, Any]] = {}
    scales: dict[str, float] = {}
    for name, spec in models_raw.items():
        where = _qual(name)
        if not isinstance(spec, dict):
            raise loc.error(loc.key_line(("models",), name), where, "expected a table of prices")
        table = ("models", name)
        fields: dict[str, Any] = {}
        for key, value in spec.items():
            line = loc.key_line(table, key)
            kw = f"{where}.{key}"
            if key == "discount":
                if not _is_number(value) or not 0 <= value < 1:
                    raise loc.error(
                        line, kw, f"expected a fraction 0 ≤ discount < 1, got {value!r}"
                    )
                scales[name] = 1.0 - float(value)
            elif key in _STRING_KEYS:
                if not isinstance(value, str) or not value:
                    raise loc.error(line, kw, f"expected a non-empty string, got {value!r}")
                fields["litellm_provider" if key == "provider" else key] = value
            elif key in FRIENDLY_KEYS:
                if not _is_number(value) or value < 0:
                    raise loc.error(line, kw, f"expected a number ≥ 0, got {value!r}")
                fields[FRIENDLY_KEYS[key]] = float(value) / 1e6
            elif key in rate_keys:
                if not _is_number(value) or value < 0:
                    raise loc.error(line, kw, f"expected a number ≥ 0, got {value!r}")
                fields[key] = float(value)
            else:
                raise loc.error(
                    line,
                    kw,
                    "unknown key (expected discount, provider, mode, "
                    + ", ".join(FRIENDLY_KEYS)
                    + ", or a LiteLLM price key such as input_cost_per_token)",
                )
        base = bundled.get(name)
        if base is None:
            entry: dict[str, Any] = {"litellm_provider": "custom", "mode": "chat", **fields}
            # A model that writes text needs both prices: one left out priced its output at $0
            # and the check said "ok" (an embedding model has no output to price).
            writes = entry.get("mode") not in ("embedding", "moderation", "rerank")
            needed = ("input_cost_per_token", "output_cost_per_token") if writes else ()
            if not is_token_priced(entry) or any(k not in entry for k in needed):
                raise loc.error(
                    loc.table_line("models", name) or loc.key_line(("models",), name),
                    where,
                    "new model needs input_per_mtok and output_per_mtok (it is not in the bundled map)",
                )
            entry.setdefault("input_cost_per_token", 0.0)
            entry.setdefault("output_cost_per_token", 0.0)
        else:
            entry = {**base, **fields}
        merged[name] = entry

    aliases: dict[str, str] = {}
    for alias, target in aliases_raw.items():
        line = loc.key_line(("aliases",), alias)
        kw = f'aliases."{alias}"'
        if not isinstance(target, str) or not target:
            raise loc.error(line, kw, f"expected a model name string, got {target!r}")
        aliases[alias] = target
    return merged, scales, aliases, data


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def apply_overrides(
    entries: dict[str, Mapping[str, Any]], path: Path, base_version: str
) -> Catalogue:
    """Build a Catalogue from the bundled entries with the override file at ``path`` on top."""
    merged, scales, aliases, data = parse_overrides(path, entries)
    entries.update(merged)
    cat = Catalogue(
        entries,
        version=_version(path, data, base_version),
        aliases=aliases,
        scales=scales,
        source=str(path),
    )
    text = data.decode("utf-8")
    loc = _Locator(path, text)
    for alias, target in aliases.items():
        key, reason = cat.resolve(target)
        if key is None:
            raise loc.error(
                loc.key_line(("aliases",), alias),
                f'aliases."{alias}"',
                f"alias target {target!r} is not a known model ({reason})",
            )
        # Aliases point at the resolved key, so they keep working for dated/prefixed targets.
        cat.add_alias(alias, key)
    return cat
