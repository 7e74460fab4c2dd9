"""`llmtop metrics`: the database's totals as a Prometheus `/metrics` endpoint.

Names follow OpenTelemetry's GenAI semantic conventions where one exists
(`gen_ai.client.operation.duration`, `gen_ai.client.token.usage`, attributes
`gen_ai.request.model`, `gen_ai.provider.name`, `error.type`), with dots as underscores as
Prometheus spells them; spend, cache savings, retries and the rest are llmtop's own
(`llmtop_*`). Every value is computed at scrape time from the rows (store/metrics_queries.py), so
the exporter holds no state a restart could lose: counters restart from the database's totals.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from llmtop.args import Parser
from llmtop.store.metrics_queries import TOKEN_KINDS, Histogram, MetricTotals, Series

DEFAULT_LABELS = ("model", "provider", "feature", "team")
DEFAULT_LISTEN = "127.0.0.1:9464"  # the port OpenTelemetry's Prometheus exporter uses
#: Dimension -> label name: the semantic-convention attribute where there is one.
LABEL_NAMES = {"model": "gen_ai_request_model", "provider": "gen_ai_provider_name"}


def label_names(dims: Sequence[str]) -> list[str]:
    return [LABEL_NAMES.get(d, d) for d in dims]


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    out, running = [], 0
    for bound, n in zip([*map(repr, map(float, h.bounds)), "+Inf"], h.counts, strict=False):
        running += n
        out.append((bound, float(running)))
    return out


class DatabaseCollector:
    """A prometheus_client collector: each scrape advances the totals and reports them."""

    def __init__(self, totals: MetricTotals) -> None:
        self.totals = totals
        self.lock = threading.Lock()
        self.names = label_names(totals.dims)

    def describe(self) -> list[Any]:
        return []  # collected lazily: registering must not read the database

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        with self.lock:
            series = self.totals.refresh()
        names = self.names
        status = [*names, "status"]
        err = [*names, "error_type"]
        fam = {
            "requests": CounterMetricFamily(
                "llmtop_requests", "LLM calls (attempts) by outcome", labels=status
            ),
            "errors": CounterMetricFamily(
                "llmtop_errors",
                "failed LLM calls by error type (LiteLLM's normalized_error)",
                labels=err,
            ),
            "cost": CounterMetricFamily(
                "llmtop_cost_usd", "spend in USD as llmtop priced it", labels=names
            ),
            "tokens": CounterMetricFamily(
                "llmtop_tokens", "tokens by kind", labels=[*names, "gen_ai_token_type"]
            ),
            "retries": CounterMetricFamily(
                "llmtop_retries", "attempts that retried the same model group", labels=names
            ),
            "fallbacks": CounterMetricFamily(
                "llmtop_fallbacks", "attempts that fell back to another model group", labels=names
            ),
            "cache_hits": CounterMetricFamily(
                "llmtop_cache_hits", "LiteLLM response-cache hits", labels=names
            ),
            "saved": CounterMetricFamily(
                "llmtop_cache_saved_usd", "USD the response-cache hits saved", labels=names
            ),
            "unpriced": CounterMetricFamily(
                "llmtop_unpriced_requests", "calls with no price (cost unknown)", labels=names
            ),
            "unmetered": CounterMetricFamily(
                "llmtop_unmetered_requests", "streams that reported no usage", labels=names
            ),
        }
        duration = HistogramMetricFamily(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration",
            labels=[*names, "error_type"],
        )
        usage = HistogramMetricFamily(
            "gen_ai_client_token_usage",
            "tokens used per call, input and output (gen_ai.client.token.usage)",
            labels=[*names, "gen_ai_token_type"],
        )
        # Counters and token histograms merge across status/error type; sum them per label set.
        merged: dict[tuple[str, ...], list[Series]] = {}
        by_status: dict[tuple[str, ...], int] = {}
        for s in series:
            lv = list(s.labels)
            key = (*s.labels, s.status)
            by_status[key] = by_status.get(key, 0) + s.requests
            if s.status == "failure":
                fam["errors"].add_metric([*lv, s.error_type or "error"], s.requests)
            duration.add_metric(
                [*lv, s.error_type if s.status == "failure" else ""],
                _buckets(s.duration),
                s.duration.total,
            )
            merged.setdefault(s.labels, []).append(s)
        for key, count in by_status.items():
            fam["requests"].add_metric(list(key), count)
        for labels, group in merged.items():
            lv = list(labels)
            fam["cost"].add_metric(lv, sum(s.cost_usd for s in group))
            for kind in TOKEN_KINDS:
                fam["tokens"].add_metric([*lv, kind], sum(s.tokens[kind] for s in group))
            fam["retries"].add_metric(lv, sum(s.retries for s in group))
            fam["fallbacks"].add_metric(lv, sum(s.fallbacks for s in group))
            fam["cache_hits"].add_metric(lv, sum(s.cache_hits for s in group))
            fam["saved"].add_metric(lv, sum(s.saved_usd for s in group))
            fam["unpriced"].add_metric(lv, sum(s.unpriced for s in group))
            fam["unmetered"].add_metric(lv, sum(s.unmetered for s in group))
            for kind, attr in (("input", "input_tokens"), ("output", "output_tokens")):
                h = Histogram(group[0].input_tokens.bounds)
                for s in group:
                    src: Histogram = getattr(s, attr)
                    h.counts = [a + b for a, b in zip(h.counts, src.counts, strict=False)]
                    h.total += src.total
                usage.add_metric([*lv, kind], _buckets(h), h.total)
        yield from fam.values()
        yield duration
        yield usage


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host.strip("[]") or "0.0.0.0", int(port)


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="llmtop metrics",
        description="Serve the database's totals at /metrics for Prometheus (OpenTelemetry "
        "GenAI names where one exists, llmtop_* for cost). With OTEL_EXPORTER_OTLP_ENDPOINT or "
        "OTEL_METRICS_EXPORTER=otlp set (and llmtop[otel] installed), also push them over OTLP.",
    )
    p.add_argument("--db", help="database file (default: $LLMTOP_DB or the per-user one)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT (default {DEFAULT_LISTEN})")
    p.add_argument(
        "--labels",
        default=",".join(DEFAULT_LABELS),
        help="comma-separated dimensions to label by (default: %(default)s; '' for none)",
    )
    p.add_argument(
        "--max-series",
        type=_positive,
        default=500,
        help="distinct label sets kept; the rest are summed under '(other)' (default 500)",
    )
    p.add_argument("--once", action="store_true", help="print the exposition once and exit")
    return p


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: needs at least 1 series")
    return n


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    from llmtop.store.db import DatabaseError, resolve_db_path

    try:
        host, port = _listen(ns.listen)
        dims = [d.strip() for d in ns.labels.split(",") if d.strip()]
        path = resolve_db_path(ns.db)
        totals = MetricTotals(path, dims, ns.max_series)
        totals.refresh()  # fail here, with one line, rather than on the first scrape
    except (ValueError, DatabaseError) as exc:
        print(f"llmtop metrics: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C during the first read (seconds at 10M rows): no trace
        return 130
    try:
        from prometheus_client import CollectorRegistry, generate_latest
    except ImportError:
        print("llmtop metrics: prometheus_client is not installed", file=sys.stderr)
        return 2
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(totals))
    if ns.once:
        sys.stdout.write(generate_latest(registry).decode())
        return 0
    from llmtop.otel import start_from_env

    otel = start_from_env(path, dims, ns.max_series)
    return _serve(registry, host, port, path, otel)


def _serve(registry: Any, host: str, port: int, path: Path, otel: Any) -> int:
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import make_wsgi_app

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # one line per scrape would flood the terminal

    try:
        server = make_server(host, port, make_wsgi_app(registry), handler_class=Quiet)
    except OSError as exc:
        print(f"llmtop metrics: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(
        f"llmtop metrics: serving {path} at http://{host}:{server.server_port}/metrics", flush=True
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if otel is not None:
            otel.shutdown()
    return 0
