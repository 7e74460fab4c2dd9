"""The LiteLLM `CustomLogger` shell around CollectorCore.

All four hooks only capture and enqueue (see core.py): LiteLLM runs failure hooks inline before
the exception reaches the caller and async success hooks on the caller's event loop, so anything
slower would be paid for by the host app on every call and every Router retry.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from litellm.integrations.custom_logger import CustomLogger
from llmtop.collector.core import CollectorCore
from llmtop.collector.registry import install_sigterm_flush
from llmtop.store.db import DatabaseError, resolve_db_path

log = logging.getLogger("llmtop.collector")


class Unrecorded:
    """The collector's core when its database can never be written (`LLMTOP_DB=mysql://...`):
    the app must start and run all the same; each call is counted here, not raised."""

    def __init__(self, why: str) -> None:
        self.why = why
        self.lost = 0

    def log(self, *_args: Any) -> None:
        self.lost += 1

    def failed_request(self, *_args: Any) -> None:
        self.lost += 1

    def flush(self, timeout: float = 5.0) -> bool:
        return False


class Collector(CustomLogger):
    """Register once: ``litellm.callbacks = [Collector()]`` (or ``Collector(db="path.db")``)."""

    def __init__(self, db: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llmtop_db = str(db) if db is not None else "default"
        # A database no llmtop can write (a mysql:// URL) is said here, at configuration time,
        # in one error line, rather than lost silently later; the app starts all the same.
        # Private attribute: LiteLLM de-duplicates callbacks by their public attributes, and two
        # collectors for two databases must not be mistaken for one.
        self._core: CollectorCore | Unrecorded
        try:
            resolve_db_path(db)
        except DatabaseError as exc:
            log.error("llmtop: %s; no call will be recorded", exc)
            self._core = Unrecorded(str(exc))
            return
        self._core = CollectorCore(db)
        # A plain script or a container stop must not lose the last batch (see writer.py).
        install_sigterm_flush()

    @property
    def core(self) -> CollectorCore | Unrecorded:
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
