"""Where a row's tags come from: the call's metadata, the proxy's virtual key, request tags and
LLMTOP_TAGS, in that order of precedence (README: "Tags: where they come from")."""

from __future__ import annotations

import logging
from typing import Any

from llmtop.collector.clean import clean_key, clean_value
from llmtop.store.records import TAG_KEYS

MAX_EXTRA_TAGS = 32
log = logging.getLogger("llmtop.collector")
_overflow_logged = False
_TAG_SET = frozenset(TAG_KEYS)

#: Key user ids that name no person: LiteLLM proxy files master-key requests under these.
PLACEHOLDER_USERS = frozenset({"default_user_id", "litellm_proxy_admin_name", ""})

# Where the proxy's virtual key puts its owner fields (standard logging metadata).
PROXY_KEYS = (
    "requester_metadata",
    "user_api_key_team_alias",
    "team_alias",
    "user_api_key_team_id",
    "team_id",
    "user_api_key_user_id",
    "user_api_key_end_user_id",
    "user_api_key_org_alias",
    "user_api_key_org_id",
    "user_api_key_alias",
    "usage_object",
)
NO_PROXY = (None,) * len(PROXY_KEYS)


def _put(tags: dict[str, str], extra: dict[str, str], key: Any, value: Any, extras: bool) -> None:
    """First source to name a key wins; later sources only fill gaps."""
    if value is None:  # most proxy fields are present but empty
        return
    k = clean_key(key)
    if k is None:
        return
    if k in _TAG_SET:
        if k not in tags:
            v = clean_value(value)
            if v is not None:
                tags[k] = v
    elif extras and k not in extra:
        if len(extra) >= MAX_EXTRA_TAGS:
            _overflowed(k)
            return
        v = clean_value(value)
        if v is not None:
            extra[k] = v


def _overflowed(key: str) -> None:
    """Tags past the limit are dropped (the row is kept): said once per process, naming one."""
    global _overflow_logged
    if not _overflow_logged:
        _overflow_logged = True
        log.warning(
            "llmtop: a call carried more than %d extra tags; the rest (first: %r) are not stored",
            MAX_EXTRA_TAGS,
            key,
        )


def _put_dict(tags: dict[str, str], extra: dict[str, str], d: Any) -> None:
    if isinstance(d, dict):
        for k, v in d.items():
            _put(tags, extra, k, v, True)


def _put_known(tags: dict[str, str], d: dict[Any, Any]) -> None:
    # Only the exact tag names count at the top level of metadata (which also holds LiteLLM's
    # own keys); they need no key cleaning, and their order does not matter: one source.
    for k in _TAG_SET.intersection(d):
        if k not in tags and (v := d[k]) is not None and (v := clean_value(v)) is not None:
            tags[k] = v


def collect_tags(
    smd: dict[str, Any],
    proxy: tuple[Any, ...],
    md: dict[str, Any] | None,
    request_tags: Any,
    end_user: Any,
    env: dict[str, str],
) -> tuple[dict[str, str], dict[str, str]]:
    tags: dict[str, str] = {}
    extra: dict[str, str] = {}
    # 1. explicit metadata={"llmtop": {...}}, then 2. top-level metadata keys on the SDK call.
    if md:
        _put_dict(tags, extra, md.get("llmtop"))
        _put_known(tags, md)
    req, team_alias, team_alias2, team_id, team_id2, user_id, end_user_id, org, org_id, alias, _ = (
        proxy
    )
    # 3. proxy request metadata (the request body's `metadata`).
    if isinstance(req, dict):
        _put_dict(tags, extra, req.get("llmtop"))
        _put_known(tags, req)
    # 4. proxy key / team / org fields from the virtual key, and the request's user.
    if (v := team_alias or team_alias2) is not None:
        _put(tags, extra, "team", v, False)
    if (v := team_id or team_id2) is not None:
        _put(tags, extra, "team", v, False)
    # The request's own `user` (the proxy's end user) is the user; a virtual key's user id only
    # fills the gap, and never a placeholder identity (the master key's `default_user_id`), which
    # would file every request under one made-up user.
    for v in (end_user, end_user_id):
        if v is not None:
            _put(tags, extra, "user", v, False)
    if user_id is not None and user_id not in PLACEHOLDER_USERS:
        _put(tags, extra, "user", user_id, False)
    if (v := org or org_id) is not None:
        _put(tags, extra, "org", v, True)
    if alias is not None:
        _put(tags, extra, "api_key_alias", alias, True)
    # 5. request tags: "key:value" / "key=value" become tags, plain ones are kept as a list.
    if request_tags:
        plain: list[str] = []
        for tag in request_tags:
            if not isinstance(tag, str) or tag.startswith("User-Agent:"):
                continue
            sep = "=" if "=" in tag else (":" if ":" in tag else None)
            if sep:
                k, _, v = tag.partition(sep)
                _put(tags, extra, k, v, True)
            else:
                v = clean_value(tag)
                if v:
                    plain.append(v)
        if plain and "tags" not in extra:
            extra["tags"] = clean_value(",".join(plain)) or ""
    # 6. process defaults from LLMTOP_TAGS.
    if env:
        _put_dict(tags, extra, env)
    return tags, extra
