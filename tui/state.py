"""Small UI preferences remembered between runs (the last grouping), never in the database."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def state_path() -> Path:
    env = os.environ.get("LLMTOP_STATE")
    if env:
        return Path(env)
    from platformdirs import user_state_dir

    return Path(user_state_dir("llmtop", appauthor=False)) / "ui.json"


def load() -> dict[str, Any]:
    try:
        data = json.loads(state_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save(**values: Any) -> None:
    try:
        p = state_path()
        p.parent.mkdir(parents=True, exist_ok=True)
        data = load()
        data.update(values)
        p.write_text(json.dumps(data))
    except OSError:
        pass  # a preference that cannot be saved is not worth an error
