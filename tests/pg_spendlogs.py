"""A LiteLLM proxy's spend-log table, as the proxy's migrations create it, with rows shaped like
the ones the proxy writes (litellm/proxy/spend_tracking/spend_tracking_utils.py, 1.106): for the
proxy-database source tests and benchmarks.

Column types are the proxy's (Prisma: String -> text, Float -> double precision, Int -> integer,
DateTime -> timestamp(3) without time zone holding UTC, Json -> jsonb), and so are its indexes; ""
where the proxy writes an empty string for an absent user, team or end user.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DDL = """
CREATE TABLE "LiteLLM_SpendLogs" (
    "request_id" TEXT NOT NULL,
    "call_type" TEXT NOT NULL,
    "api_key" TEXT NOT NULL DEFAULT '',
    "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    "total_tokens" INTEGER NOT NULL DEFAULT 0,
    "prompt_tokens" INTEGER NOT NULL DEFAULT 0,
    "completion_tokens" INTEGER NOT NULL DEFAULT 0,
    "startTime" TIMESTAMP(3) NOT NULL,
    "endTime" TIMESTAMP(3) NOT NULL,
    "request_duration_ms" INTEGER,
    "completionStartTime" TIMESTAMP(3),
    "model" TEXT NOT NULL DEFAULT '',
    "model_id" TEXT DEFAULT '',
    "model_group" TEXT DEFAULT '',
    "custom_llm_provider" TEXT DEFAULT '',
    "api_base" TEXT DEFAULT '',
    "user" TEXT DEFAULT '',
    "metadata" JSONB DEFAULT '{}',
    "cache_hit" TEXT DEFAULT '',
    "cache_key" TEXT DEFAULT '',
    "request_tags" JSONB DEFAULT '[]',
    "team_id" TEXT,
    "organization_id" TEXT,
    "end_user" TEXT,
    "requester_ip_address" TEXT,
    "messages" JSONB DEFAULT '{}',
    "response" JSONB DEFAULT '{}',
    "session_id" TEXT,
    "status" TEXT,
    "mcp_namespaced_tool_name" TEXT,
    "billing_agent_id" TEXT,
    "agent_id" TEXT,
    "proxy_server_request" JSONB DEFAULT '{}',
    "litellm_call_id" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "LiteLLM_SpendLogs_pkey" PRIMARY KEY ("request_id")
);
CREATE INDEX "LiteLLM_SpendLogs_startTime_idx" ON "LiteLLM_SpendLogs"("startTime");
CREATE INDEX "LiteLLM_SpendLogs_startTime_request_id_idx"
    ON "LiteLLM_SpendLogs"("startTime", "request_id");
