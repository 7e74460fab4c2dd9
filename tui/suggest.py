"""Completion in the `/` filter prompt: dimension names, then the values the key takes.

Textual's Input shows the suggestion greyed after the cursor and `right` accepts it. Keys come
from the snapshot (built-in dimensions and the extra tags seen); values are read once per key
per prompt in a thread (`values`), biggest spenders first.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence

from llmtop.store.filters import format_value
from textual.suggester import Suggester

_TERM = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\-]*)(!=|!~|=|~)(.*)$", re.S)


class FilterSuggester(Suggester):
    def __init__(self, keys: Sequence[str], values: Callable[[str], list[str]]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.keys = list(keys)
        self.values = values
        self._values: dict[str, list[str]] = {}

    async def values_of(self, key: str) -> list[str]:
        if key not in self._values:
            try:
                self._values[key] = await asyncio.to_thread(self.values, key)
            except Exception:  # a failed read only means no completion
                self._values[key] = []
        return self._values[key]

    async def get_suggestion(self, value: str) -> str | None:
        if not value or value[-1].isspace() or value.count('"') % 2 or value.count("'") % 2:
            return None
        last = value.split()[-1]
        m = _TERM.match(last)
        if m is None:
            for k in self.keys:
                if k.startswith(last) and k != last:
                    return value + k[len(last) :] + "="
            return None
        key, _op, typed = m.groups()
        if key not in self.keys:
            return None
        for v in await self.values_of(key):
            shown = format_value(v) if v != "(none)" else v
            if shown.startswith(typed) and shown != typed:
                return value + shown[len(typed) :]
        return None
