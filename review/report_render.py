"""The report as markdown (for a chat or a wiki), one self-contained HTML file, or JSON.

Charts: pygal, because it is pure Python, small, maintained, and writes SVG that can be inlined
into the page with its stylesheet and without its tooltip script (`js=[]`), so the file opens
offline, in a mail client or an air-gapped wiki, with no CDN link; matplotlib would do the same
at twenty times the install size, and a hand-drawn SVG would be one more thing to maintain.
"""

from __future__ import annotations

import html
import json
from dataclasses import fields, is_dataclass
from datetime import datetime, timezone
from typing import Any

from llmtop.review.common import pct, usd
from llmtop.review.report_data import Line, Report

TOP_ROWS = 10


def _d(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


def _money_delta(x: float) -> str:
    return ("+" if x >= 0 else "-") + usd(abs(x))


def _cell(x: str | None) -> str:
    return (x or "(none)").replace("|", "\\|")


def sections(r: Report) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) of every table: markdown and HTML render the same ones."""
    out: list[tuple[str, list[str], list[list[str]], str]] = []
    if r.movers:
        out.append(
            (
                "Top movers",
                ["what", "spend", "previous", "change", "likely cause", "owner"],
                [
                    [
                        f"{m.dim}={m.key}",
                        usd(m.spend),
                        usd(m.prev_spend),
                        _money_delta(m.delta),
                        "; ".join(m.causes),
                        m.owner or "",
                    ]
                    for m in r.movers
                ],
                "Causes come from the alert engine's analysis of this period against the previous one.",
            )
        )
    for dim, lines in r.breakdowns.items():
        rows = [_line(x, r.previous_covered) for x in lines[:TOP_ROWS]]
        rest = lines[TOP_ROWS:]
        note = ""
        if rest:
            note = f"{len(rest)} more, {usd(sum(x.spend for x in rest))} together."
        out.append(
            (
                f"Spend by {dim}",
                [dim, "spend", "previous", "change", "change %", "requests", "$/request"],
                rows,
                note,
            )
        )
    if r.budgets:
        out.append(
            (
                "Budgets",
                [
                    "budget",
                    "scope",
                    "amount",
                    "spent",
                    "projected at period end",
                    "status",
                    "owner",
                ],
                [
                    [
                        b.name,
                        b.scope,
                        f"{usd(b.amount)}/{b.period}",
                        f"{usd(b.spent)} ({b.spent / b.amount:.0%})",
                        usd(b.projected),
                        b.status,
                        b.owner or "",
                    ]
                    for b in r.budgets
                ],
                "",
            )
        )
    out.append(
        (
            "Waste and savings",
            ["item", "amount"],
            [
                ["failed attempts", f"{usd(r.failed_spend)} ({r.failures:,} failures)"],
                [
                    "retries and fallbacks",
                    f"{usd(r.retry_spend)} ({r.retries:,} {'retry' if r.retries == 1 else 'retries'},"
                    f" {r.fallbacks:,} fallback{'' if r.fallbacks == 1 else 's'})",
                ],
                [
                    "prompt-cache hit rate",
                    "n/a" if r.cache_hit_rate is None else f"{r.cache_hit_rate:.0%}",
                ],
                ["saved by prompt caching", usd(r.saved_prompt_cache)],
                [
                    "saved by the response cache",
                    f"{usd(r.saved_response_cache)} ({r.response_cache_hits:,} hits)",
                ],
            ],
            "",
        )
    )
    t = r.tasks_total
    if t.tasks:
        per_req = {x.key: x for x in r.breakdowns.get("feature", ())}
        rows = []
        for s in r.tasks[:TOP_ROWS]:
            line = per_req.get(s.key)
            rows.append(
                [
                    _cell(s.key),
                    f"{s.tasks:,}",
                    "n/a" if s.success_rate is None else f"{s.success_rate:.1%}",
                    usd(line.cost_per_request if line else None, 4),
                    usd(s.cost_per_success, 4),
                    usd(s.failed_spend),
                    f"{s.recorded:,}",
                ]
            )
        out.append(
            (
                "Tasks and cost per successful task",
                [
                    "feature",
                    "tasks",
                    "success rate",
                    "$/request",
                    "$/successful task",
                    "spent on failed tasks",
                    "outcomes recorded",
                ],
                rows,
                f"All features: {t.tasks:,} tasks, "
                f"{'n/a' if t.success_rate is None else f'{t.success_rate:.1%}'} succeeded, "
                f"{usd(t.cost_per_success, 4)} per successful task (failed tasks' spend counted "
                f"against the successes). Outcomes not recorded ({t.tasks - t.recorded:,}) are "
                "inferred from each task's last call.",
            )
        )
    if r.margins:
        out.append(
            (
                "Margin per customer (this calendar month)",
                ["customer", "plan/month", "LLM cost to date", "share", "projected share"],
                [
                    [
                        m.customer,
                        usd(m.revenue),
                        usd(m.month_to_date),
                        f"{m.share:.0%}",
                        f"{m.projected_share:.0%}",
                    ]
                    for m in r.margins[:TOP_ROWS]
                ],
                "",
            )
        )
    out.append(
        (
            "Data quality",
            ["rows", "count"],
            [
                ["unpriced (no price known: spend understated)", _count(r.unpriced)],
                ["unmetered (no usage reported)", _count(r.unmetered)],
                ["invalid (values out of range or repaired)", f"{r.invalid:,}"],
            ],
            "",
        )
    )
    out.append(
        (
            "Incidents",
            ["since", "severity", "alert", "owner", "state"],
            [[_d(i.first_seen), i.severity, i.title, i.owner or "", i.state] for i in r.incidents],
            "" if r.incidents else "No alert fired in this period.",
        )
    )
    return out


def _line(x: Line, covered: bool = True) -> list[str]:
    return [
        _cell(x.key),
        usd(x.spend),
        usd(x.prev_spend) if covered else "—",
        _money_delta(x.delta) if covered else "—",
        pct(x.delta_pct) if covered else "—",
        f"{x.requests:,}",
        usd(x.cost_per_request, 4),
    ]


def _headline(r: Report) -> str:
    cpr = r.spend / r.requests if r.requests else None
    days = f"{r.period.days:g} day{'' if r.period.days == 1 else 's'}"
    if r.previous_covered:
        vs = f"{_money_delta(r.delta)}, {pct(r.delta_pct)} vs the previous {days}"
    else:
        start = _d(r.data_start) if r.data_start is not None else "?"
        vs = f"no comparison: the data starts {start}, so the previous {days} are not all in it"
    return f"Spend {usd(r.spend)} ({vs}), {r.requests:,} requests, {usd(cpr, 4)} per request."


def to_markdown(r: Report) -> str:
    p = r.period
    lines = [
        f"# LLM cost review: {p.label}",
        "",
        f"{_d(p.start)} to {_d(p.end)}" + (f", filter `{r.filter}`" if r.filter else "") + ".",
        "",
        _headline(r),
    ]
    for title, header, rows, note in sections(r):
        lines += ["", f"## {title}", ""]
        if rows:
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        if note:
            lines += ["", note] if rows else [note]
    return "\n".join(lines) + "\n"


def charts(r: Report) -> list[str]:
    """Inline SVGs: spend per day, and spend per feature this period vs the previous one."""
    import pygal
    from pygal.style import CleanStyle

    cfg: dict[str, Any] = {
        "js": [],  # no tooltip script from a CDN: the file must open offline
        "style": CleanStyle,
        "width": 760,
        "height": 300,
        "legend_at_bottom": True,
        "value_formatter": lambda v: usd(v),
    }
    out = []
    day = pygal.Bar(title="Spend per day (UTC)", show_legend=False, **cfg)
    day.x_labels = [datetime.fromtimestamp(t, timezone.utc).strftime("%m-%d") for t, _ in r.daily]
    day.add("spend", [round(v, 4) for _, v in r.daily])
    out.append(day.render(is_unicode=True, disable_xml_declaration=True))
    feats = r.breakdowns.get("feature", ())[:TOP_ROWS]
    if feats:
        title = "Spend by feature" + (": this period vs the previous" if r.previous_covered else "")
        bar = pygal.HorizontalBar(title=title, **cfg)
        bar.x_labels = [x.key or "(none)" for x in feats]
        if r.previous_covered:  # not a bar of $0 for a period the data does not hold
            bar.add("previous", [round(x.prev_spend, 4) for x in feats])
        bar.add("this period", [round(x.spend, 4) for x in feats])
        out.append(bar.render(is_unicode=True, disable_xml_declaration=True))
    return out


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em}
th{background:#f4f4f4;text-align:left}td{vertical-align:top}.note{color:#555}
figure{margin:1em 0}
"""


