"""Attempt numbers within a request, and the attempts LiteLLM proxy never logged.

The writer thread keeps one `Attempts` per writer: a bounded memory of the traces it has seen
(how many rows each, and the first failure's record), so it can number retries in arrival
order and write the rows of attempts that fired no event (see `Attempts.hidden`).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import NamedTuple

from llmtop.store.records import CallRecord

#: Traces remembered (least recently seen forgotten first).
TRACE_MEMORY = 50_000
#: More hidden attempts than this for one request is not a retry count anyone configured.
MAX_HIDDEN = 20


class HiddenAttempts(NamedTuple):
    """A request that failed after `attempts` retries nobody logged (from the proxy's hook)."""

    trace_id: str
    attempts: int


class Attempts:
    def __init__(self) -> None:
        self._traces: OrderedDict[str, tuple[int, CallRecord | None]] = OrderedDict()

    def number(self, rec: CallRecord) -> None:
        """Attempts of one request share a trace id; number them in arrival order."""
        tid = rec.trace_id
        if not tid:
            return
        seen, first = self._traces.get(tid, (0, None))
        seen += 1
        # Only a first *failure* is kept as the template of hidden attempts (they are failures
        # like it); keeping every first row would hold tens of MB of records.
        if seen == 1 and rec.status == "failure":
            first = rec
        self._traces[tid] = (seen, first)
        self._traces.move_to_end(tid)
        if len(self._traces) > TRACE_MEMORY:
            self._traces.popitem(last=False)
        if seen > rec.attempt:
            rec.attempt = seen
            if not rec.is_fallback:
                rec.is_retry = True

    def hidden(self, tid: str | None, before: int, last: CallRecord | None) -> list[CallRecord]:
        """Rows for attempts of a request that fired no event of their own.

        LiteLLM proxy logs only the first failed attempt of a request, then the final success
        (whose metadata says how many retries it took) or nothing (a request that failed after
        all its retries: `Collector.async_post_call_failure_hook` reports those). So a 429 storm
        behind a proxy used to show one row per request and "retries 0%". Each attempt that
        happened but was not logged becomes a failure row like the request's first one, marked
        with the extra tag `inferred=hidden attempt`: the retry panel, "$ on retries" and the
        rate alerts then count what the provider saw. `before`: attempts made before the last
        one logged (or, with `last` None, after the first, for a request that failed).
        """
        if not tid:
            return []
        seen, first = self._traces.get(tid, (0, None))
        logged_before = seen - 1 if last is not None else seen
        missing = before - logged_before if last is not None else before + 1 - seen
        if missing <= 0 or missing > MAX_HIDDEN:
            return []
        template = first if first is not None and first is not last else last
        if template is None:
            return []
        out = []
        for k in range(missing):
            r = dataclasses.replace(
                template,
                status="failure",
                attempt=seen + k + (0 if last is not None else 1),
                is_retry=seen + k + (0 if last is not None else 1) > 1,
                is_fallback=False,
                input_tokens=0,
                output_tokens=0,
                cache_read_tokens=0,
                cache_write_tokens=0,
                reasoning_tokens=0,
                cost_usd=0.0,
                input_usd=0.0,
                output_usd=0.0,
                cache_read_usd=0.0,
                cache_write_usd=0.0,
                litellm_cost_usd=None,
                saved_usd=None,
                cache_hit=False,
                unmetered=False,
                litellm_call_id=None,
                ended_at=None,
                ttft_ms=None,
                extra_tags={**template.extra_tags, "inferred": "hidden attempt"},
            )
            if template.status != "failure":
                r.error_class = r.error_code = r.normalized_error = None
            out.append(r)
        self._traces[tid] = (seen + missing, first)
        if last is not None:
            last.attempt = max(last.attempt, seen + missing)
        return out
