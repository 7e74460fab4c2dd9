"""Alert quality: does the engine catch the same incident at 0.1×, 1× and 10× the traffic, name
its cause and owner, and stay quiet otherwise?

Usage: python benchmarks/alert_quality.py [--scales 0.1,1,10] [--seeds 3] [--families a,b]

Why a benchmark and not only tests: alert quality is a table (detection, cause, owner, latency,
false pages) over scenario families × traffic scales × seeds, and the full-size version (7 days of
traffic at 10× is ~1M rows per seed) takes minutes. tests/test_alert_quality.py runs each family
at the smallest scale with fixed seeds.

What it generates, per (scale, seed): seven days of traffic (Monday to Sunday) with daily and
weekly seasonality (office-hours features with a Monday-morning ramp and quiet weekends, a
consumer feature peaking in the evening and at weekends, a nightly batch job at 02:00 with
jittered start and length, a Monday-morning weekly digest), tenants with Zipf-skewed traffic and
a long tail of users, a few small tenants appearing during the week, burst noise on top of
Poisson arrivals; then the test day (the next Monday), normal until the incident starts in the
late morning. Each family rewrites the traffic from the incident's start: rows go through the
collector's Writer (priced and rolled up as in production).

The evaluator runs as `llmtop check` does (`evaluate(reader, Rules(), now)`, defaults, no rules
file) at simulated "now" times stepping through the incident, keeping one AlertCache per run as
the dashboard does (only the likely-cause analyses are reused, for two simulated minutes). A page
is an incident root (Alert.parent is None) whose fingerprint was not firing at the previous pass.

Columns: detected (a page related to the incident), cause (that first page's top cause is the
incident's), owner, min (minutes from the incident's start to that page), false (pages not
related to the incident; for the quiet week, pages per quiet day).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ["TZ"] = "UTC"  # the engine's hour-of-day and weekday are local time
# The traffic is dated March 2026: the writer's retention (90 days of wall-clock time) would
# prune the oldest days while the history is written, differently each day the script runs.
os.environ["LLMTOP_RETENTION"] = "off"
os.environ["LLMTOP_ROLLUP_RETENTION"] = "off"
time.tzset()

import numpy as np  # noqa: E402
from llmtop.alerts.cache import AlertCache  # noqa: E402
from llmtop.alerts.evaluate import evaluate  # noqa: E402
from llmtop.alerts.model import Alert  # noqa: E402
from llmtop.alerts.rules import Rules  # noqa: E402
from llmtop.collector.writer import Writer  # noqa: E402
from llmtop.pricing import catalogue  # noqa: E402
from llmtop.store.reader import Reader  # noqa: E402
from llmtop.store.records import CallRecord  # noqa: E402

#: Affected calls whose arrival the per-run lines report: no rule can page on a change before
#: its calls show it, and the deploy and new-entity rules need 3 (their false-page levels).
EVIDENCE_CALLS = 3
#: Bump when the generated traffic changes: cached databases carry it in their name.
VERSION = 4
DAY = 86400.0
HOUR = 3600.0
START = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()  # a Monday, 00:00
HISTORY_DAYS = 7
TEST_DAY = START + HISTORY_DAYS * DAY  # the next Monday
PROVIDER = {
    "claude-sonnet-4-5": "anthropic",
    "claude-haiku-4-5": "anthropic",
    "gpt-4o-mini": "openai",
    "gpt-4o": "openai",
    "gpt-4.1-mini": "openai",
}


@dataclass(frozen=True)
class Feature:
    name: str
    team: str
    workload: str
    model: str
    #: Requests per hour at the shape's peak, at 1×.
    rate: float
    inp: int
    out: int
    shape: str
    #: Share of requests that read the prompt cache (90% of their input from it).
    cache: float = 0.0
    tenants: bool = False


FEATURES: tuple[Feature, ...] = (
    Feature("chat-assist", "chat", "realtime", "claude-sonnet-4-5", 480, 5000, 350, "office", 0.5, True),
    Feature("support-summarize", "support", "realtime", "claude-haiku-4-5", 240, 8000, 300, "office", 0.0, True),
    Feature("kb-answer", "docs", "realtime", "claude-sonnet-4-5", 40, 25000, 400, "office", 0.8),
    Feature("classify", "search", "realtime", "gpt-4o-mini", 600, 600, 20, "office"),
    Feature("rewrite", "growth", "realtime", "gpt-4.1-mini", 200, 1500, 400, "consumer"),
    Feature("haiku-tagger", "labs", "realtime", "gpt-4o-mini", 10, 200, 20, "flat"),
    Feature("agent-step", "agents", "agent", "claude-sonnet-4-5", 90, 3000, 500, "office", 0.0, True),
    Feature("nightly-enrich", "data", "batch", "gpt-4o", 2400, 4000, 500, "nightly"),
    Feature("weekly-digest", "growth", "batch", "gpt-4.1-mini", 1500, 3000, 600, "weekly"),
)  # fmt: skip
BY_NAME = {f.name: f for f in FEATURES}

TENANTS = (
    "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell",
    "cyberdyne", "soylent", "vandelay", "oscorp", "gringotts", "monarch", "duff", "krusty",
    "pied-piper", "dunder", "aperture", "massive", "nakatomi", "prestige", "virtucon",
)  # fmt: skip
#: Small tenants that sign up during the history (day index) or on the test day (7): normal life.
LATE_TENANTS = {"aperture": 2, "massive": 4, "nakatomi": 6, "prestige": 7, "virtucon": 7}
TENANT_W = np.array([1.0 / (k + 1) ** 1.1 for k in range(len(TENANTS))])


def _smooth(x: float, a: float, b: float) -> float:
    """0 before a, 1 after b, a cosine ramp between."""
    if x <= a:
        return 0.0
    if x >= b:
        return 1.0
    return 0.5 - 0.5 * math.cos(math.pi * (x - a) / (b - a))


def shape(kind: str, t: float, seed: int) -> float:
    """Relative traffic at time t (0..1.3) for one feature shape."""
    d = datetime.fromtimestamp(t, timezone.utc)
    h = d.hour + d.minute / 60.0
    weekend = d.weekday() >= 5
    day_no = int((t - START) // DAY)
    if kind == "office":
        bump = _smooth(h, 7.0, 9.5) * (1 - _smooth(h, 17.0, 20.5))
        bump *= 0.85 if 12.0 <= h < 13.0 else 1.0
        return 0.06 + (0.25 if weekend else 0.94) * bump
    if kind == "consumer":
        eve = (
            _smooth(h, 7.0, 12.0) * (1 - _smooth(h, 22.5, 25.0)) * (0.6 + 0.4 * _smooth(h, 16, 19))
        )
        return (0.2 + 0.8 * eve) * (1.3 if weekend else 1.0)
    if kind == "flat":
        return 0.6 + 0.4 * _smooth(h, 8.0, 10.0) * (1 - _smooth(h, 18.0, 21.0))
    t0, length = _batch_hours(seed, day_no)
    if kind == "nightly":
        return 1.0 if 2.0 + t0 <= h < 2.0 + t0 + length else 0.0
    if kind == "weekly":
        return 1.0 if d.weekday() == 0 and 6.0 + t0 <= h < 6.7 + t0 else 0.0
    raise ValueError(kind)


@functools.lru_cache(maxsize=256)
def _batch_hours(seed: int, day_no: int) -> tuple[float, float]:
    """A batch job's start jitter and length (hours) on one day: cron is punctual, data is not."""
    rng = np.random.default_rng([seed, day_no, 77])
    return float(rng.uniform(-0.1, 0.1)), float(rng.uniform(0.65, 0.95))


