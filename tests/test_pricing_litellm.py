"""Whole-map agreement with LiteLLM's own cost calculator.

For every model in the bundled price map that has token prices, and several usage mixes,
``llmtop.pricing`` must agree with ``litellm.cost_per_token`` to 1e-12 relative, except for the
disagreements listed in KNOWN below. Each listed disagreement states why LiteLLM is wrong (or,
where honest, why we deliberately differ) and reproduces LiteLLM's number *exactly* from our
own breakdown, so a listed rule cannot hide an unrelated bug. Every rule must still fire, so
the list cannot go stale either.

This is the only test module that imports litellm (~4 s).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

import litellm  # noqa: E402

try:  # LiteLLM releases with time-of-day (off-peak) prices have a way to pin "now"
    from litellm._internal_context import pinned_billing_time  # noqa: E402
except ImportError:  # older releases have no off-peak prices: nothing to pin
    from contextlib import nullcontext as pinned_billing_time  # type: ignore[assignment]  # noqa: E402
from litellm.types.utils import Usage  # noqa: E402
from llmtop.pricing import Cost, load_catalogue  # noqa: E402

# DeepSeek/Tencent entries carry time-of-day off_peak_pricing and LiteLLM prices "now".
# llmtop.pricing bills standard (peak) rates, so pin LiteLLM to a peak hour: a Wednesday 08:00 UTC.
PEAK = dt.datetime(2025, 1, 15, 8, 0, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class Mix:
    it: int
    ot: int
    cr: int = 0
    cw: int = 0
    rt: int = 0
    ai: int = 0
    ao: int = 0
    batch: bool = False
    tier: str | None = None


MIXES: dict[str, Mix] = {
    "plain": Mix(1000, 500),
    "cached": Mix(5000, 200, cr=4000),
    "write": Mix(3000, 100, cr=500, cw=2000),
    "reasoning": Mix(800, 1500, rt=1000),
    "batch": Mix(2000, 700, batch=True),
    "batch_cached": Mix(2000, 700, cr=1500, batch=True),
    "long": Mix(300_000, 1000, cr=100_000),
    "priority": Mix(1000, 500, cr=200, tier="priority"),
    "flex": Mix(1000, 500, cr=200, tier="flex"),
    "audio": Mix(1500, 900, ai=1000, ao=600),
}


def _ours(cat: Any, key: str, m: Mix) -> Cost:
    return cat.cost(
        key,
        input_tokens=m.it,
        output_tokens=m.ot,
        cache_read_tokens=m.cr,
        cache_write_tokens=m.cw,
        reasoning_tokens=m.rt,
        audio_input_tokens=m.ai,
        audio_output_tokens=m.ao,
        batch=m.batch,
        service_tier=m.tier,
        price_key=key,
    )


def _litellm(key: str, m: Mix, provider: str | None) -> float:
    details: dict[str, Any] = {}
    if m.ai:
        details["prompt_tokens_details"] = {"audio_tokens": m.ai}
    if m.ao:
        details["completion_tokens_details"] = {"audio_tokens": m.ao}
    usage = Usage(
        prompt_tokens=m.it,
        completion_tokens=m.ot,
        total_tokens=m.it + m.ot,
        reasoning_tokens=m.rt or None,
        cache_read_input_tokens=m.cr,
        cache_creation_input_tokens=m.cw,
        **details,
    )
    kwargs: dict[str, Any] = {"custom_llm_provider": provider} if provider else {}
    prompt, completion = litellm.cost_per_token(
        model=key,
        usage_object=usage,
        call_type="retrieve_batch" if m.batch else "completion",
        service_tier=m.tier,
        **kwargs,
    )
    return prompt + completion


Entry = Mapping[str, Any]


@dataclass(frozen=True)
class Known:
    """One documented disagreement: where it applies, and LiteLLM's number rebuilt from ours."""

    applies: Callable[[str, Entry, str], bool]
    litellm_value: Callable[[Cost, Entry, Mix, Any], float]
    reason: str


def _rate(e: Entry, k: str) -> float:
    return float(e.get(k) or 0.0)


def _standard_tier(c: Cost, e: Entry, m: Mix, cat: Any) -> float:
    return _ours(cat, c.price_key, Mix(m.it, m.ot, m.cr, m.cw, m.rt, m.ai, m.ao)).total_usd