CREATE INDEX "LiteLLM_SpendLogs_end_user_idx" ON "LiteLLM_SpendLogs"("end_user");
CREATE INDEX "LiteLLM_SpendLogs_session_id_idx" ON "LiteLLM_SpendLogs"("session_id");
CREATE INDEX "LiteLLM_SpendLogs_litellm_call_id_idx" ON "LiteLLM_SpendLogs"("litellm_call_id");
CREATE INDEX "LiteLLM_SpendLogs_api_key_startTime_idx" ON "LiteLLM_SpendLogs"("api_key", "startTime");
"""

COLUMNS = (
    "request_id", "call_type", "api_key", "spend", "total_tokens", "prompt_tokens",
    "completion_tokens", "startTime", "endTime", "request_duration_ms", "completionStartTime",
    "model", "model_id", "model_group", "custom_llm_provider", "api_base", "user", "metadata",
    "cache_hit", "cache_key", "request_tags", "team_id", "organization_id", "end_user",
    "session_id", "status", "litellm_call_id",
)  # fmt: skip

KEYS = {"a1b2c3d4e5f6a7b8c9d0": "search-svc", "ffee00112233445566778899": None}
TEAMS = {"team-1": "search", "team-2": "billing"}
MODELS = {"gpt-4o": "openai", "claude-3-5-sonnet": "anthropic"}


@dataclass
class Log:
    """One spend-log row and what llmtop should read from it."""

    row: dict[str, Any]
    started: float
    spend: float
    failed: bool
    model: str
    team: str | None
    key: str
    user: str | None
    customer: str | None
    feature: str | None
    cache_read: int
    retries: int
    tags: list[str] = field(default_factory=list)


def _ts(t: float) -> datetime:
    """As the proxy stores it: UTC wall time without a zone, millisecond precision."""
    return datetime.fromtimestamp(round(t, 3), UTC).replace(tzinfo=None)


def make_logs(n: int, start: float, end: float, seed: int = 1) -> list[Log]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = round(rng.uniform(start, end), 3)
        model = rng.choice(list(MODELS))
        key_hash, key_alias = rng.choice(list(KEYS.items()))
        team_id = rng.choice([*TEAMS, ""])
        failed = rng.random() < 0.15
        cache_read = rng.choice([0, 0, 512, 1024])
        retries = rng.choice([0, 0, 0, 1, 2])
        user = rng.choice(["", "u-ann", "u-bob"])
        end_user = rng.choice(["", "acme", "globex"])
        feature = rng.choice([None, "chat", "search"])
        tags = rng.sample(["prod", "batch", "eu"], rng.randrange(0, 3))
        spend = 0.0 if failed else round(rng.uniform(0.0001, 0.05), 9)
        prompt, completion = rng.randrange(10, 4000), 0 if failed else rng.randrange(1, 900)
        meta: dict[str, Any] = {
            "user_api_key": key_hash,
            "user_api_key_alias": key_alias,
            "user_api_key_team_id": team_id or None,
            "user_api_key_team_alias": TEAMS.get(team_id),
            "user_api_key_org_id": "org-9",
            "user_api_key_user_id": user or None,
            "spend_logs_metadata": {"feature": feature, "env": "prod"} if feature else None,
            "requester_ip_address": None,
            "additional_usage_values": {
                "cache_read_input_tokens": cache_read,
                "cache_creation_input_tokens": 0,
                "completion_tokens_details": {"reasoning_tokens": 7 if model == "gpt-4o" else 0},
            },
            "attempted_retries": retries,
            "attempted_fallbacks": 0,
            "model_map_information": {"model_map_key": model, "model_map_value": None},
            "cost_breakdown": {"input_cost": spend * 0.4, "output_cost": spend * 0.6},
            "status": "failure" if failed else "success",
            "error_information": (
                {
                    "error_code": "429",
                    "error_class": "RateLimitError",
                    "llm_provider": "openai",
                    "error_message": "rate limited",
                }
                if failed
                else {"error_code": "", "error_class": "", "llm_provider": "", "error_message": ""}
            ),  # fmt: skip
        }
        dur = rng.uniform(0.2, 4.0)
        row = {
            "request_id": f"chatcmpl-{uuid.UUID(int=rng.getrandbits(128))}",
            "call_type": "acompletion",
            "api_key": key_hash,
            "spend": spend,
            "total_tokens": prompt + completion,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "startTime": _ts(t),
            "endTime": _ts(t + dur),
            "request_duration_ms": int(dur * 1000),
            "completionStartTime": _ts(t + dur / 3),
            "model": model,
            "model_id": "m-" + model,
            "model_group": model,
            "custom_llm_provider": MODELS[model],
            "api_base": "https://api.example.com",
            "user": user,
            # One row in fifty as the proxy's older releases stored it: a JSON string.
            "metadata": json.dumps(json.dumps(meta)) if i % 50 == 7 else json.dumps(meta),
            "cache_hit": "None",
            "cache_key": "Cache OFF",
            "request_tags": json.dumps(tags),
            "team_id": team_id,
            "organization_id": "org-9",
            "end_user": end_user,
            "session_id": None,
            "status": "failure" if failed else "success",
            "litellm_call_id": str(uuid.UUID(int=rng.getrandbits(128))),
        }
        out.append(
            Log(row=row, started=t, spend=spend, failed=failed, model=model,
                team=TEAMS.get(team_id) or None, key=key_alias or key_hash[:12],
                user=user or None, customer=end_user or None, feature=feature,
                cache_read=cache_read, retries=retries, tags=sorted(tags))
        )  # fmt: skip
    return out


def insert_sql() -> str:
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    marks = ", ".join("%s" for _ in COLUMNS)
    return f'INSERT INTO "LiteLLM_SpendLogs" ({cols}) VALUES ({marks})'


def insert(conn: Any, logs: list[Log]) -> None:
    with conn.cursor() as cur:
        cur.executemany(insert_sql(), [[lg.row[c] for c in COLUMNS] for lg in logs])


def create(url: str, logs: list[Log]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(DDL)
        with conn.transaction():
            insert(conn, logs)
