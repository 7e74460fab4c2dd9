"""LiteLLM proxy's `"LiteLLM_SpendLogs"` table read as llmtop's `calls`: the column mapping and the
SQL rewrite that points the read side's queries at it.

Why a rewrite and no view: the proxy's database is a read-only source. Nothing is created in it
(no view, no function, not even a temporary table, so a read replica or a read-only role works):
every `FROM calls c` of the read side becomes `FROM (<mapping>) c`, a subquery PostgreSQL
inlines, and the few SQLite-isms the shared SQL relies on in our own schema (`total()`,
`json_extract`, `strings`) are spelled out in place. Then store/pg_dialect.py's translation runs
as for our own tables.

How each llmtop column comes from a spend-log row (one row per proxy request):

| llmtop                  | LiteLLM_SpendLogs                                                  |
|-------------------------|--------------------------------------------------------------------|
| started_at, ended_at    | "startTime", "endTime" (UTC, no zone) as epoch seconds             |
| ttft_ms                 | "completionStartTime" - "startTime", when before "endTime"         |
| cost_usd (and LiteLLM's)| spend (the proxy's own price: llmtop's pricing is unavailable)     |
| input_usd, output_usd   | metadata.cost_breakdown.input_cost / output_cost                   |
| status, error_class/code| status (else metadata.status) = 'failure'; metadata.error_information |
| input/output tokens     | prompt_tokens, completion_tokens                                   |
| cache read/write tokens | metadata.additional_usage_values.cache_read_input_tokens /         |
|                         |   cache_creation_input_tokens                                      |
| reasoning_tokens        | ...additional_usage_values.completion_tokens_details.reasoning_tokens |
| cache_hit               | cache_hit = 'True'                                                 |
| is_retry, is_fallback,  | metadata.attempted_retries > 0, attempted_fallbacks > 0; attempt is |
|   attempt               |   1 + attempted_retries (the proxy keeps counts, not attempt rows) |
| model, provider,        | model, custom_llm_provider, model_group, call_type,                |
|   model_group, call_type|   metadata.original_model_group                                    |
| team, user, customer    | team alias (metadata) or team_id, "user", end_user                 |
| feature, endpoint, ...  | metadata.spend_logs_metadata (the only caller tags the proxy keeps) |
| tags: key, organization,| key alias or the hashed key's first 12 characters, organization_id,|
|   request_tags, session |   request_tags joined with ',', session_id; and every key of       |
|                         |   spend_logs_metadata                                              |
| price_key               | metadata.model_map_information.model_map_key                       |

The proxy writes "" for an absent user/team/end user: read as no value. `metadata` and
`request_tags` are jsonb; a row whose JSON was stored as one JSON string is unwrapped.

Interned columns: llmtop's read side compares string columns by id (`strings`). Here an id is a
52-bit hash of the text (exact in a float64, which the alert engine's numpy reads use) and
`strings` lookups by value become the hash of the value; ids back to text are the reader's job
(store/pg_spendlogs.py). The dashboard's own groupings read the text columns (`<dim>_t`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from llmtop.store.pg_dialect import translate as pg_translate

TABLE = '"LiteLLM_SpendLogs"'
#: The hash that stands for a string id (52 bits: exact in a float64).
ID_MASK = (1 << 52) - 1

_M = (
    "(CASE WHEN jsonb_typeof(s.metadata) = 'string' THEN (s.metadata #>> '{}')::jsonb"
    " ELSE s.metadata END)"
)
_TAGS = (
    "(CASE WHEN jsonb_typeof(s.request_tags) = 'string' THEN (s.request_tags #>> '{}')::jsonb"
    " ELSE s.request_tags END)"
)
_SLM = f"(CASE WHEN jsonb_typeof({_M} -> 'spend_logs_metadata') = 'object'" \
    f" THEN {_M} -> 'spend_logs_metadata' END)"  # fmt: skip


def _num(path: str, typ: str = "float8") -> str:
    """A number in metadata at `path` (a,b,c), NULL when absent or not a number."""
    p = "{" + path + "}"
    cast = "::float8::bigint" if typ == "bigint" else "::float8"
    return f"(CASE WHEN jsonb_typeof({_M} #> '{p}') = 'number' THEN ({_M} #>> '{p}'){cast} END)"


def _txt(expr: str) -> str:
    return f"nullif({expr}, '')"


def _meta(key: str) -> str:
    return _txt(f"{_M} ->> '{key}'")


def _slm(key: str) -> str:
    return _txt(f"{_SLM} ->> '{key}'")


def hashed(expr: str) -> str:
    """A text expression's id (NULL stays NULL)."""
    return f"(hashtextextended({expr}, 0) & {ID_MASK})"


