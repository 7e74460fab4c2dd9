"""Four writer processes × 5,000 calls each into one new file: the full-size race.

Usage: python benchmarks/multiprocess_writers.py

Why here and not in the default suite: on 2 cores it takes about two minutes, most of the suite's
budget, while the 4 × 500 variant (tests/test_collector_robust.py) exercises the same races (file
creation, migrations, lock waits) in seconds. This runs the full-size test, which is marked
`slow` (deselected by default), and reports its wall time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/test_collector_robust.py::test_four_processes_5000_calls_each_one_file"


def main() -> int:
    t0 = time.perf_counter()
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-m", "slow", TEST], cwd=ROOT)
    print(
        f"4 processes x 5,000 calls into one file: {'passed' if rc == 0 else 'FAILED'}"
        f" in {time.perf_counter() - t0:.1f} s (pytest start-up included)"
    )
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
