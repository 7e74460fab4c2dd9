"""llmtop.collector: a LiteLLM callback that turns every call into one priced, tagged SQLite row.

Register it with one line: ``litellm.callbacks = [Collector()]``.

Importing this package sets LiteLLM's offline switches (unless the user chose otherwise) before
anything can import litellm, so a collector never makes the host app fetch a price map at start-up.
`Collector` itself is loaded lazily: the demo and the writer use this package without paying for
`import litellm`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

from llmtop.collector.core import CollectorCore  # noqa: E402
from llmtop.collector.registry import get_writer  # noqa: E402
from llmtop.collector.writer import Writer  # noqa: E402

if TYPE_CHECKING:
    from llmtop.collector.callback import Collector
    from llmtop.collector.outcomes import record_outcome

__all__ = ["Collector", "CollectorCore", "Writer", "get_writer", "record_outcome"]


def __getattr__(name: str) -> Any:
    if name == "Collector":
        from llmtop.collector.callback import Collector

        return Collector
    if name == "record_outcome":  # a task's outcome (collector/outcomes.py)
        from llmtop.collector.outcomes import record_outcome

        return record_outcome
    raise AttributeError(name)