#: The string (interned) columns: llmtop name -> text expression over `s`.
TEXT_COLUMNS: dict[str, str] = {
    "call_type": _txt("s.call_type"),
    "provider": _txt("s.custom_llm_provider"),
    "model": _txt("s.model"),
    "response_model": "NULL::text",
    "model_group": _txt("s.model_group"),
    "error_class": _txt(f"{_M} -> 'error_information' ->> 'error_class'"),
    "error_code": _txt(f"{_M} -> 'error_information' ->> 'error_code'"),
    "normalized_error": "NULL::text",
    "unpriced_reason": "NULL::text",
    "original_model_group": _meta("original_model_group"),
    "price_key": _txt(f"{_M} -> 'model_map_information' ->> 'model_map_key'"),
    "feature": _slm("feature"),
    "endpoint": _slm("endpoint"),
    "team": f"coalesce({_meta('user_api_key_team_alias')}, {_txt('s.team_id')})",
    "environment": _slm("environment"),
    "workload": _slm("workload"),
    "customer": _txt("s.end_user"),
    "user": _txt('s."user"'),
    "prompt_version": _slm("prompt_version"),
    "route_version": _slm("route_version"),
    "price_version": "NULL::text",
    "invalid": "NULL::text",
}

_REQUEST_TAGS = (
    "(SELECT string_agg(t, ',' ORDER BY t) FROM jsonb_array_elements_text("
    f"CASE WHEN jsonb_typeof({_TAGS}) = 'array' THEN {_TAGS} END) t)"
)
_TAGS_JSON = (
    f"jsonb_strip_nulls(coalesce({_SLM}, '{{}}'::jsonb) || jsonb_build_object("
    f"'key', coalesce({_meta('user_api_key_alias')}, left({_txt('s.api_key')}, 12)),"
    f" 'organization', {_txt('s.organization_id')},"
    f" 'request_tags', {_REQUEST_TAGS},"
    f" 'session', {_txt('s.session_id')}))"
)
_RETRIES = _num("attempted_retries", "bigint")
_FALLBACKS = _num("attempted_fallbacks", "bigint")
_EPOCH = "extract(epoch FROM {})::float8"

#: Every other column the read side names, in the order of llmtop's `requests` view.
NUMBER_COLUMNS: dict[str, str] = {
    "id": hashed("s.request_id"),
    "trace_id": "NULL::text",
    "litellm_call_id": _txt("s.litellm_call_id"),
    "started_at": _EPOCH.format('s."startTime"'),
    "ended_at": _EPOCH.format('s."endTime"'),
    "ttft_ms": 'CASE WHEN s."completionStartTime" < s."endTime" THEN extract(epoch FROM'
    ' s."completionStartTime" - s."startTime")::float8 * 1000.0 END',
    "stream": "0",
    "input_tokens": "coalesce(s.prompt_tokens, 0)::bigint",
    "output_tokens": "coalesce(s.completion_tokens, 0)::bigint",
    "cache_read_tokens": "coalesce("
    + _num("additional_usage_values,cache_read_input_tokens", "bigint")
    + ", 0)",
    "cache_write_tokens": "coalesce("
    + _num("additional_usage_values,cache_creation_input_tokens", "bigint")
    + ", 0)",
    "reasoning_tokens": "coalesce("
    + _num("additional_usage_values,completion_tokens_details,reasoning_tokens", "bigint")
    + ", 0)",
    "cost_usd": "coalesce(s.spend, 0)::float8",
    "input_usd": _num("cost_breakdown,input_cost"),
    "cache_read_usd": "NULL::float8",
    "cache_write_usd": "NULL::float8",
    "output_usd": _num("cost_breakdown,output_cost"),
    "litellm_cost_usd": "s.spend::float8",
    "unpriced": "0",
    "unmetered": "0",
    "cache_hit": "CASE WHEN s.cache_hit = 'True' THEN 1 ELSE 0 END",
    "saved_usd": "NULL::float8",
    "attempt": f"1 + coalesce({_RETRIES}, 0)",
    "is_retry": f"CASE WHEN {_RETRIES} > 0 THEN 1 ELSE 0 END",
    "is_fallback": f"CASE WHEN {_FALLBACKS} > 0 THEN 1 ELSE 0 END",
    "correlation_id": "NULL::text",
    "tags_json": f"({_TAGS_JSON})::text",
    "status": f"CASE WHEN coalesce(s.status, {_M} ->> 'status') = 'failure' THEN 1 ELSE 0 END",
}