KNOWN: dict[str, Known] = {
    "rule:batch-cache-reads-free": Known(
        applies=lambda k, e, mix: (
            mix == "batch_cached"
            and e.get("cache_read_input_token_cost_batches") is None
            and (
                e.get("cache_read_input_token_cost") is None or "input_cost_per_token_batches" in e
            )
        ),
        litellm_value=lambda c, e, m, cat: c.total_usd - c.cache_read_usd,
        reason=(
            "LiteLLM's batch_cost_calculator bills cached prompt tokens at $0 when the model has no "
            "cache-read price (and, on Bedrock, when it has no *batch* cache-read price). Tokens a "
            "provider did not discount are ordinary input: OpenAI, Anthropic, Google and Bedrock bill "
            "batch requests at 50% of every standard line item, so we bill them at the batch input rate."
        ),
    ),
    "rule:batch-image-output-free": Known(
        applies=lambda k, e, mix: (
            mix in ("batch", "batch_cached")
            and e.get("output_cost_per_token") is None
            and e.get("output_cost_per_image_token") is not None
        ),
        litellm_value=lambda c, e, m, cat: c.total_usd - c.output_usd,
        reason=(
            "gpt-image / MAI-Image entries price output only as output_cost_per_image_token. LiteLLM's "
            "synchronous path uses it as the output rate, but its batch path only does so for tokens "
            "reported as image_tokens and bills the rest at output_cost_per_token, which is absent: $0. "
            "OpenAI's batch API bills image output at 50% of the image-token price, as we do."
        ),
    ),
    "rule:batch-unresolved-zero": Known(
        applies=lambda k, e, mix: (
            mix in ("batch", "batch_cached")
            and (
                "tiered_pricing" in e
                or e.get("litellm_provider") in ("ai21", "azure_text")
                or k == "azure/mistral-large-latest"
            )
        ),
        litellm_value=lambda c, e, m, cat: 0.0,
        reason=(
            "LiteLLM's batch_cost_calculator returns $0: tiered-only entries (Alibaba/Volcengine) have "
            "no flat input_cost_per_token for its 50% rule, and for ai21 / azure_text keys its "
            "get_llm_provider/get_model_info lookup fails and it falls back to (0, 0). A priced model "
            "is never free; we apply the 50% batch rule to the tier or flat rates."
        ),
    ),
    "gemini-exp-1206": Known(
        applies=lambda k, e, mix: k == "gemini-exp-1206",
        litellm_value=lambda c, e, m, cat: 0.0,
        reason=(
            "LiteLLM returns $0 for every usage of this key (its Gemini route does not find the entry's "
            "prices), although the catalogue lists $0.30 / $2.50 per M tokens; we bill the listed prices."
        ),
    ),
    "provider:perplexity": Known(
        applies=lambda k, e, mix: e.get("litellm_provider") == "perplexity",
        litellm_value=lambda c, e, m, cat: (
            m.it * _rate(e, "input_cost_per_token")
            + (m.ot - m.rt) * _rate(e, "output_cost_per_token")
            + m.rt
            * float(e.get("output_cost_per_reasoning_token") or _rate(e, "output_cost_per_token"))
        ),
        reason=(
            "LiteLLM's perplexity calculator bills every prompt token at the flat input_cost_per_token: "
            "it ignores the entry's cache_read_input_token_cost and its long-context "
            "*_above_272k_tokens prices. Perplexity passes through the upstream vendor's price list "
            "(cached-input discount, long-context surcharge), which is what the entry records and we bill."
        ),
    ),
    "provider:fireworks_ai:priority": Known(
        applies=lambda k, e, mix: e.get("litellm_provider") == "fireworks_ai" and mix == "priority",
        litellm_value=_standard_tier,
        reason=(
            "LiteLLM's fireworks_ai calculator does not pass service_tier to generic_cost_per_token, so "
            "priority requests are billed at standard rates although the entry lists *_priority prices "
            "(Fireworks' priority tier); we bill the listed priority prices."
        ),
    ),
    "moonshotai.kimi-k2.5": Known(
        applies=lambda k, e, mix: k == "moonshotai.kimi-k2.5" and mix == "priority",
        litellm_value=_standard_tier,
        reason=(
            "LiteLLM's Bedrock route prices this bedrock_converse key without its service tier; the "
            "entry lists input/output_cost_per_token_priority (Bedrock priority tier, +75%), which we bill."
        ),
    ),
    "gemini-3.1-pro-preview-customtools": Known(
        applies=lambda k, e, mix: k == "gemini-3.1-pro-preview-customtools" and mix == "priority",
        litellm_value=lambda c, e, m, cat: _ours(cat, "gemini-3.1-pro-preview", m).total_usd,
        reason=(
            "Deliberate, and arguably LiteLLM is closer to Google's list here: this entry has no "
            "*_priority prices, and LiteLLM's Vertex route bills gemini-3.1-pro-preview's priority "
            "rates instead. We bill only what the resolved entry lists (standard rates, with a note)."
        ),
    ),
    "deepseek-chat": Known(
        applies=lambda k, e, mix: k == "deepseek-chat" and MIXES[mix].cw > 0,
        litellm_value=lambda c, e, m, cat: c.total_usd - c.cache_write_usd,
        reason=(
            "LiteLLM prices 'deepseek-chat' through the 'deepseek/deepseek-chat' entry, whose "
            "cache_creation_input_token_cost is 0.0, so cache writes are free. DeepSeek has no "
            "cache-write charge line: tokens not served from cache are 'cache miss' input billed at "
            "the input price, which is what this entry (no cache-write price) gives."
        ),
    ),
}

#: Combinations we do not ask LiteLLM about at all, with the reason.
SKIPPED: dict[str, Callable[[str, Entry, str], bool]] = {
    # Copilot is a subscription with no batch API, and LiteLLM's batch path tries to log in to
    # GitHub over the network (it raises offline, after slow DNS retries).
    "github_copilot batch": lambda k, e, mix: (
        e.get("litellm_provider") == "github_copilot" and MIXES[mix].batch
    ),
}