@dataclass
class Row:
    """One normal request before the incident's changes (a CallRecord without pricing)."""

    t: float
    feature: str
    inp: int
    out: int
    cached: int
    customer: str | None = None
    user: str | None = None
    model: str | None = None
    prompt_version: str = "v4"
    route_version: str = "r12"
    status: str = "success"
    attempt: int = 1

    def record(self) -> CallRecord:
        f = BY_NAME[self.feature]
        model = self.model or f.model
        failed = self.status == "failure"
        tags = {
            "feature": f.name,
            "team": f.team,
            "workload": f.workload,
            "prompt_version": self.prompt_version,
            "route_version": self.route_version,
        }
        if self.customer:
            tags["customer"] = self.customer
        if self.user:
            tags["user"] = self.user
        return CallRecord(
            started_at=self.t,
            ended_at=self.t + 1.2,
            model=model,
            provider=PROVIDER[model],
            call_type="completion",
            status=self.status,
            error_class="RateLimitError" if failed else None,
            error_code="429" if failed else None,
            input_tokens=0 if failed else self.inp,
            output_tokens=0 if failed else self.out,
            cache_read_tokens=0 if failed else self.cached,
            attempt=self.attempt,
            is_retry=self.attempt > 1,
            tags=tags,
        )


def tenants_on(day_no: int) -> tuple[list[str], np.ndarray]:
    names = [n for n in TENANTS if LATE_TENANTS.get(n, 0) <= day_no]
    w = np.array([TENANT_W[TENANTS.index(n)] for n in names])
    return names, w / w.sum()