#: Columns the mapping reads that a proxy's table may lack (added across LiteLLM releases), with
#: their types: a missing one reads as NULL. request_id, startTime, endTime and spend are in
#: every release.
OPTIONAL_COLUMNS: dict[str, str] = {
    "call_type": "text", "api_key": "text", "prompt_tokens": "integer",
    "completion_tokens": "integer", "completionStartTime": "timestamp", "model": "text",
    "model_group": "text", "custom_llm_provider": "text", "user": "text", "metadata": "jsonb",
    "cache_hit": "text", "request_tags": "jsonb", "team_id": "text", "organization_id": "text",
    "end_user": "text", "session_id": "text", "status": "text", "litellm_call_id": "text",
}  # fmt: skip


def table_sql(missing: frozenset[str] = frozenset()) -> str:
    """The spend logs as `s`: the table itself, or with NULLs for the columns it lacks."""
    if not missing:
        return f"{TABLE} s"
    nulls = ", ".join(f'NULL::{OPTIONAL_COLUMNS[c]} AS "{c}"' for c in sorted(missing))
    return f"(SELECT *, xmin AS llmtop_xmin, {nulls} FROM {TABLE}) s"


@lru_cache(maxsize=16)
def mapping(missing: frozenset[str] = frozenset()) -> str:
    """`calls` over the spend logs (see the module docstring)."""
    cols = [f"{expr} AS {n}" for n, expr in NUMBER_COLUMNS.items()]
    for name, expr in TEXT_COLUMNS.items():
        col = '"user"' if name == "user" else name
        cols.append(f"{hashed(expr)} AS {col}")
        cols.append(f"{expr} AS {name}_t")
    # xid: the inserting transaction (late rows, store/pg_spendlogs.py); st: the indexed time.
    xmin = "s.llmtop_xmin" if missing else "s.xmin"
    cols += [f"{xmin}::text::bigint AS xid", 's."startTime" AS st']
    return f"(SELECT {', '.join(cols)} FROM {table_sql(missing)})"


MAPPING = mapping()

#: llmtop's `requests` view's columns, in its order (store/schema.py), and their SQLite types
#: for `PRAGMA table_info` (exports declare column types from them).
REQUEST_COLUMNS: tuple[str, ...] = (
    "id", "trace_id", "litellm_call_id", "started_at", "ended_at", "latency_ms", "ttft_ms",
    "call_type", "stream", "provider", "model", "response_model", "model_group", "status",
    "error_class", "error_code", "normalized_error", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "input_usd",
    "cache_read_usd", "cache_write_usd", "output_usd", "litellm_cost_usd", "unpriced",
    "unpriced_reason", "unmetered", "cache_hit", "saved_usd", "attempt", "is_retry",
    "is_fallback", "original_model_group", "price_key", "feature", "endpoint", "team",
    "environment", "workload", "customer", "user", "prompt_version", "route_version",
    "correlation_id", "tags_json", "price_version", "invalid",
)  # fmt: skip
_REAL_COLUMNS = frozenset(
    {"started_at", "ended_at", "latency_ms", "ttft_ms", "cost_usd", "input_usd",
     "cache_read_usd", "cache_write_usd", "output_usd", "litellm_cost_usd", "saved_usd"}
)  # fmt: skip
_TEXT = frozenset({"trace_id", "litellm_call_id", "correlation_id", "tags_json", "status"})


def column_type(name: str) -> str:
    if name in _REAL_COLUMNS:
        return "REAL"
    return "TEXT" if name in _TEXT else "INTEGER"


def table_info(table: str) -> list[tuple[Any, ...]]:
    """`PRAGMA table_info(requests|calls)` as SQLite answers it, for this source's columns."""
    if table == "requests":
        names: tuple[str, ...] = REQUEST_COLUMNS
    elif table == "calls":
        names = (*NUMBER_COLUMNS, *TEXT_COLUMNS)
    else:
        return []
    return [(i, n, column_type(n), 0, None, 0) for i, n in enumerate(names)]


