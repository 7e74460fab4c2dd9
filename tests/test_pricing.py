"""Behaviour of llmtop.pricing without litellm: validation, resolution, overrides, CLI."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import llmtop.pricing as pricing
import pytest
from llmtop.pricing import Catalogue, Cost, PricingError, cost, load_catalogue, resolve
from llmtop.pricing.cli import main

FIX = Path(__file__).parent / "fixtures" / "pricing"


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def ocat() -> Catalogue:
    return load_catalogue(FIX / "good.toml")


# ----------------------------------------------------------------------------- pricing rules
def test_hand_checked_gpt_4o_mini(cat: Catalogue) -> None:
    c = cat.cost("gpt-4o-mini", input_tokens=1200, output_tokens=300, cache_read_tokens=1024)
    assert c.total_usd == pytest.approx(2.832e-4, rel=1e-12)
    assert c.input_usd == pytest.approx(176 * 1.5e-7)
    assert c.cache_read_usd == pytest.approx(1024 * 7.5e-8)
    assert c.output_usd == pytest.approx(300 * 6e-7)
    assert c.price_key == "gpt-4o-mini" and c.reason is None
    assert c.version.startswith("litellm-")


def test_parts_add_up_and_reasoning_is_part_of_output(cat: Catalogue) -> None:
    c = cat.cost("o3-mini", input_tokens=1000, output_tokens=900, reasoning_tokens=600)
    parts = (
        c.input_usd,
        c.cache_read_usd,
        c.cache_write_usd,
        c.output_usd,
        c.reasoning_usd,
        c.audio_usd,
    )
    assert c.total_usd == pytest.approx(sum(parts), rel=1e-12)
    out_rate = cat.entry("o3-mini")["output_cost_per_token"]
    assert c.output_usd == pytest.approx(300 * out_rate)
    assert c.reasoning_usd == pytest.approx(600 * out_rate)


def test_anthropic_cache_write_5m_and_1h(cat: Catalogue) -> None:
    kw = dict(input_tokens=1300, output_tokens=50, cache_read_tokens=1000, cache_write_tokens=200)
    five = cat.cost("claude-sonnet-4-5", **kw)
    assert five.total_usd == pytest.approx(0.0021, rel=1e-12)
    hour = cat.cost("claude-sonnet-4-5", cache_write_1h=True, **kw)
    # Maps before ~1.91 have no 1-hour write price: those writes are billed at the 5-minute rate.
    rate_1h = cat.entry("claude-sonnet-4-5").get(
        "cache_creation_input_token_cost_above_1hr", 3.75e-6
    )
    assert hour.cache_write_usd == pytest.approx(200 * rate_1h)
    assert hour.total_usd - five.total_usd == pytest.approx(200 * (rate_1h - 3.75e-6))


def test_missing_cache_price_falls_back_to_input_with_note(cat: Catalogue) -> None:
    e = cat.entry("deepseek-chat")
    assert "cache_creation_input_token_cost" not in e
    c = cat.cost("deepseek-chat", input_tokens=3000, output_tokens=0, cache_write_tokens=2000)
    assert c.cache_write_usd == pytest.approx(2000 * e["input_cost_per_token"])
    assert "no cache_write price: billed cache writes at input rate" in c.notes
    plain = cat.cost("deepseek-chat", input_tokens=3000, output_tokens=0)
    assert plain.notes == ()


def test_batch_uses_batch_prices_else_half(cat: Catalogue) -> None:
    e = cat.entry("gpt-4o")
    c = cat.cost("gpt-4o", input_tokens=1000, output_tokens=100, batch=True)
    assert c.total_usd == pytest.approx(
        1000 * e["input_cost_per_token_batches"] + 100 * e["output_cost_per_token_batches"]
    )
    key = "ai21.j2-mid-v1"  # no batch price at all
    e = cat.entry(key)
    assert "input_cost_per_token_batches" not in e
    h = cat.cost(key, input_tokens=1000, output_tokens=100, batch=True)
    full = cat.cost(key, input_tokens=1000, output_tokens=100)
    assert h.total_usd == pytest.approx(full.total_usd / 2)
    assert any("50%" in n for n in h.notes)


def test_service_tier_priority_and_flex(cat: Catalogue) -> None:
    e = cat.entry("gpt-4o")
    p = cat.cost("gpt-4o", input_tokens=1000, output_tokens=100, service_tier="priority")
    assert p.total_usd == pytest.approx(
        1000 * e["input_cost_per_token_priority"] + 100 * e["output_cost_per_token_priority"]
    )
    std = cat.cost("gpt-4o", input_tokens=1000, output_tokens=100)
    auto = cat.cost("gpt-4o", input_tokens=1000, output_tokens=100, service_tier="auto")
    assert auto.total_usd == std.total_usd
    flex = cat.cost("gpt-4o", input_tokens=1000, output_tokens=100, service_tier="flex")
    assert (
        flex.total_usd == std.total_usd and "no flex price: billed at standard rates" in flex.notes
    )


def test_above_200k_tier_bills_whole_request_at_higher_rate(cat: Catalogue) -> None:
    e = cat.entry("gemini-2.5-pro")
    at = cat.cost("gemini-2.5-pro", input_tokens=200_000, output_tokens=10)
    above = cat.cost("gemini-2.5-pro", input_tokens=200_001, output_tokens=10)
    assert at.total_usd == pytest.approx(
        200_000 * e["input_cost_per_token"] + 10 * e["output_cost_per_token"]
    )
    assert above.total_usd == pytest.approx(
        200_001 * e["input_cost_per_token_above_200k_tokens"]
        + 10 * e["output_cost_per_token_above_200k_tokens"]
    )
    assert any("long-context" in n for n in above.notes)


def test_audio_tokens_are_part_of_input_and_output(cat: Catalogue) -> None:
    key = "gpt-4o-audio-preview-2024-12-17"  # audio-priced in every supported LiteLLM's map
    e = cat.entry(key)
    c = cat.cost(
        key, input_tokens=1000, output_tokens=500, audio_input_tokens=400, audio_output_tokens=300
    )
    assert c.input_usd == pytest.approx(600 * e["input_cost_per_token"])
    assert c.output_usd == pytest.approx(200 * e["output_cost_per_token"])
    assert c.audio_usd == pytest.approx(
        400 * e["input_cost_per_audio_token"] + 300 * e["output_cost_per_audio_token"]
    )


def test_tiered_pricing_table_is_all_or_nothing(cat: Catalogue) -> None:
    key = "dashscope/qwen-flash"
    lo, hi = cat.entry(key)["tiered_pricing"]
    small = cat.cost(key, input_tokens=256_000, output_tokens=100)
    big = cat.cost(key, input_tokens=256_001, output_tokens=100)
    assert small.total_usd == pytest.approx(
        256_000 * lo["input_cost_per_token"] + 100 * lo["output_cost_per_token"]
    )
    assert big.total_usd == pytest.approx(
        256_001 * hi["input_cost_per_token"] + 100 * hi["output_cost_per_token"]
    )


def test_cost_is_frozen() -> None:
    c = cost("gpt-4o", input_tokens=1, output_tokens=1)
    assert isinstance(c, Cost)
    with pytest.raises(AttributeError):
        c.total_usd = 0.0  # type: ignore[misc]


# ----------------------------------------------------------------------------- unpriced
@pytest.mark.parametrize(
    ("model", "provider", "reason"),
    [
        ("no-such-model", None, "unknown model 'no-such-model'"),
        ("azure/my-deployment", None, "unknown model 'azure/my-deployment'"),
        ("my-deployment", "azure", "unknown model 'my-deployment' (provider 'azure')"),
        ("", None, "unknown model ''"),
    ],
)
def test_unknown_model_is_unpriced_never_zero(
    cat: Catalogue, model: str, provider: str | None, reason: str
) -> None:
    c = cat.cost(model, input_tokens=100, output_tokens=10, provider=provider)
    assert c.total_usd is None and not c.priced
    assert (
        c.input_usd,
        c.cache_read_usd,
        c.cache_write_usd,
        c.output_usd,
        c.reasoning_usd,
        c.audio_usd,
    ) == (None,) * 6
    assert c.reason == reason
    assert c.price_key is None


def test_not_priced_per_token(cat: Catalogue) -> None:
    key = "azure/standard/1024-x-1024/dall-e-3"
    assert key in cat
    c = cat.cost(key, input_tokens=10, output_tokens=0)
    assert c.total_usd is None and c.price_key == key
    assert c.reason == f"model {key!r} is not priced per token (catalogue key {key!r})"


def test_dated_name_falls_back_only_when_unambiguous(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text(
        '[models."acme-chat-2024-01-01"]\ninput_per_mtok = 1\noutput_per_mtok = 2\n'
        '[models."acme-chat-2024-06-01"]\ninput_per_mtok = 3\noutput_per_mtok = 4\n'
        '[models."acme-code-20240101"]\ninput_per_mtok = 1\noutput_per_mtok = 2\n'
        '[models."acme-code-20240601"]\ninput_per_mtok = 1\noutput_per_mtok = 2\n'
    )
    c = load_catalogue(p)
    # No undated base, two snapshots with different prices: refuse to guess.
    key, reason = c.resolve("acme-chat-2025-01-01")
    assert key is None
    assert (
        reason
        == "ambiguous model 'acme-chat-2025-01-01': matches acme-chat-2024-01-01, acme-chat-2024-06-01"
    )
    u = c.cost("acme-chat-2025-01-01", input_tokens=1, output_tokens=1)
    assert u.total_usd is None and u.reason == reason
    # Snapshots that all bill the same are not ambiguous.
    assert c.resolve("acme-code-20250101")[0] in ("acme-code-20240101", "acme-code-20240601")
    assert c.resolve("acme-code-20250101")[1] is None


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(input_tokens=-1, output_tokens=0), "input_tokens: expected an integer ≥ 0, got -1"),
        (dict(input_tokens=1, output_tokens=-5), "output_tokens: expected an integer ≥ 0, got -5"),
        (
            dict(input_tokens=10, output_tokens=0, cache_read_tokens=-2),
            "cache_read_tokens: expected an integer ≥ 0, got -2",
        ),
        (
            dict(input_tokens=1.5, output_tokens=0),
            "input_tokens: expected an integer ≥ 0, got non-integer float 1.5",
        ),
        (
            dict(input_tokens=float("nan"), output_tokens=0),
            "input_tokens: expected an integer ≥ 0, got non-integer float nan",
        ),
        (
            dict(input_tokens="10", output_tokens=0),
            "input_tokens: expected an integer ≥ 0, got str '10'",
        ),
        (
            dict(input_tokens=True, output_tokens=0),
            "input_tokens: expected an integer ≥ 0, got bool True",
        ),
        (
            dict(input_tokens=None, output_tokens=0),
            "input_tokens is required: expected an integer ≥ 0, got None",
        ),
        (
            dict(input_tokens=0, output_tokens=None),
            "output_tokens is required: expected an integer ≥ 0, got None",
        ),
        (
            dict(input_tokens=1, output_tokens=0, reasoning_tokens=2.5),
            "reasoning_tokens: expected an integer ≥ 0, got non-integer float 2.5",
        ),
        (
            dict(input_tokens=100, output_tokens=0, cache_read_tokens=80, cache_write_tokens=30),
            "cache_read_tokens + cache_write_tokens + audio_input_tokens (80 + 30 + 0 = 110) exceed input_tokens (100)",
        ),
        (
            dict(input_tokens=1, output_tokens=10, reasoning_tokens=11),
            "reasoning_tokens + audio_output_tokens (11 + 0 = 11) exceed output_tokens (10)",
        ),
    ],
)
def test_invalid_counts_raise_value_error(cat: Catalogue, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        cat.cost("gpt-4o", **kwargs)
    assert str(exc.value).startswith(message)
    # Same for an unknown model: bad input is an error, not an "unpriced" row.
    with pytest.raises(ValueError):
        cat.cost("no-such-model", **kwargs)


def test_whole_floats_and_none_optionals_are_accepted(cat: Catalogue) -> None:
    a = cat.cost(
        "gpt-4o",
        input_tokens=100.0,
        output_tokens=10,
        cache_read_tokens=None,
        reasoning_tokens=None,
    )
    b = cat.cost("gpt-4o", input_tokens=100, output_tokens=10)
    assert a.total_usd == b.total_usd


# ----------------------------------------------------------------------------- resolution
@pytest.mark.parametrize(
    ("model", "provider", "key"),
    [
        ("gpt-4o-mini", None, "gpt-4o-mini"),
        ("openai/gpt-4o-mini", None, "gpt-4o-mini"),
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("GPT-4o-Mini", None, "gpt-4o-mini"),
        ("gpt-4o", "azure", "azure/gpt-4o"),
        ("azure/gpt-4o", None, "azure/gpt-4o"),
        ("gpt-4o-2024-08-06", None, "gpt-4o-2024-08-06"),
        ("gpt-4o-2031-01-01", None, "gpt-4o"),
        ("claude-sonnet-4-5-20250929", None, "claude-sonnet-4-5-20250929"),
        ("anthropic/claude-sonnet-4-5", None, "claude-sonnet-4-5"),
        (
            "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
            None,
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (
            "bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            None,
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        ("vertex_ai/gemini-2.5-pro", None, "gemini-2.5-pro"),
        ("gemini-2.5-pro", "vertex_ai", "gemini-2.5-pro"),
    ],
)
def test_resolution(cat: Catalogue, model: str, provider: str | None, key: str) -> None:
    assert cat.resolve(model, provider) == (key, None)


def test_bedrock_cross_region_falls_back_to_base_id(cat: Catalogue) -> None:
    base = "anthropic.claude-3-7-sonnet-20250219-v1:0"
    assert base in cat
    name = "ca." + base  # a geo prefix without its own entry
    assert name not in cat
    assert cat.resolve("bedrock/" + name) == (base, None)


def test_price_key_is_tried_first(cat: Catalogue) -> None:
    c = cat.cost("my-router-name", input_tokens=10, output_tokens=1, price_key="gpt-4o-mini")
    assert c.price_key == "gpt-4o-mini" and c.total_usd is not None
    d = cat.cost("gpt-4o", input_tokens=10, output_tokens=1, price_key="not-a-key")
    assert d.price_key == "gpt-4o"


def test_module_level_api_uses_shared_catalogue() -> None:
    pricing.set_catalogue(None)
    try:
        assert resolve("openai/gpt-4o-mini") == ("gpt-4o-mini", None)
        assert pricing.catalogue() is pricing.catalogue()
        assert cost(
            "gpt-4o-mini", input_tokens=1200, output_tokens=300, cache_read_tokens=1024
        ).total_usd == pytest.approx(2.832e-4)
    finally:
        pricing.set_catalogue(None)


def test_env_var_overrides_shared_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMTOP_PRICES", str(FIX / "good.toml"))
    pricing.set_catalogue(None)
    try:
        assert "+overrides-" in pricing.catalogue().version
        assert resolve("prod-chat") == ("gpt-4o-mini", None)
    finally:
        pricing.set_catalogue(None)


def test_load_is_fast_enough_to_not_need_caching_on_disk(cat: Catalogue) -> None:
    # No wall-clock assertion: the benchmark reports timings. Here: the catalogue is complete.
    assert len(cat) > 1500 and "sample_spec" not in cat and "fallback_generalizations" not in cat


# ----------------------------------------------------------------------------- overrides
def test_override_custom_model(ocat: Catalogue) -> None:
    c = ocat.cost(
        "my-llama-70b", input_tokens=1_000_000, output_tokens=1_000_000, cache_read_tokens=500_000
    )
    assert c.total_usd == pytest.approx(0.30 + 0.03 + 0.80)
    assert c.price_key == "my-llama-70b"


def test_override_discount(ocat: Catalogue, cat: Catalogue) -> None:
    kw = dict(input_tokens=1000, output_tokens=100, cache_read_tokens=500)
    assert ocat.cost("gpt-4o", **kw).total_usd == pytest.approx(
        cat.cost("gpt-4o", **kw).total_usd * 0.85
    )
    assert "override discount 15% applied" in ocat.cost("gpt-4o", **kw).notes
    assert ocat.cost("gpt-4o", batch=True, **kw).total_usd == pytest.approx(
        cat.cost("gpt-4o", batch=True, **kw).total_usd * 0.85
    )


def test_override_wins_and_alias(ocat: Catalogue) -> None:
    c = ocat.cost("gpt-4o-mini", input_tokens=0, output_tokens=1000)
    assert c.total_usd == pytest.approx(1000 * 1e-6)
    assert ocat.resolve("prod-chat") == ("gpt-4o-mini", None)
    assert ocat.cost("prod-chat", input_tokens=0, output_tokens=1000).total_usd == c.total_usd
    assert ocat.resolve("house-llama") == ("my-llama-70b", None)


def test_version_changes_with_file(tmp_path: Path, cat: Catalogue) -> None:
    p = tmp_path / "prices.toml"
    shutil.copy(FIX / "good.toml", p)
    v1 = load_catalogue(p).version
    date = time.strftime("%Y-%m-%d", time.gmtime(os.stat(p).st_mtime))
    assert v1.startswith(cat.version + "+overrides-") and v1.endswith("-" + date)
    p.write_text(p.read_text() + '\n[models."another"]\ninput_per_mtok = 1\noutput_per_mtok = 1\n')
    v2 = load_catalogue(p).version
    assert v2 != v1 and len(v2.split("-overrides-")[0]) > 0
    assert load_catalogue(p).cost("another", input_tokens=1, output_tokens=0).version == v2


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad_syntax.toml", "bad_syntax.toml:3: TOML syntax error: "),
        (
            "bad_type.toml",
            "bad_type.toml:8: models.\"x\".input_per_mtok: expected a number ≥ 0, got 'abc'",
        ),
        ("unknown_key.toml", 'unknown_key.toml:3: models."gpt-4o".input_per_mtoken: unknown key'),
        (
            "negative.toml",
            'negative.toml:2: models."gpt-4o".cache_read_per_mtok: expected a number ≥ 0, got -1',
        ),
        (
            "bad_alias.toml",
            "bad_alias.toml:7: aliases.\"broken\": alias target 'no-such-model-anywhere' is not a known model",
        ),
    ],
)
def test_malformed_override_files(name: str, message: str) -> None:
    with pytest.raises(PricingError) as exc:
        load_catalogue(FIX / name)
    text = str(exc.value)
    assert text.startswith(str(FIX / name) + ":"), text
    assert (
        (str(FIX.parent / "pricing") + "/" + message) in text
        or text.endswith(message)
        or message in text
    ), text


def test_override_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match="cannot read override file"):
        load_catalogue(tmp_path / "nope.toml")


def test_new_model_needs_prices(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text('[models."new-one"]\ndiscount = 0.1\n')
    with pytest.raises(
        PricingError, match=r"p\.toml:1: models\.\"new-one\": new model needs input_per_mtok"
    ):
        load_catalogue(p)
    # One price of two: its output was priced at $0 and the check said ok.
    p.write_text('[models."new-one"]\ninput_per_mtok = 1.0\n')
    with pytest.raises(PricingError, match=r"new model needs input_per_mtok and output_per_mtok"):
        load_catalogue(p)
    p.write_text('[models."new-embed"]\nmode = "embedding"\ninput_per_mtok = 0.02\n')
    assert load_catalogue(p).entry("new-embed") is not None  # nothing to output


def test_bad_discount_and_section(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text('[models."gpt-4o"]\ndiscount = 1.5\n')
    with pytest.raises(
        PricingError, match=r"p\.toml:2: models\.\"gpt-4o\"\.discount: expected a fraction"
    ):
        load_catalogue(p)
    p.write_text('[model."gpt-4o"]\ndiscount = 0.1\n')
    with pytest.raises(PricingError, match=r"p\.toml:1: model: unknown section"):
        load_catalogue(p)


# ----------------------------------------------------------------------------- CLI
def test_cli_lookup(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openai/gpt-4o-mini"]) == 0
    out = capsys.readouterr().out
    assert "key:       gpt-4o-mini" in out
    assert "provider:  openai" in out and "mode:      chat" in out
    assert "input" in out and "$0.15 / 1M tokens" in out and "$0.6 / 1M tokens" in out
    assert "catalogue: litellm-" in out


def test_cli_unresolved_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["my-deployment", "--provider", "azure"]) == 1
    assert "unpriced:  unknown model 'my-deployment' (provider 'azure')" in capsys.readouterr().out


def test_cli_with_prices_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prod-chat", "--prices", str(FIX / "good.toml")]) == 0
    out = capsys.readouterr().out
    assert "key:       gpt-4o-mini (alias of gpt-4o-mini)" in out and "+overrides-" in out
    assert main(["gpt-4o", "--prices", str(FIX / "good.toml")]) == 0
    assert "15% off" in capsys.readouterr().out


def test_cli_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", str(FIX / "good.toml")]) == 0
    assert capsys.readouterr().out.startswith("ok: 3 models, 2 aliases")
    assert main(["--check", str(FIX / "bad_type.toml")]) == 2
    err = capsys.readouterr().err
    assert "bad_type.toml:8: models.\"x\".input_per_mtok: expected a number ≥ 0, got 'abc'" in err


def test_cli_needs_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "give a MODEL" in capsys.readouterr().err
