"""Pricing for LLM requests: LiteLLM's bundled price map, local overrides, fast ``cost()``.

This package must stay import-light: it never imports litellm (seconds to import) or any
other llmtop package, so the collector and the dashboard can price rows cheaply.

    >>> from llmtop.pricing import cost
    >>> cost("gpt-4o-mini", input_tokens=1200, output_tokens=300, cache_read_tokens=1024).total_usd
    0.0002832
"""

from llmtop.pricing.catalogue import Catalogue
from llmtop.pricing.costs import Cost, PricingError
from llmtop.pricing.loading import (
    cache_read_saving,
    catalogue,
    cost,
    load_catalogue,
    resolve,
    set_catalogue,
    use_overrides,
)

__all__ = [
    "Catalogue",
    "Cost",
    "PricingError",
    "cache_read_saving",
    "catalogue",
    "cost",
    "load_catalogue",
    "resolve",
    "set_catalogue",
    "use_overrides",
]
