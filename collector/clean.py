"""Tag text as llmtop stores it: short, printable, single-line, valid UTF-8.

Every tag value and id from a payload passes through here on the writer thread; the same few
strings recur on almost every row, so the cleaning is memoised.
"""

from __future__ import annotations

import logging
import math
import os
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from llmtop.store.records import SURROGATE

MAX_TAG_VALUE = 200
MAX_TAG_KEY = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_KEY_OK = re.compile(r"[^A-Za-z0-9_.\-]")
_KEY_ALNUM = re.compile(r"[A-Za-z0-9]")
log = logging.getLogger("llmtop.collector")


# The same few strings (models, providers, tag values) recur on almost every row: memoising the
# cleaning (bounded, writer-thread only) roughly halves the mapping cost per row.
_MAX_MEMO = 50_000


class _Memo(dict):  # type: ignore[type-arg]
    """`clean(text)` by text, looked up in one C-level subscript; bounded (cleared when full).

    Callers look up exact `str` keys (and None) only: 1, 1.0 and True are equal dict keys but
    clean to different text, and so are a `(str, Enum)` member and its value.
    """

    def __init__(self, clean: Callable[[Any], str | None]) -> None:
        super().__init__({None: None})
        self._clean = clean

    def __missing__(self, text: Any) -> str | None:
        out = self._clean(text)
        if len(self) >= _MAX_MEMO:
            self.clear()
            self[None] = None
        self[text] = out
        return out


def _clean_value(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, tuple, set, bytes)):
        return None
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        text = str(value)
    except Exception:  # a hostile __str__ is not a tag
        return None
    if type(text) is not str:
        return None
    s = _CONTROL.sub("", text).strip()
    if not s:
        return None
    s = s[:MAX_TAG_VALUE]
    if not s.isascii():
        # Lone surrogates (what os.fsdecode or a badly decoded header gives) cannot be encoded
        # as UTF-8: one in a batch used to fail every later write. Each becomes U+FFFD.
        s = SURROGATE.sub("\ufffd", s)
    return s


def _clean_key(key: str) -> str | None:
    # Keys are ASCII identifiers everywhere they are typed (filters, rules, group_by). Accents
    # fold to their letter (équipe -> equipe); a key left with no letter or digit (チーム -> ___)
    # is no key: every such key would collapse into the same `___`.
    key = key.strip()
    if not key.isascii():
        key = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode()
        if not _KEY_ALNUM.search(key):
            return None
    return _KEY_OK.sub("_", key)[:MAX_TAG_KEY] or None


_value_memo = _Memo(_clean_value)
_key_memo = _Memo(_clean_key)


def clean_value(value: Any) -> str | None:
    """Tag values are short, printable, single-line text; anything else is not a tag."""
    if type(value) is str or value is None:
        return _value_memo[value]
    # Not memoised: a str subclass (a `(str, Enum)` member) would hit its equal plain string's
    # entry, though its text is its own.
    return _clean_value(value)


def clean_id(value: Any) -> str | None:
    """clean_value for ids, unique per call: checked in place rather than memoised."""
    if type(value) is str and len(value) <= MAX_TAG_VALUE and value.isascii():
        if value.isprintable():  # ASCII printable: no control characters to remove
            return value.strip() or None
    return _clean_value(value)


def clean_key(key: Any) -> str | None:
    """Tag keys are short identifiers; other characters become `_`."""
    if type(key) is str:
        return _key_memo[key]
    return _clean_key(key) if isinstance(key, str) else None


def parse_tag_string(spec: str) -> tuple[dict[str, str], list[str]]:
    """`team=search,environment=prod` (LLMTOP_TAGS) into a dict, and the parts it could not use
    (each skipped, never fatal: this runs inside the host app)."""
    out: dict[str, str] = {}
    bad: list[str] = []
    for part in spec.split(","):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        ck, cv = clean_key(k), clean_value(v)
        if not sep:
            bad.append(f"{part.strip()!r}: not key=value")
        elif not ck:
            bad.append(f"{part.strip()!r}: no key")
        elif ck != k.strip():  # `team:search;environment=prod` is one part, not two
            bad.append(f"{part.strip()!r}: a key is letters, digits, _ . -")
        elif not cv:
            bad.append(f"{part.strip()!r}: no value")
        else:
            out[ck] = cv
    return out, bad


_env_cache: tuple[str, dict[str, str]] | None = None


def env_tags() -> dict[str, str]:
    """LLMTOP_TAGS, parsed once per distinct value; what it could not use is logged once."""
    global _env_cache
    spec = os.environ.get("LLMTOP_TAGS", "")
    if _env_cache is None or _env_cache[0] != spec:
        tags, bad = parse_tag_string(spec)
        if bad:
            log.warning(
                "llmtop: LLMTOP_TAGS: %s (skipped; the form is key=value,key=value)",
                "; ".join(bad),
            )
        _env_cache = (spec, tags)
    return _env_cache[1]
