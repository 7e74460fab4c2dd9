"""`record_outcome(correlation_id, success, **tags)`: the app says whether a task succeeded.

Calls that share a correlation_id are one task (store/outcomes.py); this records its outcome so
the report can show cost per *successful* task. Why not through the Writer: an outcome is one
row per task, not per call, and it carries no price; a short direct transaction
(store.outcomes.write_outcome) keeps the writer's batching, repair and sidecar machinery
untouched. The cost is that this write runs in the caller's thread and, unlike call rows, not in
the sidecar process; it is one INSERT, and like every collector entry point it never raises
into the host app: a failure is logged once to stderr and reported as False.

Behind a LiteLLM proxy, where the app cannot call this, tag the task's final call instead:
metadata `{"llmtop": {"outcome": "success"}}` (or `failure`), or the request tag
`outcome:success`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from llmtop.collector.clean import clean_key, clean_value
from llmtop.store.db import resolve_db_path
from llmtop.store.outcomes import write_outcome

_warned: set[str] = set()


def record_outcome(
    correlation_id: str, success: bool, *, db: str | os.PathLike[str] | None = None, **tags: Any
) -> bool:
    """Record whether the task `correlation_id` succeeded; True when it was written.

    `tags` (e.g. reason="timeout") are kept with the outcome. `db`: the database file (default:
    $LLMTOP_DB or the per-user one, as for the Collector).
    """
    try:
        cid = clean_value(correlation_id)
        if cid is None:
            raise ValueError(f"correlation_id must be a non-empty string, got {correlation_id!r}")
        if not isinstance(success, bool):
            raise ValueError(f"success must be True or False, got {success!r}")
        clean = {}
        for k, v in tags.items():
            ck, cv = clean_key(k), clean_value(v)
            if ck and cv is not None:
                clean[ck] = cv
        write_outcome(resolve_db_path(db), cid, success, clean)
        return True
    except Exception as exc:  # the host app never sees our exceptions
        msg = f"llmtop: record_outcome: {type(exc).__name__}: {exc}"
        if msg not in _warned:
            _warned.add(msg)
            print(msg, file=sys.stderr)
        return False