def _close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))


def _explained(cat: Any, key: str, e: Entry, mix: str, ours: Cost, theirs: float) -> str | None:
    m = MIXES[mix]
    applicable = [name for name, k in KNOWN.items() if k.applies(key, e, mix)]
    for name in applicable:
        if _close(KNOWN[name].litellm_value(ours, e, m, cat), theirs):
            return name
    # Two independent LiteLLM errors can stack (e.g. free image output *and* free cache reads).
    if len(applicable) >= 2:
        delta = sum(ours.total_usd - KNOWN[n].litellm_value(ours, e, m, cat) for n in applicable)
        if _close(ours.total_usd - delta, theirs):
            return "+".join(applicable)
    return None


@pytest.fixture(scope="module")
def cat() -> Any:
    return load_catalogue()


#: The release whose map and calculator the KNOWN disagreements were audited against. Every
#: release fixes some of LiteLLM's pricing bugs and adds others, so the exact whole-map audit runs
#: on this one (the main CI venv installs it, .ci/constraints.txt); the oldest and newest
#: supported releases run the hand-checked comparisons below against their own map.
REFERENCE = "1.106.2"


@pytest.mark.skipif(
    importlib.metadata.version("litellm") != REFERENCE,
    reason=f"the documented disagreements are audited against LiteLLM {REFERENCE}",
)
def test_every_token_priced_model_matches_litellm(cat: Any) -> None:
    keys = cat.token_priced_keys()
    compared = 0
    skipped = 0
    used: Counter[str] = Counter()
    failures: list[str] = []
    with pinned_billing_time(PEAK):
        for key in keys:
            e = cat.entry(key)
            provider = e.get("litellm_provider")
            for mix, m in MIXES.items():
                if m.ai and e.get("input_cost_per_audio_token") is None:
                    continue  # the audio mix is only meaningful where audio has its own price
                if any(skip(key, e, mix) for skip in SKIPPED.values()):
                    skipped += 1
                    continue
                ours = _ours(cat, key, m)
                assert ours.total_usd is not None, (key, ours.reason)
                try:
                    # Without an explicit provider LiteLLM tries to log in to GitHub for
                    # github_copilot keys (network, slow retries); tell it the provider.
                    theirs = _litellm(key, m, provider if provider == "github_copilot" else None)
                except Exception:
                    # Keys LiteLLM cannot route without being told the provider.
                    theirs = _litellm(key, m, provider)
                compared += 1
                if _close(ours.total_usd, theirs):
                    continue
                why = _explained(cat, key, e, mix, ours, theirs)
                if why is None:
                    failures.append(f"{key} [{mix}] ours={ours.total_usd!r} litellm={theirs!r}")
                else:
                    for name in why.split("+"):
                        used[name] += 1
    print(
        f"\ncompared {compared} (model, usage) pairs over {len(keys)} token-priced models; "
        f"{sum(used.values())} documented disagreements; {skipped} skipped: {dict(used)}"
    )
    assert not failures, f"{len(failures)} unexplained disagreements:\n" + "\n".join(failures[:50])
    assert len(keys) > 3000
    assert compared > 25_000
    stale = sorted(set(KNOWN) - set(used))
    assert not stale, f"documented disagreements that no longer occur (remove them): {stale}"


def test_hand_checked_examples_agree_with_litellm(cat: Any) -> None:
    """The two worked examples from the design notes, against LiteLLM and by hand."""
    mini = cat.cost("gpt-4o-mini", input_tokens=1200, output_tokens=300, cache_read_tokens=1024)
    assert mini.total_usd == pytest.approx(176 * 1.5e-7 + 1024 * 7.5e-8 + 300 * 6e-7, rel=1e-12)
    assert mini.total_usd == pytest.approx(2.832e-4, rel=1e-12)
    assert _close(mini.total_usd, _litellm("gpt-4o-mini", Mix(1200, 300, cr=1024), None))
    sonnet = cat.cost(
        "claude-sonnet-4-5",
        input_tokens=1300,
        output_tokens=50,
        cache_read_tokens=1000,
        cache_write_tokens=200,
    )
    assert sonnet.total_usd == pytest.approx(0.0021, rel=1e-12)
    theirs = sum(
        litellm.cost_per_token(
            model="claude-sonnet-4-5",
            prompt_tokens=1300,
            completion_tokens=50,
            cache_read_input_tokens=1000,
            cache_creation_input_tokens=200,
        )
    )
    assert _close(sonnet.total_usd, theirs)


def test_litellm_not_imported_by_pricing_in_fresh_interpreter() -> None:
    """This module imported litellm itself, so check the package in a clean interpreter."""
    import subprocess
    import sys

    code = (
        "import sys, llmtop.pricing, llmtop.pricing.cli;"
        "from llmtop.pricing import cost; cost('gpt-4o', input_tokens=1, output_tokens=1);"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('litellm', 'textual')"
        " or (m.startswith('llmtop.') and not m.startswith('llmtop.pricing')));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
