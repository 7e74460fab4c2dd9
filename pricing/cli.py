"""``llmtop prices``: look up how a model name resolves and what it costs, or check a file.

    llmtop prices MODEL [--provider P] [--prices FILE]   # exit 0 priced, 1 unresolved
    llmtop prices --check FILE                           # exit 0 ok, 2 invalid

Lives here (not in the top-level CLI) so the pricing package can be debugged on its own:
``python -m llmtop.pricing.cli gpt-4o``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from llmtop.pricing.catalogue import Catalogue
from llmtop.pricing.costs import PricingError
from llmtop.pricing.loading import load_catalogue

#: (label, LiteLLM key) rows printed per 1M tokens, in this order, when present.
_RATE_ROWS = (
    ("input", "input_cost_per_token"),
    ("output", "output_cost_per_token"),
    ("cache read", "cache_read_input_token_cost"),
    ("cache write (5m)", "cache_creation_input_token_cost"),
    ("cache write (1h)", "cache_creation_input_token_cost_above_1hr"),
    ("reasoning", "output_cost_per_reasoning_token"),
    ("audio input", "input_cost_per_audio_token"),
    ("audio output", "output_cost_per_audio_token"),
)


class _OneLine(argparse.ArgumentParser):
    """A bad argument is one line (llmtop.args.Parser's rule; pricing imports nothing of ours)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _OneLine(
        prog="llmtop prices",
        description="Show how a model name resolves to a price, or validate a price override file.",
    )
    p.add_argument(
        "model", nargs="?", help="model name as seen in traffic, e.g. openai/gpt-4o-mini"
    )
    p.add_argument("--provider", help="provider hint, e.g. azure, bedrock, vertex_ai")
    p.add_argument(
        "--prices",
        metavar="FILE",
        help="override TOML file (default: $LLMTOP_PRICES, if set)",
    )
    p.add_argument("--check", metavar="FILE", help="validate an override TOML file and exit")
    return p


def _fmt(rate_per_token: float) -> str:
    return f"${rate_per_token * 1e6:,.6g}"


def _rate_lines(cat: Catalogue, key: str) -> list[str]:
    entry = cat.entry(key) or {}
    lines = []
    for label, k in _RATE_ROWS:
        v = entry.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            lines.append(f"  {label:<18}{_fmt(float(v))} / 1M tokens")
    # Every other per-token price (tiers, long context, batch), by its LiteLLM key.
    shown = {k for _, k in _RATE_ROWS}
    extra: list[tuple[str, str]] = []
    for k in sorted(entry):
        v = entry[k]
        if k in shown or not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if "token" in k and "cost" in k:
            extra.append((k, _fmt(float(v))))
    width = max((len(k) for k, _ in extra), default=0)
    lines += [f"  {k:<{width}}  {v} / 1M tokens" for k, v in extra]
    tiers = entry.get("tiered_pricing")
    if isinstance(tiers, list):
        for t in tiers:
            if isinstance(t, dict) and "range" in t:
                lo, hi = t["range"]
                parts = ", ".join(
                    f"{k.replace('_cost_per_token', '')} {_fmt(float(v))}"
                    for k, v in t.items()
                    if k != "range" and isinstance(v, (int, float))
                )
                lines.append(f"  tier {int(lo):,}-{int(hi):,} input tokens: {parts} / 1M tokens")
    discount = cat.discount(key)
    if discount:
        lines.append(
            f"  override discount  {discount:.4g} ({discount * 100:g}% off every rate above)"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 unresolved model, 2 bad input)."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    if args.check:
        try:
            cat = load_catalogue(args.check)
        except PricingError as exc:
            print(f"llmtop prices: {exc}", file=sys.stderr)
            return 2
        custom = sum(1 for _ in _override_models(args.check))
        n = len(cat.aliases)
        print(
            f"ok: {custom} model{'s' * (custom != 1)}, {n} alias{'es' * (n != 1)} ({cat.version})"
        )
        return 0
    if not args.model:
        print("llmtop prices: give a MODEL to look up, or --check FILE", file=sys.stderr)
        return 2
    prices = args.prices or os.environ.get("LLMTOP_PRICES") or None
    try:
        cat = load_catalogue(prices)
    except PricingError as exc:
        print(f"llmtop prices: {exc}", file=sys.stderr)
        return 2
    key, reason = cat.resolve(args.model, args.provider)
    print(
        f"model:     {args.model}" + (f" (provider hint {args.provider})" if args.provider else "")
    )
    print(f"catalogue: {cat.version}")
    if key is None:
        print(f"unpriced:  {reason}")
        return 1
    entry = cat.entry(key) or {}
    alias = cat.aliases.get(args.model)
    print(f"key:       {key}" + (f" (alias of {alias})" if alias else ""))
    print(f"provider:  {entry.get('litellm_provider', '?')}")
    print(f"mode:      {entry.get('mode', '?')}")
    if reason is not None:
        print(f"unpriced:  {reason}")
        return 1
    print("rates:")
    for line in _rate_lines(cat, key):
        print(line)
    return 0


def _override_models(path: str) -> list[str]:
    """Model tables in an (already validated) override file."""
    from llmtop.pricing.overrides import tomllib

    with open(path, encoding="utf-8-sig") as fh:
        doc = tomllib.loads(fh.read())
    return list(doc.get("models", {}))


if __name__ == "__main__":
    raise SystemExit(main())
