"""Small UI preferences remembered between runs, per database, never in the database itself.

What is kept: the window, the grouping and the sort of the table (column and direction), under
the database's resolved path (several `--db` files: their paths together), so the dashboard of
one service does not open with another's grouping. The file lives in the user's state
directory (platformdirs: `$XDG_STATE_HOME/llmtop/ui.json`, `~/.local/state/llmtop/ui.json`) or
at `$LLMTOP_STATE`. A preference that cannot be read or saved is not worth an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The keys a database's entry may hold, and the type each must have to be used.
KEYS: dict[str, type] = {"window": str, "group_by": str, "sort": str, "reverse": bool}


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


def db_key(paths: Sequence[Path]) -> str:
    out = []
    for p in paths:
        try:
            out.append(str(Path(p).resolve()))
        except OSError:
            out.append(str(p))
    return "|".join(out)


def remembered(paths: Sequence[Path]) -> dict[str, Any]:
    """This database's preferences, only those of the right type."""
    entry = load().get("databases", {})
    entry = entry.get(db_key(paths), {}) if isinstance(entry, dict) else {}
    if not isinstance(entry, dict):
        return {}
    return {k: v for k, v in entry.items() if k in KEYS and isinstance(v, KEYS[k])}


def remember(paths: Sequence[Path], **values: Any) -> None:
    try:
        p = state_path()
        p.parent.mkdir(parents=True, exist_ok=True)
        data = load()
        dbs = data.get("databases")
        if not isinstance(dbs, dict):
            dbs = data["databases"] = {}
        entry = dbs.setdefault(db_key(paths), {})
        if not isinstance(entry, dict):
            entry = dbs[db_key(paths)] = {}
        entry.update(values)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(p)  # two dashboards saving at once never leave half a file
    except OSError:
        pass