def user_of(rng: np.random.Generator, tenant: str) -> str:
    """A tenant's users: a few regulars and a long tail (a rare user is new on any given day)."""
    return f"u-{tenant}-{int(rng.geometric(0.35)) - 1}"


def normal_rows(scale: float, seed: int, day_no: int) -> list[Row]:
    """One day of normal traffic, the same rows for the same (scale, seed, day)."""
    rows: list[Row] = []
    day0 = START + day_no * DAY
    names, weights = tenants_on(day_no)
    for fi, f in enumerate(FEATURES):
        rng = np.random.default_rng([seed, day_no, fi, int(scale * 1000)])
        minutes = day0 + 60.0 * np.arange(1440)
        lam = np.array([shape(f.shape, m + 30, seed) for m in minutes]) * f.rate * scale / 60.0
        # Bursts: a gamma multiplier per 5-minute block (CV ~20%) on top of Poisson arrivals.
        lam *= np.repeat(rng.gamma(25.0, 1 / 25.0, 288), 5) * rng.uniform(0.92, 1.08)
        counts = rng.poisson(lam)
        n = int(counts.sum())
        if n == 0:
            continue
        ts = np.repeat(minutes, counts) + rng.random(n) * 60.0
        inp = (f.inp * rng.lognormal(0.0, 0.25, n)).astype(int) + 1
        out = (f.out * rng.lognormal(0.0, 0.3, n)).astype(int) + 1
        hit = rng.random(n) < f.cache
        tenant = rng.choice(len(names), n, p=weights) if f.tenants else None
        for i in range(n):
            cust = names[tenant[i]] if tenant is not None else None
            rows.append(
                Row(
                    t=float(ts[i]),
                    feature=f.name,
                    inp=int(inp[i]),
                    out=int(out[i]),
                    cached=int(inp[i] * 0.9) if hit[i] else 0,
                    customer=cust,
                    user=user_of(rng, cust) if cust else None,
                )
            )
    rows.sort(key=lambda r: r.t)
    return rows


def mean_cost(f: Feature, model: str | None = None) -> float:
    cat = catalogue()
    full = cat.cost(model or f.model, input_tokens=f.inp, output_tokens=f.out).total_usd or 0.0
    cached = (
        cat.cost(
            model or f.model,
            input_tokens=f.inp,
            output_tokens=f.out,
            cache_read_tokens=int(f.inp * 0.9),
        ).total_usd
        or 0.0
    )
    return f.cache * cached + (1 - f.cache) * full


def org_rate(scale: float, t: float, seed: int) -> float:
    """Expected org spend per hour around t (what an incident is sized against)."""
    return sum(
        shape(f.shape, t, seed) * f.rate * scale * mean_cost(f)
        for f in FEATURES
        if f.workload != "batch"
    )


