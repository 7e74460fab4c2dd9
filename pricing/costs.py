"""What a price is and which token counts are valid: `Cost`, `PricingError`, count checks.

Apart from catalogue.py so the catalogue holds one job (resolving names and pricing usage); the
slow paths here only run when `cost()`'s fast `type(x) is int` checks fail.
"""

from __future__ import annotations

import math
import operator
from typing import Any, NamedTuple


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


new_cost = tuple.__new__


def as_count(name: str, value: Any, required: bool) -> int:
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


COUNT_NAMES = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)


def raise_inconsistent(it: int, ot: int, cr: int, cw: int, rt: int, ai: int, ao: int) -> None:
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
