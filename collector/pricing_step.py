"""Our price on a record, on the writer thread: a row's cost is never guessed."""

from __future__ import annotations

from llmtop.collector.mapping import MAX_CALL_USD
from llmtop.pricing import catalogue
from llmtop.store.records import CallRecord


def price_record(rec: CallRecord) -> None:
    """Fill our cost from llmtop.pricing; a row's cost is never guessed."""
    cat = catalogue()
    rec.price_version = cat.version
    if rec.unmetered:
        return
    if rec.status == "failure" and rec.input_tokens == 0 and rec.output_tokens == 0:
        rec.cost_usd = rec.input_usd = rec.output_usd = 0.0
        rec.cache_read_usd = rec.cache_write_usd = 0.0
        return
    if rec.invalid and "tokens out of range" in rec.invalid:
        # The bad count was stored as 0: priced, the row would carry part of its cost as all of
        # it. Not priced, it is counted with the unpriced (and the invalid) rows instead.
        rec.unpriced = True
        rec.unpriced_reason = "token count out of range"
        return
    c = cat.cost(
        rec.model or "",
        input_tokens=rec.input_tokens,
        output_tokens=rec.output_tokens,
        cache_read_tokens=rec.cache_read_tokens,
        cache_write_tokens=rec.cache_write_tokens,
        reasoning_tokens=min(rec.reasoning_tokens, rec.output_tokens),
        audio_input_tokens=min(rec.audio_input_tokens, rec.input_tokens),
        audio_output_tokens=min(rec.audio_output_tokens, rec.output_tokens),
        batch=rec.batch,
        service_tier=rec.service_tier,
        provider=rec.provider,
        price_key=rec.price_key,
    )
    if c.total_usd is None:
        rec.unpriced = True
        rec.unpriced_reason = c.reason
        if rec.litellm_cost_usd == 0.0 and (rec.input_tokens or rec.output_tokens):
            # Neither we nor LiteLLM know this model: its 0.0 (the proxy fills missing prices
            # with zeros) means "not priced", not "free".
            rec.litellm_cost_usd = None
        return
    if c.price_key:
        rec.price_key = c.price_key
    if rec.cache_hit:
        # LiteLLM's response cache answered: nothing was billed, the replayed usage was saved.
        if rec.saved_usd is None:
            rec.saved_usd = c.total_usd
        rec.cost_usd = rec.input_usd = rec.output_usd = 0.0
        rec.cache_read_usd = rec.cache_write_usd = 0.0
        return
    if not 0.0 <= c.total_usd <= MAX_CALL_USD:
        # Token counts within range can still price absurdly (a mistyped usage): not believed.
        rec.invalid = "; ".join(filter(None, (rec.invalid, "cost above per-call ceiling")))
        return
    rec.cost_usd = c.total_usd
    rec.input_usd = c.input_usd + (c.audio_usd or 0.0) if c.input_usd is not None else None
    rec.cache_read_usd = c.cache_read_usd
    rec.cache_write_usd = c.cache_write_usd
    rec.output_usd = c.output_usd