def to_html(r: Report) -> str:
    e = html.escape
    p = r.period
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>LLM cost review: {e(p.label)}</title><style>{_CSS}</style></head><body>",
        f"<h1>LLM cost review: {e(p.label)}</h1>",
        f"<p>{e(_d(p.start))} to {e(_d(p.end))}"
        + (f", filter <code>{e(r.filter)}</code>" if r.filter else "")
        + ".</p>",
        f"<p><strong>{e(_headline(r))}</strong></p>",
    ]
    parts += [f"<figure>{svg}</figure>" for svg in charts(r)]
    for title, header, rows, note in sections(r):
        parts.append(f"<h2>{e(title)}</h2>")
        if rows:
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("</table>")
        if note:
            parts.append(f"<p class='note'>{e(note)}</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _plain(x: Any) -> Any:
    if is_dataclass(x) and not isinstance(x, type):
        d = {f.name: _plain(getattr(x, f.name)) for f in fields(x)}
        for name in dir(type(x)):  # derived numbers (delta, share, cost per success) too
            if isinstance(getattr(type(x), name, None), property):
                d[name] = _plain(getattr(x, name))
        return d
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def _count(n: int | None) -> str:
    """A count, or "n/a" where the source cannot say (never 0)."""
    return "n/a" if n is None else f"{n:,}"


def to_json(r: Report) -> str:
    d = _plain(r)
    return json.dumps(d, indent=2, default=str) + "\n"
