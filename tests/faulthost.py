"""A host app for the collector's fault tests: a real process making real litellm calls.

Run as `python tests/faulthost.py DB N [N2]`: makes N calls through the Collector, waits until
LiteLLM handed every one to the callback (a second callback counts them), flushes, prints
`ready <written> <dropped>` and waits for a line on stdin. With N2, it then makes N2 more calls,
flushes and prints `done <written> <dropped> <flush-ok> <last-error>`, and exits 0: a test breaks
the database between the two phases and checks that the host survives and counts what it could
not write. Without N2 it sleeps after `ready` until killed (the SIGTERM test).
"""

from __future__ import annotations

import os
import sys
import threading
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
import litellm  # noqa: E402
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402
from llmtop.collector import Collector  # noqa: E402


class Counter(CustomLogger):
    """Registered after the collector: when it has seen a call, so has the collector."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0
        self.lock = threading.Lock()

    def log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
        with self.lock:
            self.n += 1


def calls(n: int, counter: Counter) -> None:
    target = counter.n + n
    for i in range(n):
        litellm.completion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            mock_response="hi",
            metadata={"feature": "fault", "customer": f"c{i % 7}"},
        )
    deadline = time.monotonic() + 60
    while counter.n < target and time.monotonic() < deadline:
        time.sleep(0.01)


def main() -> int:
    db, n = sys.argv[1], int(sys.argv[2])
    c = Collector(db=db)
    counter = Counter()
    litellm.callbacks = [c, counter]
    w = c.core.writer
    calls(n, counter)
    if len(sys.argv) == 3:
        print(f"ready {counter.n}", flush=True)
        while True:
            time.sleep(1)
    c.flush(10)
    print(f"ready {w.written} {w.dropped}", flush=True)
    sys.stdin.readline()
    calls(int(sys.argv[3]), counter)
    ok = c.flush(3)
    print(f"done {w.written} {w.dropped} {ok} {w.last_error}", flush=True)
    sys.stdin.readline()
    ok = c.flush(10)
    print(f"end {w.written} {w.dropped} {ok} {w.last_error}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
