"""The command-line parser every llmtop command uses: a bad argument is one line.

Why not argparse's own error: it prints the whole usage block and then the error, and a user
(or a cron mail) has to find the line that matters. Here the error is the one line `llmtop CMD:
problem` (`--help` still shows the usage), with each command's exit code for bad input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, error_code: int = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error_code = error_code

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(self.error_code)