# --- incident families ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    name: str
    #: What the incident does to the normal rows from its start, and what it adds.
    apply: Callable[[list[Row], float, float, int], list[Row]]
    #: A page is about this incident when its scope, title or cause matches.
    related: str
    #: The first related page's "scope | top cause" must match this.
    cause: str
    owner: str | None
    #: Minutes evaluated after the start.
    length: float = 60.0
    quiet: bool = False  # success is no page at all


def _bloat(rows: list[Row], t0: float, scale: float, seed: int) -> list[Row]:
    return [
        replace(r, inp=r.inp * 3, prompt_version="v5") if r.feature == "support-summarize" else r
        for r in rows
    ]


def _cache_route(rows: list[Row], t0: float, scale: float, seed: int) -> list[Row]:
    return [
        replace(r, cached=0, route_version="r13") if r.feature == "kb-answer" else r for r in rows
    ]


def _model_swap(rows: list[Row], t0: float, scale: float, seed: int) -> list[Row]:
    return [replace(r, model="gpt-4o") if r.feature == "classify" else r for r in rows]


RUNAWAY_TENANT = "monarch"  # rank 15: ~1% of the tenants' traffic
RUNAWAY_USER = f"u-{RUNAWAY_TENANT}-0"


def _runaway(rows: list[Row], t0: float, scale: float, seed: int) -> list[Row]:
    """One user's agent loop: a call a minute, sized to +30% of the org's spend."""
    per_call = 0.30 * org_rate(scale, t0, seed) / 60.0
    per_tok = mean_cost(BY_NAME["agent-step"]) / (3000 + 5 * 500)
    inp = max(200, int(per_call / per_tok) - 5 * 400)
    loop = [
        Row(
            t=t0 + 60.0 * k + 7.0,
            feature="agent-step",
            inp=inp,
            out=400,
            cached=0,
            customer=RUNAWAY_TENANT,
            user=RUNAWAY_USER,
        )
        for k in range(200)
    ]
    return rows + loop


NEW_TENANT = "newco"


def _new_customer(rows: list[Row], t0: float, scale: float, seed: int) -> list[Row]:
    """A tenant never seen before, on chat-assist, at ~12% of the org's spend."""
    f = BY_NAME["chat-assist"]
    per_hour = 0.12 * org_rate(scale, t0, seed) / mean_cost(f)
    rng = np.random.default_rng([seed, 99, int(scale * 1000)])
    n = rng.poisson(per_hour * 4)
    ts = t0 + np.sort(rng.random(n)) * 4 * HOUR
    extra = []
    for t in ts:
        inp = int(f.inp * rng.lognormal(0.0, 0.25)) + 1
        hit = rng.random() < f.cache
        extra.append(
            Row(
                t=float(t),
                feature=f.name,
                inp=inp,
                out=int(f.out * rng.lognormal(0.0, 0.3)) + 1,
                cached=int(inp * 0.9) if hit else 0,
                customer=NEW_TENANT,
                user=f"u-{NEW_TENANT}-{int(rng.integers(0, 3))}",
            )
        )
    return rows + extra


def _retry_storm(rows: list[Row], t0: float, scale: float, seed: int) -> list[Row]:
    """429s on classify: 60% of calls fail once or twice before the Router's retry succeeds."""
    rng = np.random.default_rng([seed, 42])
    out: list[Row] = []
    for r in rows:
        if r.feature != "classify" or rng.random() >= 0.6:
            out.append(r)
            continue
        fails = 1 + int(rng.random() < 0.5)
        for a in range(fails):
            out.append(replace(r, t=r.t + a, status="failure", attempt=a + 1))
        out.append(replace(r, t=r.t + fails, attempt=fails + 1))
    return out


def _tiny_blip(rows: list[Row], t0: float, scale: float, seed: int) -> list[Row]:
    """haiku-tagger (a few cents a day) at 4× its traffic for 30 minutes: must stay quiet."""
    extra = []
    for r in rows:
        if r.feature == "haiku-tagger" and r.t < t0 + 1800:
            extra += [replace(r, t=r.t + k * 7.0) for k in (1, 2, 3)]
    return rows + extra


