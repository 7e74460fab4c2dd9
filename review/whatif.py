"""`llmtop whatif`: the window's actual token counts repriced on other models, tiers or caching.

Why repricing rows rather than totals: prices are per token kind (uncached input, cache reads
and writes, output, reasoning) and some models bill a whole request at long-context rates once
its prompt crosses a threshold, so only a per-row `cost()` gives the number the provider would
bill. Rows are read in chunks (store.rows) and folded into one line per feature, so memory
stays flat whatever the window holds.

What a what-if cannot know is said on every run (CAVEATS): the other model's output length and
quality, and whether its prompt cache would hit as often.
"""

from __future__ import annotations

import fnmatch
import json
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmtop.pricing import Catalogue, catalogue
from llmtop.review.common import (
    UsageError,
    check_dimensions,
    clauses_of,
    open_reader,
    parse_until,
    pct,
    usd,
    window_of,
)
from llmtop.store.filters import Clause
from llmtop.store.reader import Reader
from llmtop.store.rows import Column, request_chunks

from llmtop.args import Parser

TIERS = ("batch", "flex", "priority")

#: What every what-if says, because the numbers cannot show it.
CAVEATS = (
    "Token counts are this window's actual ones. Another model would not write the same"
    " number of output tokens (answers are longer or shorter, reasoning models think for as"
    " long as they think), a different vendor's tokenizer counts the same prompt differently,"
    " and the answers' quality is not measured here: try the swap on real traffic first.",
    "Cached tokens are assumed to behave as they did: --cache on keeps each call's observed"
    " cache reads and writes (another provider's cache has its own minimum prefix, lifetime"
    " and write price, and may hit more or less often); --cache off prices every prompt token"
    " as uncached input.",
    "Calls answered by LiteLLM's response cache cost nothing now and are kept at $0. Calls"
    " with no price now (unpriced, unmetered, invalid) are left out of both columns and"
    " counted.",
)

#: Columns read per row (store.rows resolves interned names; one chunk in memory at a time).
READ = tuple(
    Column(n, k)
    for n, k in (
        ("feature", "str"),
        ("model", "str"),
        ("provider", "str"),
        ("price_key", "str"),
        ("input_tokens", "int"),
        ("output_tokens", "int"),
        ("cache_read_tokens", "int"),
        ("cache_write_tokens", "int"),
        ("reasoning_tokens", "int"),
        ("cost_usd", "float"),
        ("unmetered", "int"),
        ("cache_hit", "int"),
    )
)


@dataclass(frozen=True)
class Swap:
    """`--swap MODEL=OTHER`: calls whose model (or price key) matches MODEL, a glob when it has
    * ? or [, are repriced as OTHER."""

    source: str
    target: str
    target_key: str | None  # the catalogue key OTHER resolves to (None: unpriced)
    unpriced_reason: str | None
    #: MODEL and OTHER do different jobs (a chat model swapped for an embedding model): the
    #: sum is right and meaningless, so it is said next to it.
    mismatch: str | None = None

    def matches(self, model: str | None, price_key: str | None) -> bool:
        if any(ch in self.source for ch in "*?["):
            return any(
                v is not None and fnmatch.fnmatchcase(v, self.source) for v in (model, price_key)
            )
        return self.source in (model, price_key)


def parse_swaps(texts: Sequence[str], cat: Catalogue) -> tuple[Swap, ...]:
    out: list[Swap] = []
    for text in texts:
        src, eq, dst = (s.strip() for s in text.partition("="))
        if not eq or not src or not dst:
            raise UsageError(f"--swap {text!r}: use MODEL=OTHER, e.g. --swap gpt-4o=gpt-4o-mini")
        if any(s.source == src for s in out):
            raise UsageError(f"--swap {text!r}: {src} is already swapped")
        key, reason = cat.resolve(dst)
        if key is not None and reason is None:
            out.append(Swap(src, dst, key, None, _mismatch(cat, src, key)))
        else:
            out.append(Swap(src, dst, None, reason or f"no price for {dst!r}"))
    return tuple(out)


def _mismatch(cat: Catalogue, src: str, target_key: str) -> str | None:
    """ "gpt-4o is a chat model, text-embedding-3-small an embedding model", or None (the same
    kind, or a kind unknown: a glob, an unpriced source)."""
    if any(ch in src for ch in "*?["):
        return None
    skey, sreason = cat.resolve(src)
    if skey is None or sreason is not None:
        return None
    a = (cat.entry(skey) or {}).get("mode")
    b = (cat.entry(target_key) or {}).get("mode")
    if not a or not b or a == b:
        return None

    def an(word: str) -> str:
        return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"

    return (
        f"{src} is {an(a)} model and {target_key} {an(b)} model: this prices the tokens,"
        " not whether it can do the job"
    )


