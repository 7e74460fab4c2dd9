"""Peak memory of the running process, for the benchmarks that report it (tui.py, latency.py).

Its own module, with no llmtop import, so a benchmark's child measuring the TUI loads nothing
more than the TUI does.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak RSS.

    On Linux ru_maxrss survives execve, so a child started by a parent that just built a database
    would report the *parent's* peak; VmHWM belongs to the new address space and does not.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    # Linux reports KiB, macOS bytes.
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024