def _benign_deploy(rows: list[Row], t0: float, scale: float, seed: int) -> list[Row]:
    """A new route version on kb-answer and a new prompt version on chat-assist, the two features
    that use the prompt cache, changing nothing else: the cache-hit test since a change must
    stay quiet (one deploy per run; tests/test_alert_quality.py simulates thousands)."""
    out = []
    for r in rows:
        if r.feature == "kb-answer":
            r = replace(r, route_version="r13")
        elif r.feature == "chat-assist":
            r = replace(r, prompt_version="v5")
        out.append(r)
    return out


def _same(rows: list[Row], t0: float, scale: float, seed: int) -> list[Row]:
    return rows


FAMILIES: tuple[Family, ...] = (
    Family("prompt bloat", _bloat, r"support-summarize|prompt_version v5", r"prompt_version v5", "support"),
    Family("route change kills cache hits", _cache_route, r"kb-answer|r13", r"route_version r13|cache hit rate", "docs"),
    Family("model swap", _model_swap, r"classify|gpt-4o\b(?!-mini)", r"gpt-4o\b(?!-mini)", "search"),
    Family("runaway customer", _runaway, rf"{RUNAWAY_TENANT}|{RUNAWAY_USER}|agent-step", rf"customer={RUNAWAY_TENANT}|user={RUNAWAY_USER}", "agents"),
    Family("new customer", _new_customer, NEW_TENANT, NEW_TENANT, "chat"),
    Family("retry storm", _retry_storm, r"classify|429", r"retry rate|error rate|429", "search"),
    Family("tiny-workload blip", _tiny_blip, r"haiku-tagger", "", None, 45.0, quiet=True),
    Family("benign deploy", _benign_deploy, r"kb-answer|chat-assist|r13|v5", "", None, quiet=True),
    Family("quiet week", _same, r"$^", "", None, quiet=True),
)  # fmt: skip
FAMILY = {f.name: f for f in FAMILIES}


def incident_start(seed: int) -> float:
    """Late morning on the test day, a different minute per seed."""
    return TEST_DAY + 10 * HOUR + ((seed * 53) % 120) * 60.0 + 17.0


# --- databases -----------------------------------------------------------------------------------


def write_rows(db: Path, rows: Iterable[Row]) -> int:
    w = Writer(db, sink="thread")
    n = 0
    for r in rows:
        w.submit(r.record())
        n += 1
        if n % 50_000 == 0:
            assert w.flush(300), w.last_error
    assert w.flush(300), w.last_error
    w.close()
    return n


def base_db(scale: float, seed: int, cache_dir: Path) -> Path:
    """Seven days of history plus the test day up to the incident's start (cached on disk)."""
    path = cache_dir / f"v{VERSION}-x{scale:g}-s{seed}.db"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp.db")
    for p in cache_dir.glob(tmp.name + "*"):
        p.unlink()
    t0 = incident_start(seed)

    def history() -> Iterator[Row]:
        for day in range(HISTORY_DAYS):
            yield from normal_rows(scale, seed, day)
        yield from (r for r in normal_rows(scale, seed, HISTORY_DAYS) if r.t < t0)

    write_rows(tmp, history())
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    tmp.rename(path)
    return path


def scenario_db(
    base: Path, fam: Family, scale: float, seed: int, dest: Path
) -> tuple[Path, list[float]]:
    """The base database plus the test day from the incident's start, changed by the family;
    and when its first EVIDENCE_CALLS affected rows start (none: nothing affected)."""
    shutil.copy(base, dest)
    t0 = incident_start(seed)
    rest = [r for r in normal_rows(scale, seed, HISTORY_DAYS) if r.t >= t0]
    end = TEST_DAY + DAY if fam.name == "quiet week" else t0 + (fam.length + 10) * 60
    normal = [r for r in rest if r.t < end]
    rows = sorted((r for r in fam.apply(normal, t0, scale, seed) if r.t < end), key=lambda r: r.t)
    write_rows(dest, rows)
    # The rows the incident changed or added (a family returns the rows it leaves alone as they
    # were): the first of them is the first moment anything could be seen, and a feature making
    # a call every few minutes can be silent for the incident's first ten.
    same = {id(r) for r in normal}
    affected = [] if fam.quiet else [r.t for r in rows if id(r) not in same]
    return dest, affected[:EVIDENCE_CALLS]