@dataclass
class Line:
    """Now vs what-if over one group of calls. `whatif_usd` is None when any call of the group
    went to an unpriced model: an unknown price is not $0, and a partial sum is not a total."""

    key: str
    calls: int = 0
    repriced: int = 0
    now_usd: float = 0.0
    priced_usd: float = 0.0  # what-if of the calls that have a price on their target
    unpriced_target: int = 0
    unpriced_now: int = 0
    unmetered: int = 0
    response_cache_hits: int = 0

    @property
    def whatif_usd(self) -> float | None:
        return None if self.unpriced_target else self.priced_usd

    @property
    def delta_usd(self) -> float | None:
        w = self.whatif_usd
        return None if w is None else w - self.now_usd

    @property
    def delta_pct(self) -> float | None:
        d = self.delta_usd
        return None if d is None or not self.now_usd else d / self.now_usd

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["priced_usd"]
        d.update(whatif_usd=self.whatif_usd, delta_usd=self.delta_usd, delta_pct=self.delta_pct)
        return d


@dataclass
class WhatIf:
    start: float
    end: float
    swaps: tuple[Swap, ...]
    tier: str | None
    cache: bool
    features: list[Line]
    per_swap: list[Line]
    total: Line
    notes: dict[str, int] = field(default_factory=dict)  # pricing notes, with how many calls


def reprice(
    rows: Iterable[Sequence[tuple[Any, ...]]],
    swaps: Sequence[Swap],
    *,
    tier: str | None = None,
    cache: bool = True,
    cat: Catalogue | None = None,
) -> tuple[dict[str, Line], list[Line], Line, dict[str, int]]:
    """Fold chunks of READ rows into lines per feature, per swap and in total."""
    cat = cat or catalogue()
    batch = tier == "batch"
    service_tier = tier if tier in ("flex", "priority") else None
    every_row = tier is not None or not cache
    features: dict[str, Line] = {}
    per_swap = [Line(f"{s.source} → {s.target}") for s in swaps]
    total = Line("total")
    notes: dict[str, int] = {}
    for chunk in rows:
        for feature, model, provider, pkey, it, ot, cr, cw, rt, now, unmet, hit in chunk:
            name = feature if feature is not None else "(none)"
            line = features.get(name)
            if line is None:
                line = features[name] = Line(name)
            swap_i = next((i for i, s in enumerate(swaps) if s.matches(model, pkey)), None)
            targets = [line, total] if swap_i is None else [line, total, per_swap[swap_i]]
            for t in targets:
                t.calls += 1
            if now is None:
                for t in targets:
                    if unmet:
                        t.unmetered += 1
                    else:
                        t.unpriced_now += 1
                continue
            if swap_i is None and not every_row:
                new: float | None = now  # untouched: what-if is what it cost
            elif hit:
                new = 0.0  # the response cache answers whatever the model: nothing billed
                for t in targets:
                    t.response_cache_hits += 1
            else:
                for t in targets:
                    t.repriced += 1
                new = price(
                    cat, swaps[swap_i] if swap_i is not None else None, model, provider, pkey,
                    it, ot, cr, cw, rt, batch, service_tier, cache, notes,
                )  # fmt: skip
            for t in targets:
                t.now_usd += now
                if new is None:
                    t.unpriced_target += 1
                else:
                    t.priced_usd += new
    return features, per_swap, total, notes


def price(
    cat: Catalogue,
    swap: Swap | None,
    model: str | None,
    provider: str | None,
    pkey: str | None,
    it: int,
    ot: int,
    cr: int,
    cw: int,
    rt: int,
    batch: bool,
    service_tier: str | None,
    cache: bool,
    notes: dict[str, int],
) -> float | None:
    """One call's what-if price, or None when its target has no price."""
    if not it and not ot:
        return 0.0  # nothing was sent or received (a refused call): nothing to bill anywhere
    if swap is not None and swap.target_key is None:
        return None
    cr = min(cr, it) if cache else 0
    cw = min(cw, it - cr) if cache else 0
    if swap is not None:
        # Exact key: the target was resolved once, so every swapped call bills the same model.
        model, provider, pkey = swap.target_key, None, swap.target_key
    c = cat.cost(
        model or "",
        input_tokens=it,
        output_tokens=ot,
        cache_read_tokens=cr,
        cache_write_tokens=cw,
        reasoning_tokens=min(rt, ot),
        batch=batch,
        service_tier=service_tier,
        provider=provider,
        price_key=pkey,
    )
    for n in c.notes:
        notes[n] = notes.get(n, 0) + 1
    return c.total_usd


def whatif(
    reader: Reader,
    start: float,
    end: float,
    swaps: Sequence[Swap],
    *,
    clauses: Sequence[Clause] = (),
    tier: str | None = None,
    cache: bool = True,
) -> WhatIf:
    with reader.read_transaction():
        chunks = request_chunks(reader, start, end, clauses, columns=READ)
        features, per_swap, total, notes = reprice(chunks, swaps, tier=tier, cache=cache)
    lines = sorted(features.values(), key=lambda x: (-x.now_usd, x.key))
    return WhatIf(start, end, tuple(swaps), tier, cache, lines, per_swap, total, notes)


# ----------------------------------------------------------------------------- output


def _whatif_cell(line: Line) -> str:
    if line.whatif_usd is None:
        return f"unpriced: {line.unpriced_target:,} calls"
    return usd(line.whatif_usd)


