"""The part of the collector that does not need litellm: capture on the hot path, then hand off.

`CollectorCore.log` is all the caller's thread ever runs: it copies the few references it needs
out of LiteLLM's kwargs and appends them to the writer's queue. Mapping, pricing and SQL happen on
the writer thread, so a slow disk or a malformed payload never costs the host app time or an
exception.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from llmtop.collector.attempts import HiddenAttempts
from llmtop.collector.mapping import Captured, cause_name
from llmtop.collector.registry import get_writer
from llmtop.collector.writer import Writer

log = logging.getLogger("llmtop.collector")


class CollectorCore:
    def __init__(self, db: str | os.PathLike[str] | None = None, *, writer: Writer | None = None):
        self._db = db
        self._writer = writer

    @property
    def writer(self) -> Writer:
        # Resolved lazily so a module-level instance (the proxy's) picks up LLMTOP_DB set later,
        # and a forked worker gets its own writer.
        w = self._writer
        if w is None or w.pid != os.getpid():
            w = self._writer = get_writer(self._db)
        return w

    def log(
        self,
        kwargs: Any,
        response_obj: Any,
        start_time: Any,
        end_time: Any,
        failed: bool,
    ) -> None:
        """Capture and enqueue; never raises."""
        try:
            get = kwargs.get
            lp = get("litellm_params") or {}
            md = lp.get("metadata")
            op = get("optional_params")
            exc = get("exception") if failed else None
            cap = Captured(
                get("standard_logging_object"),
                dict(md) if md else None,
                op.get("user") if op else None,
                get("response_cost"),
                type(exc).__name__ if exc is not None else None,
                getattr(exc, "status_code", None) if exc is not None else None,
                get("model"),
                start_time,
                end_time,
                failed,
                get("stream"),
                cause_name(exc) if exc is not None else None,
            )
        except Exception:  # a malformed payload is counted, never raised into the app
            w = self._writer_or_none()
            if w is not None:
                w.drop(1, "malformed payload")
            return
        w = self._writer_or_none()
        if w is None:
            return
        try:
            w.submit(cap)
        except Exception:  # the writer thread cannot start (a pids limit, interpreter shutdown)
            w.drop(1, "writer thread could not start")

    def _writer_or_none(self) -> Writer | None:
        try:
            return self.writer
        except Exception:  # LLMTOP_DB changed to something unusable after start-up
            return None

    def failed_request(self, request_data: Any, exc: Any) -> None:
        """A proxy request that failed after its retries: enqueue the attempts it hid; never
        raises.

        The Router's own count of what it did comes first (`attempted_retries` in the request's
        metadata). An exception's `num_retries` alone is not proof: the Router stamps the
        configured value on every exception, a 400 raised at once included; only with
        `max_retries` also set did its retry loop run.
        """
        try:
            md = request_data.get("metadata") if isinstance(request_data, dict) else None
            n = md.get("attempted_retries") if isinstance(md, dict) else None
            if type(n) is not int:
                n = getattr(exc, "num_retries", None)
                if type(getattr(exc, "max_retries", None)) is not int:
                    n = None
            if type(n) is not int or n <= 0:
                return
            slo = request_data.get("standard_logging_object")
            tid = slo.get("trace_id") if isinstance(slo, dict) else None
            if type(tid) is str and tid:
                self.writer.submit(HiddenAttempts(tid, n))
        except Exception:
            return

    def flush(self, timeout: float = 5.0) -> bool:
        return self.writer.flush(timeout)