# --- evaluation ----------------------------------------------------------------------------------


@dataclass
class Page:
    t: float
    alert: Alert

    def text(self) -> str:
        a = self.alert
        top = a.causes[0][0] if a.causes else a.cause
        return f"{a.rule} {a.scope or 'all'} | {top}"


@dataclass
class Result:
    family: str
    scale: float
    seed: int
    detected: bool = False
    cause_ok: bool = False
    owner_ok: bool = False
    minutes: float | None = None
    false_pages: list[Page] = field(default_factory=list)
    first: Page | None = None
    days: float = 0.0  # quiet days evaluated (the quiet week)
    #: Minutes from the first affected row to the first page (the incident's own latency once
    #: there is anything to see).
    after_first: float | None = None
    #: Minutes from the incident's start to each of its first EVIDENCE_CALLS affected rows.
    affected: list[float] = field(default_factory=list)


def eval_times(fam: Family, t0: float) -> list[float]:
    if fam.name == "quiet week":
        return [TEST_DAY + 600.0 * k for k in range(1, 145)]
    before = [t0 - 1800, t0 - 1200, t0 - 600]
    fine = [t0 + 60.0 * k for k in range(1, 21)]
    coarse = [t0 + 300.0 * k for k in range(5, int(fam.length // 5) + 1)]
    return before + fine + coarse


def pages_over(db: Path, times: Sequence[float], rules: Rules) -> list[Page]:
    """Evaluate at each time; a page is a root that was not firing at the previous pass."""
    reader = Reader(db, readonly=True)
    cache = AlertCache()
    out: list[Page] = []
    firing: set[str] = set()
    try:
        for t in times:
            alerts = evaluate(reader, rules, t, cache=cache)
            now_firing = {a.fingerprint for a in alerts}
            for a in alerts:
                if a.parent is None and not a.pending and a.fingerprint not in firing:
                    out.append(Page(t, a))
            # A fingerprint filed under a root was announced by the root's page.
            firing = now_firing
    finally:
        reader.close()
    return out


def judge(fam: Family, scale: float, seed: int, pages: list[Page]) -> Result:
    t0 = incident_start(seed)
    res = Result(fam.name, scale, seed)
    for p in pages:
        a = p.alert
        hay = f"{a.scope} {a.title} {a.cause}"
        if fam.quiet or p.t < t0 or not re.search(fam.related, hay):
            res.false_pages.append(p)
        elif res.first is None:
            res.first = p
    if fam.name == "quiet week":
        res.days = 1.0
    if res.first is not None:
        a = res.first.alert
        top = a.causes[0][0] if a.causes else ""
        res.detected = True
        res.minutes = (res.first.t - t0) / 60.0
        res.cause_ok = bool(re.search(fam.cause, f"{a.scope} | {top}"))
        res.owner_ok = a.owner == fam.owner
    return res


def run_one(
    fam: Family, scale: float, seed: int, cache_dir: Path, work: Path, rules: Rules | None = None
) -> Result:
    base = base_db(scale, seed, cache_dir)
    db, affected = scenario_db(base, fam, scale, seed, work / f"{fam.name.replace(' ', '_')}.db")
    try:
        pages = pages_over(db, eval_times(fam, incident_start(seed)), rules or Rules())
    finally:
        for p in work.glob(db.name + "*"):
            p.unlink()
    res = judge(fam, scale, seed, pages)
    t0 = incident_start(seed)
    res.affected = [(t - t0) / 60.0 for t in affected]
    if res.first is not None and affected:
        res.after_first = (res.first.t - affected[0]) / 60.0
    return res


# --- the table -----------------------------------------------------------------------------------


def _cell(results: Sequence[Result], fam: Family) -> str:
    n = len(results)
    if fam.quiet:
        fp = sum(len(r.false_pages) for r in results)
        if fam.name == "quiet week":
            days = sum(r.days for r in results)
            return f"{fp / days:.2f}/day ({fp} in {days:g} d)"
        return f"quiet {n - sum(1 for r in results if r.false_pages)}/{n}"
    det = sum(r.detected for r in results)
    cause = sum(r.cause_ok for r in results)
    owner = sum(r.owner_ok for r in results)
    mins = sorted(r.minutes for r in results if r.minutes is not None)
    lat = f"{statistics.median(mins):.0f}/{mins[-1]:.0f}m" if mins else "-"
    after = [r.after_first for r in results if r.after_first is not None]
    lag = f" ({max(after):.0f}m)" if after else ""
    # When the evidence was there at the latest: the seeds' last EVIDENCE_CALLS-th affected call.
    evid = [r.affected[-1] for r in results if len(r.affected) == EVIDENCE_CALLS]
    ev = f" [call {EVIDENCE_CALLS} at {max(evid):.0f}m]" if evid else ""
    fp = sum(len(r.false_pages) for r in results)
    return f"{det}/{n} {cause}/{n} {owner}/{n} {lat}{lag}{ev} fp{fp}"


def table(results: Sequence[Result], scales: Sequence[float], families: Sequence[Family]) -> str:
    head = "| family | " + " | ".join(f"{s:g}×" for s in scales) + " |"
    lines = [head, "|---|" + "---|" * len(scales)]
    for fam in families:
        cells = [
            _cell([r for r in results if r.family == fam.name and r.scale == s], fam)
            for s in scales
        ]
        lines.append(f"| {fam.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scales", default="0.1,1,10")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--families", default="", help="comma-separated family names (default: all)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "llmtop-aq")
    p.add_argument("-v", "--verbose", action="store_true", help="print every page")
    ns = p.parse_args(argv)
    scales = [float(s) for s in ns.scales.split(",")]
    fams = [FAMILY[n.strip()] for n in ns.families.split(",")] if ns.families else list(FAMILIES)
    ns.cache.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as work:
        for scale in scales:
            for seed in range(1, ns.seeds + 1):
                t = time.perf_counter()
                base_db(scale, seed, ns.cache)
                built = time.perf_counter() - t
                for fam in fams:
                    t = time.perf_counter()
                    r = run_one(fam, scale, seed, ns.cache, Path(work))
                    results.append(r)
                    first = r.first.text() if r.first else "-"
                    mins = f"{r.minutes:.0f}m" if r.minutes is not None else "-"
                    if r.after_first is not None:
                        mins += f" ({r.after_first:.0f}m after the first affected call)"
                    if r.affected:
                        mins += "; affected calls at " + "/".join(f"{m:.0f}" for m in r.affected)
                        mins += "m"
                    print(
                        f"{scale:g}× seed {seed} {fam.name}: detected={r.detected} "
                        f"cause={r.cause_ok} owner={r.owner_ok} {mins} "
                        f"false={len(r.false_pages)} ({time.perf_counter() - t:.0f}s; "
                        f"history {built:.0f}s) first: {first}",
                        flush=True,
                    )
                    if ns.verbose or r.false_pages:
                        for fp in r.false_pages:
                            when = datetime.fromtimestamp(fp.t, timezone.utc)
                            print(f"    false page {when:%a %H:%M}: {fp.text()}")
                            print(f"        {fp.alert.title} (owner {fp.alert.owner})")
                    built = 0.0
    print()
    print(
        "cells: detected, cause, owner (of seeds); median/worst minutes from the incident's start"
        " to its first page (worst minutes from its first affected call) [the latest minute at"
        f" which the seeds' affected call number {EVIDENCE_CALLS} came]; false pages"
    )
    print(table(results, scales, fams))
    return 0


if __name__ == "__main__":
    sys.exit(main())
