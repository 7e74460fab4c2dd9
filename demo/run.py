"""`python -m llmtop.demo.run`: the live simulator alone, as `llmtop demo` starts it.

A module of its own so the dashboard can run it in a child process (see demo/cli.py): same
flags as `llmtop demo`, always headless.
"""

from __future__ import annotations

import sys

from llmtop.demo.cli import main


def run(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--no-tui" not in args:
        args.insert(0, "--no-tui")
    return main(args)


if __name__ == "__main__":
    sys.exit(run())