#: The proxy keeps no llmtop alert history: `alerts` reads as an empty table.
NO_ALERTS = (
    "(SELECT NULL::bigint AS id, NULL::text AS fingerprint, NULL::text AS rule,"
    " NULL::text AS severity, NULL::text AS scope, NULL::text AS title, NULL::text AS cause,"
    " NULL::text AS owner, NULL::float8 AS first_seen, NULL::float8 AS last_seen,"
    " NULL::text AS state, NULL::float8 AS snoozed_until, NULL::text AS details_json,"
    " NULL::text AS incident WHERE false)"
)
#: What this source cannot give (shown as unavailable, never as zero; README "Many hosts").
UNAVAILABLE = frozenset(
    {"pricing", "unpriced", "unmetered", "attempts", "stream", "response_model", "drops",
     "price_version", "saved_usd"}
)  # fmt: skip

_TS = "('epoch'::timestamp + ({}) * interval '1 second')"
_STRINGS_EQ = re.compile(r"([\w.\"]+) (NOT )?IN \(SELECT id FROM strings WHERE value (=|GLOB) \?\)")
_STRINGS_IN = re.compile(r"([\w.\"]+) IN \(SELECT id FROM strings WHERE value IN \(([?,]+)\)\)")
_STRINGS_ONE = re.compile(r"\(SELECT id FROM strings WHERE value = \?\)")
_VALUE_OF = re.compile(r"\(SELECT value FROM strings WHERE id = c\.(\w+)\)")
_STARTED = re.compile(r"\b(c\.)?started_at (>=|<=|<|>) (\?|r\.\w+)")
_BETWEEN = re.compile(r"\b(c\.)?started_at BETWEEN \? AND \?")
_MINMAX = re.compile(r"\b(min|max)\((c\.)?started_at\)")
_JSON = re.compile(r"json_extract\((c\.)?tags_json, '\$\.\"?([^\"']+)\"?'\)")
_NOT_ALIAS = r"(?!(?:WHERE|ORDER|GROUP|LIMIT|JOIN|ON|LEFT|INNER|CROSS|UNION)\b)"
_FROM = re.compile(rf"\b(FROM|JOIN) calls\b(?:(?: AS)? {_NOT_ALIAS}(\w+))?")
_GROUP_BY = re.compile(r"GROUP BY ((?:c\.\w+(?:, )?)+)")
_ALERTS = re.compile(rf"\b(FROM|JOIN) alerts\b(?:(?: AS)? {_NOT_ALIAS}(\w+))?")
_LATE = re.compile(r"llmtop_late\((\w+\.)?xid, %s\)")
_BOOL_OP = re.compile(r"\s(=|!=|<>|<=|>=|<|>|IN|IS|LIKE|GLOB|~)\s")


def _totals(sql: str) -> str:
    """SQLite's `total(x)` (a float sum, 0 over no rows) as PostgreSQL's sum."""
    out, i = [], 0
    for m in re.finditer(r"(?<![\w.])total\(", sql):
        if m.start() < i:  # inside one already rewritten
            continue
        depth, k = 1, m.end()
        while depth and k < len(sql):
            depth += {"(": 1, ")": -1}.get(sql[k], 0)
            k += 1
        inner = _totals(sql[m.end() : k - 1])
        flat = re.sub(r"\([^()]*\)", "", inner)
        if _BOOL_OP.search(f" {flat} ") and not flat.lstrip().upper().startswith("CASE"):
            inner = f"({inner})::int"
        out += [sql[i : m.start()], f"coalesce(sum({inner})::float8, 0)"]
        i = k
    out.append(sql[i:])
    return "".join(out)