def _row(line: Line) -> str:
    d = line.delta_usd
    delta = "n/a" if d is None else ("+" if d >= 0 else "") + usd(d)
    return (
        f"{line.key[:30]:<30} {line.calls:>9,} {line.repriced:>9,} {usd(line.now_usd):>12}"
        f" {_whatif_cell(line):>20} {delta:>12} {pct(line.delta_pct):>7}"
    )


def to_text(w: WhatIf) -> str:
    from datetime import datetime

    fmt = "%Y-%m-%d %H:%M"
    span = f"{datetime.fromtimestamp(w.start):{fmt}} to {datetime.fromtimestamp(w.end):{fmt}}"
    out = [f"What if, {span}: {w.total.calls:,} calls, {w.total.repriced:,} repriced"]
    changes = [f"tier {w.tier}" if w.tier else "tier as recorded"]
    changes.append("cache on (observed cache reads/writes kept)" if w.cache else "cache off")
    out.append("  " + "; ".join(changes))
    for s, line in zip(w.swaps, w.per_swap, strict=True):
        if s.target_key is None:
            out.append(
                f"  {line.key}: {line.calls:,} calls; {s.target} is unpriced: {s.unpriced_reason}"
            )
        elif not line.calls:
            out.append(f"  {line.key}: no calls of {s.source} in the window")
        else:
            out.append(
                f"  {line.key} ({s.target_key}): {line.calls:,} calls,"
                f" {usd(line.now_usd)} → {_whatif_cell(line)} ({pct(line.delta_pct)})"
            )
        if s.mismatch:
            out.append(f"    note: {s.mismatch}")
    out.append("")
    head = ("feature", "calls", "repriced", "now", "what-if", "Δ $", "Δ %")
    out.append("{:<30} {:>9} {:>9} {:>12} {:>20} {:>12} {:>7}".format(*head))
    out.extend(_row(line) for line in w.features)
    out.append(_row(w.total))
    t = w.total
    left_out = []
    if t.unpriced_now:
        left_out.append(f"{t.unpriced_now:,} calls unpriced now")
    if t.unmetered:
        left_out.append(f"{t.unmetered:,} unmetered")
    if t.response_cache_hits:
        left_out.append(f"{t.response_cache_hits:,} response-cache hits kept at $0")
    if left_out:
        out.append("(" + "; ".join(left_out) + ")")
    if w.notes:
        out.append("")
        out.append("Pricing notes:")
        out.extend(f"  {n} ({k:,} calls)" for n, k in sorted(w.notes.items(), key=lambda x: -x[1]))
    out.append("")
    out.append("What this cannot know:")
    for c in CAVEATS:
        out.extend(textwrap.wrap(c, 96, initial_indent="  - ", subsequent_indent="    "))
    return "\n".join(out) + "\n"


def to_json(w: WhatIf) -> str:
    doc = {
        "start": w.start,
        "end": w.end,
        "tier": w.tier,
        "cache": "on" if w.cache else "off",
        "swaps": [
            {
                "model": s.source,
                "to": s.target,
                "price_key": s.target_key,
                "unpriced_reason": s.unpriced_reason,
                "mismatch": s.mismatch,
                **{k: v for k, v in line.as_dict().items() if k != "key"},
            }
            for s, line in zip(w.swaps, w.per_swap, strict=True)
        ],
        "features": [line.as_dict() for line in w.features],
        "total": w.total.as_dict(),
        "pricing_notes": w.notes,
        "cannot_know": list(CAVEATS),
    }
    return json.dumps(doc, indent=2) + "\n"


def run_whatif(argv: list[str]) -> int:
    from llmtop.review.cli import common_args

    p = Parser(
        prog="llmtop whatif",
        description="Reprice the window's actual token counts on other models, tiers or without"
        " prompt caching, per feature: now vs what-if.",
    )
    common_args(p)
    p.add_argument(
        "--swap",
        action="append",
        default=[],
        metavar="MODEL=OTHER",
        help="reprice calls of MODEL (a model or price key; a glob with *) as OTHER; repeatable",
    )
    p.add_argument("--window", default="30d", help="how far back from --until (default 30d)")
    p.add_argument("--filter", default="", help="only calls matching, e.g. 'team=search'")
    p.add_argument("--tier", choices=TIERS, help="reprice every call at this tier")
    p.add_argument(
        "--cache", choices=("on", "off"), default="on", help="prompt caching (default on)"
    )
    p.add_argument("--json", action="store_true", help="JSON for scripts")
    ns = p.parse_args(argv)
    cat = catalogue()
    swaps = parse_swaps(ns.swap, cat)
    if not swaps and ns.tier is None and ns.cache == "on":
        raise UsageError("nothing to change: give --swap MODEL=OTHER, --tier or --cache off")
    start, end = window_of(ns.window, parse_until(ns.until))
    clauses = clauses_of(ns.filter)
    reader = open_reader(ns.db)
    try:
        check_dimensions(reader, [c.key for c in clauses], "--filter")
        result = whatif(
            reader, start, end, swaps, clauses=clauses, tier=ns.tier, cache=ns.cache == "on"
        )
    finally:
        reader.close()
    sys.stdout.write(to_json(result) if ns.json else to_text(result))
    return 0
