"""`llmtop reconcile FILE`: the provider's invoice-side numbers against ours, per day and model.

Accepted files (the format is recognised from the content):

- OpenAI Costs API JSON (`GET /v1/organization/costs`, one page or a list of pages): buckets
  with `start_time` (Unix seconds) and `results[]` of `amount.value` (USD) and `line_item`
  (`"gpt-4o-2024-08-06, input"`: the model is the part before the comma).
- Anthropic Cost Report JSON (`GET /v1/organizations/cost_report`): `data[]` buckets with
  `starting_at` (ISO date-time) and `results[]` of `amount` (a decimal string in cents, as the
  API returns it) and `model` (`description` when `model` is absent).
- CSV, from either console's export or a script: a header with a day column (`date`,
  `usage_date_utc`, `day` or `start_time`: ISO date or Unix seconds), a model column (`model`
  or `line_item`) and an amount in USD (`cost_usd`, `amount`, `cost` or `amount_value`).
  Extra columns are ignored; `project_id`, `workspace_id`, `api_key_id`, when present, are
  summed over (llmtop rows do not carry the provider's project ids).

Days are UTC days, as both providers bill. A provider model matches our rows when it equals
the response model or the requested model, or is a dated snapshot of it (`gpt-4o-2024-08-06`
matches `gpt-4o`).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmtop.review.common import UsageError
from llmtop.store.reader import Reader

DAY_COLS = ("date", "usage_date_utc", "day", "start_time")
MODEL_COLS = ("model", "line_item")
AMOUNT_COLS = ("cost_usd", "amount", "cost", "amount_value")


def _day(value: Any) -> str:
    if isinstance(value, int | float) or (
        isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value)
    ):
        return datetime.fromtimestamp(float(value), timezone.utc).strftime("%Y-%m-%d")
    text = str(value).strip().replace("Z", "+00:00")
    d = datetime.fromisoformat(text)
    if d.tzinfo is not None:
        d = d.astimezone(timezone.utc)
    return d.strftime("%Y-%m-%d")


def _model(line_item: str) -> str:
    return line_item.split(",")[0].strip()


def read_provider(path: Path) -> tuple[str, dict[tuple[str, str], float]]:
    """(format name, {(UTC day, model): USD}) from a provider export; UsageError when the file
    is none of the accepted formats (naming what was missing)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None
    out: dict[tuple[str, str], float] = {}

    def add(day: str, model: str, usd: float) -> None:
        if not math.isfinite(usd):
            # float() reads "nan" and "inf": they compared as within any tolerance.
            raise ValueError(f"amount {usd!r} is not a finite number")
        out[(day, model)] = out.get((day, model), 0.0) + usd

    if text.lstrip().startswith(("{", "[")):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{path}: not valid JSON ({exc})") from None
        pages = doc if isinstance(doc, list) else [doc]
        kind = ""
        try:
            kind = _read_buckets(pages, add)
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError, OSError) as exc:
            raise UsageError(
                f"{path}: data[].results[]: not a date and an amount ({type(exc).__name__}: {exc})"
            ) from None
        if not kind:
            raise UsageError(
                f"{path}: no cost buckets found (expected OpenAI's organization/costs or"
                " Anthropic's cost_report JSON)"
            )
        return kind, out
    _read_csv(path, text, add)
    return "csv", out


def _read_buckets(pages: list[Any], add: Any) -> str:
    """OpenAI's and Anthropic's cost buckets into `add`; the format's name ("" for none). Any
    value of the wrong type raises (the caller makes it one line)."""
    kind = ""
    for page in pages:
        data = page.get("data", []) if isinstance(page, dict) else []
        if not isinstance(data, list):
            raise TypeError(f"data is {type(data).__name__}, not a list")
        for bucket in data:
            for res in bucket.get("results", []):
                if "starting_at" in bucket:  # Anthropic: amount in cents, as a string
                    kind = "anthropic cost report (json)"
                    model = res.get("model") or res.get("description") or "(unknown)"
                    add(_day(bucket["starting_at"]), model, float(res["amount"]) / 100.0)
                elif "start_time" in bucket:
                    kind = "openai costs (json)"
                    amount = res.get("amount") or {}
                    add(
                        _day(bucket["start_time"]),
                        _model(res.get("line_item") or "(unknown)"),
                        float(amount.get("value") or 0.0),
                    )
    return kind


def _read_csv(path: Path, text: str, add: Any) -> None:
    rows = csv.DictReader(text.splitlines())
    cols = [c.strip().lower() for c in rows.fieldnames or ()]

    def pick(names: Iterable[str], what: str) -> str:
        for n in names:
            if n in cols:
                return n
        article = "an" if what[:1] in "aeiou" else "a"
        raise UsageError(f"{path}:1: header: needs {article} {what} column ({', '.join(names)})")

    rows.fieldnames = cols
    dc, mc, ac = pick(DAY_COLS, "day"), pick(MODEL_COLS, "model"), pick(AMOUNT_COLS, "amount")
    for row in rows:
        try:
            add(_day(row[dc]), _model(row[mc]), float(str(row[ac]).replace("$", "")))
        except (ValueError, TypeError):
            raise UsageError(
                f"{path}:{rows.line_num}: {dc}/{ac}: not a date and an amount"
                f" ({row.get(dc)!r}, {row.get(ac)!r})"
            ) from None