@lru_cache(maxsize=1024)
def translate(
    sql: str, missing: frozenset[str] = frozenset()
) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """The read side's SQLite SQL over `calls` → PostgreSQL over the spend logs: (sql, indices of
    GLOB parameters, indices of late-row marker parameters, which the reader expands)."""
    s = sql.replace("calls c NOT INDEXED", "calls c").replace("calls NOT INDEXED", "calls")
    if s is not sql and "NOT INDEXED" in sql:
        s = re.sub(r"(?<![.\w])(c\.)?id > \?", r"llmtop_late(\1xid, ?)", s)
    s = _STRINGS_EQ.sub(
        lambda m: (
            f"{m[2] or ''}coalesce({m[1]} = {hashed('?::text')}, false)"
            if m[3] == "="
            else f"{m[2] or ''}coalesce({m[1]}_t GLOB ?, false)"
        ),
        s,
    )
    s = _STRINGS_IN.sub(
        lambda m: f"{m[1]} IN ({', '.join(hashed('?::text') for _ in m[2].split(','))})", s
    )
    s = _STRINGS_ONE.sub(f"({hashed('?::text')})", s)
    # The largest id a string can have (outcomes size their packed keys by it).
    s = s.replace("(SELECT coalesce(max(id), 0) FROM strings)", f"({ID_MASK}::bigint)")
    if s.strip() == "SELECT id FROM strings WHERE value = ?":
        s = f"SELECT {hashed('?::text')}"
    s, named = _VALUE_OF.subn(r"c.\1_t", s)
    if named:  # grouped by ids and selecting their names: group by the names (the same groups)
        s = _GROUP_BY.sub(
            lambda m: (
                "GROUP BY "
                + re.sub(
                    r"\bc\.(\w+)\b", lambda n: f"c.{n[1]}_t" if n[1] in TEXT_COLUMNS else n[0], m[1]
                )
            ),
            s,
        )
    s = _BETWEEN.sub(lambda m: f"{m[1] or ''}st BETWEEN {_TS.format('?')} AND {_TS.format('?')}", s)
    s = _STARTED.sub(lambda m: f"{m[1] or ''}st {m[2]} {_TS.format(m[3])}", s)
    s = _MINMAX.sub(lambda m: _EPOCH.format(f"{m[1]}({m[2] or ''}st)"), s)
    s = _JSON.sub(lambda m: f"({m[1] or ''}tags_json::jsonb ->> '{m[2]}')", s)
    s = _totals(s)
    pg, globs, extra = pg_translate(s)
    assert not extra
    calls = mapping(missing)
    pg = _FROM.sub(lambda m: f"{m[1]} {calls} {m[2] or 'calls'}", pg)
    pg = _ALERTS.sub(lambda m: f"{m[1]} {NO_ALERTS} {m[2] or 'alerts'}", pg)
    # Which %s are late-row markers: count the placeholders before each.
    late: list[int] = []
    out: list[str] = []
    pos = 0
    for m in _LATE.finditer(pg):
        late.append(pg.count("%s", 0, m.start()))
        out.append(pg[pos : m.start()])
        x, st = f"{m[1] or ''}xid", f"{m[1] or ''}st"
        out.append(
            f"({st} >= {_TS.format('%s')} AND"
            f" (((({x} - %s) & 4294967295) < 2147483648) OR {x} = ANY(%s)))"
        )
        pos = m.end()
    out.append(pg[pos:])
    return "".join(out), globs, tuple(late)


def params_for(
    sql: str, params: Any, marker: Any, missing: frozenset[str] = frozenset()
) -> tuple[str, list[Any]]:
    """Translate and adapt parameters: globs become regexes, each late-row marker the
    (horizon, xmax, [in-progress xids]) that `marker(n)` gives for it."""
    from llmtop.store.pg_dialect import glob_regex

    pg, globs, late = translate(sql, missing)
    ps = list(params)
    for i in globs:
        if ps[i] is not None:
            ps[i] = glob_regex(str(ps[i]))
    # Expand markers left to right: each takes three placeholders.
    for n, i in enumerate(late):
        ps[i + 2 * n : i + 2 * n + 1] = list(marker(ps[i + 2 * n]))
    return pg, ps


def is_proxy_db(conn: Any) -> bool:
    """A LiteLLM proxy's database that llmtop does not write to: the spend logs are there and
    llmtop's own tables are not (a proxy database a collector also writes to is read as ours)."""
    row = conn.execute(
        "SELECT to_regclass('_llmtop_migrations') IS NULL AND to_regclass(%s) IS NOT NULL",
        (TABLE,),
    ).fetchone()
    return bool(row[0])


def refuse_writes(conn: Any, target: object, what: str) -> None:
    """One line instead of creating llmtop's tables in a proxy's database (read-only source)."""
    from llmtop.store.db import DatabaseError

    if is_proxy_db(conn):
        raise DatabaseError(
            f"{target}: a LiteLLM proxy database, which llmtop reads without writing: {what}"
            " needs a store of llmtop's own; add the llmtop callback to the proxy with"
            " LLMTOP_DB=postgresql://.../llmtop (README: Many hosts)"
        )


def missing_columns(conn: Any) -> frozenset[str]:
    """The optional columns this proxy's table lacks (an older LiteLLM release)."""
    got = {
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s)"
            " AND attnum > 0 AND NOT attisdropped",
            (TABLE,),
        )
    }
    return frozenset(OPTIONAL_COLUMNS) - got
