"""The LiteLLM `CustomLogger` shell around CollectorCore.

All four hooks only capture and enqueue (see core.py): LiteLLM runs failure hooks inline before
the exception reaches the caller and async success hooks on the caller's event loop, so anything
slower would be paid for by the host app on every call and every Router retry.
"""

from __future__ import annotations

import os
from typing import Any

from litellm.integrations.custom_logger import CustomLogger
from llmtop.collector.core import CollectorCore
from llmtop.collector.registry import install_sigterm_flush
from llmtop.store.db import resolve_db_path


class Collector(CustomLogger):
    """Register once: ``litellm.callbacks = [Collector()]`` (or ``Collector(db="path.db")``)."""

    def __init__(self, db: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A database this collector cannot write (a postgresql:// URL) is refused here, at
        # configuration time, with one line, rather than lost silently later.
        resolve_db_path(db)
        # Private attribute: LiteLLM de-duplicates callbacks by their public attributes, and two
        # collectors for two databases must not be mistaken for one.
        self._core = CollectorCore(db)
        self.llmtop_db = str(db) if db is not None else "default"
        # A plain script or a container stop must not lose the last batch (see writer.py).
        install_sigterm_flush()

    @property
    def core(self) -> CollectorCore:
        return self._core

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event seen so far is in the database (tests, scripts, shutdown)."""
        return self._core.flush(timeout)

    def log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
        self._core.log(kwargs, response_obj, start_time, end_time, False)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
        self._core.log(kwargs, response_obj, start_time, end_time, True)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
        self._core.log(kwargs, response_obj, start_time, end_time, False)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
        self._core.log(kwargs, response_obj, start_time, end_time, True)

    async def async_post_call_failure_hook(  # noqa: ANN201
        self,
        request_data: dict,
        original_exception: Exception,
        user_api_key_dict: Any,
        traceback_str: str | None = None,
    ):
        """Proxy only: a request that failed for good, after retries nobody logged.

        The proxy fires a failure event for a request's first failed attempt only; the Router's
        final exception says how many retries followed (`num_retries`). Returns None: the
        proxy's error response is left exactly as it was.
        """
        self._core.failed_request(request_data, original_exception)
        return None