@dataclass(frozen=True)
class Ours:
    usd: float
    #: None when LiteLLM priced none of the calls (its cost is unknown, not $0).
    litellm_usd: float | None
    calls: int
    unpriced: int
    cache_read_tokens: int
    provider: str | None = None


def our_days(reader: Reader, start: float, end: float) -> dict[tuple[str, str, str | None], Ours]:
    """Our sums per (UTC day, model, response model) over [start, end)."""
    rows = reader.query(
        "SELECT strftime('%Y-%m-%d', c.started_at, 'unixepoch'), c.model, c.response_model,"
        " total(c.cost_usd), sum(c.litellm_cost_usd), count(*), total(c.unpriced),"
        " total(c.cache_read_tokens), max(c.provider) FROM calls c"
        " WHERE c.started_at >= ? AND c.started_at < ? GROUP BY 1, 2, 3",
        (start, end),
    )
    names = reader.strings({r[i] for r in rows for i in (1, 2, 8) if r[i] is not None})
    out: dict[tuple[str, str, str | None], Ours] = {}
    for day, m, rm, usd, lusd, n, unp, cr, prov in rows:
        out[(day, names.get(m, "(none)"), names.get(rm))] = Ours(
            usd, lusd, n, int(unp), int(cr), names.get(prov)
        )
    return out


def matches(provider_model: str, ours: str | None) -> bool:
    if not ours:
        return False
    p, o = provider_model.lower(), ours.lower().split("/")[-1]
    return p == o or (
        p.startswith(o + "-") and re.fullmatch(r"[\d\-]+", p[len(o) + 1 :]) is not None
    )


#: llmtop's spend on a model the invoice does not name, under which it is not flagged: the
#: invoice's own rounding (a cent).
NOT_BILLED_MIN = 0.01


@dataclass(frozen=True)
class RecRow:
    day: str
    model: str
    provider: float | None
    ours: float
    litellm: float | None
    calls: int
    flagged: bool
    reason: str

    @property
    def delta(self) -> float | None:
        return None if self.provider is None else self.ours - self.provider

    @property
    def delta_pct(self) -> float | None:
        if self.provider is None or not self.provider:
            return None
        return (self.ours - self.provider) / self.provider


def reconcile(
    provider: dict[tuple[str, str], float],
    ours: dict[tuple[str, str, str | None], Ours],
    tolerance: float,
) -> list[RecRow]:
    """One row per provider (day, model), each with our rows matched to it; flags beyond
    `tolerance` (a fraction) with the most likely reason."""
    out = []
    matched: set[tuple[str, str, str | None]] = set()
    for (day, model), amount in sorted(provider.items()):
        keys = [k for k in ours if k[0] == day and (matches(model, k[2]) or matches(model, k[1]))]
        matched.update(keys)
        hit = [ours[k] for k in keys]
        usd = sum(o.usd for o in hit)
        known = [o.litellm_usd for o in hit if o.litellm_usd is not None]
        lusd = sum(known) if known else None
        calls = sum(o.calls for o in hit)
        unpriced = sum(o.unpriced for o in hit)
        cached = sum(o.cache_read_tokens for o in hit)
        diff = usd - amount
        # abs(amount): a credit (a negative line) compared as within any tolerance.
        rel = abs(diff) / abs(amount) if amount else (0.0 if not usd else 1.0)
        flagged = rel > tolerance
        reason = ""
        if flagged:
            if not hit:
                reason = "missing calls: no llmtop rows for this model and day"
            elif unpriced:
                reason = f"unpriced rows: {unpriced} calls have no price in llmtop"
            elif diff > 0 and 0.4 <= amount / usd <= 0.6:
                reason = "batch tier: the provider billed about half (batch/flex pricing)"
            elif cached and diff > 0:
                reason = f"cache tokens: {cached:,} cache-read tokens priced differently"
            elif diff < 0:
                reason = "missing calls: the provider billed more than llmtop saw"
            else:
                reason = "llmtop priced more than was billed (failed or cached calls?)"
        out.append(RecRow(day, model, amount, usd, lusd, calls, flagged, reason))
    # What llmtop saw on the invoice's days, from the invoice's provider(s), under a model the
    # invoice never names: spend the provider did not bill, or billed under another line.
    days = {d for d, _ in provider}
    providers = {ours[k].provider for k in matched}
    extra: dict[tuple[str, str], list[Ours]] = {}
    for k, o in ours.items():
        if k in matched or k[0] not in days or o.provider not in providers:
            continue
        extra.setdefault((k[0], k[2] or k[1]), []).append(o)
    for (day, model), os_ in sorted(extra.items()):
        usd = sum(o.usd for o in os_)
        if usd < NOT_BILLED_MIN:
            continue
        known = [o.litellm_usd for o in os_ if o.litellm_usd is not None]
        calls = sum(o.calls for o in os_)
        out.append(
            RecRow(
                day,
                model,
                None,
                usd,
                sum(known) if known else None,
                calls,
                True,
                f"not on the invoice: llmtop saw {calls:,} call{'s' if calls != 1 else ''}",
            )
        )
    out.sort(key=lambda r: (r.day, r.model))
    return out
