"""The same metrics over OTLP, with OpenTelemetry's own SDK (`pip install 'llmtop[otel]'`).

Off unless the standard environment asks for it: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) set, or `OTEL_METRICS_EXPORTER=otlp`; `OTEL_SDK_DISABLED=true`
turns it off. Everything else (protocol, headers, interval, service name, resource attributes) is
the SDK's to read from `OTEL_*`, so a collector config written for any other service works here.
Rows are recorded as measurements the moment they are read, so OTLP carries real histograms, not
pre-summed buckets; recording starts at the newest row when the exporter starts (an OTLP counter
counts from its exporter's start).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmtop.store.metrics_queries import DURATION_BUCKETS, TOKEN_BUCKETS, calls_after

#: Dimension -> attribute name: the semantic-convention attribute where there is one.
ATTRIBUTE_NAMES = {"model": "gen_ai.request.model", "provider": "gen_ai.provider.name"}


def enabled(env: dict[str, str] | None = None) -> bool:
    e = os.environ if env is None else env
    if e.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {x.strip() for x in e.get("OTEL_METRICS_EXPORTER", "").split(",")}
    if "none" in exporters:
        return False
    return bool(
        "otlp" in exporters
        or e.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or e.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )


class OtelExporter:
    """Reads new rows and records them on OpenTelemetry instruments; `reader` is any SDK
    MetricReader (a PeriodicExportingMetricReader around the OTLP exporter by default)."""

    def __init__(self, path: str | Path, dims: Sequence[str], reader: Any = None) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource

        from llmtop import __version__
        from llmtop.store.reader import Reader

        if reader is None:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").startswith("grpc"):
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                    OTLPMetricExporter as GrpcExporter,
                )

                reader = PeriodicExportingMetricReader(GrpcExporter())
            else:
                reader = PeriodicExportingMetricReader(OTLPMetricExporter())
        resource = Resource.create({"service.name": "llmtop", "service.version": __version__})
        self.provider = MeterProvider(metric_readers=[reader], resource=resource)
        meter = self.provider.get_meter("llmtop", __version__)
        self.dims = tuple(dims)
        self.keys = [ATTRIBUTE_NAMES.get(d, f"llmtop.{d}") for d in self.dims]
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="tokens used per call, input and output",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        self.requests = meter.create_counter("llmtop.requests", unit="{request}")
        self.cost = meter.create_counter("llmtop.cost", unit="USD")
        self.tokens = meter.create_counter("llmtop.tokens", unit="{token}")
        self.retries = meter.create_counter("llmtop.retries", unit="{request}")
        self.fallbacks = meter.create_counter("llmtop.fallbacks", unit="{request}")
        self.cache_hits = meter.create_counter("llmtop.cache_hits", unit="{request}")
        self.cache_saved = meter.create_counter("llmtop.cache_saved", unit="USD")
        self.reader = Reader(path, readonly=True)
        #: The marker (Reader.max_id) of the last row recorded: a file's row id, a PostgreSQL
        #: store's commit sequence.
        self.last_id = self.reader.max_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> int:
        """Record every row written since the last poll; the number recorded."""
        n = 0
        with self.reader.read_transaction():
            hi, chunks = calls_after(self.reader, self.last_id, self.dims)
            for batch in chunks:
                n += len(batch)
                self._record(batch)
        self.last_id = max(self.last_id, hi)
        return n

    def _record(self, batch: list[Any]) -> None:
        for m in batch:
            attrs: dict[str, Any] = dict(zip(self.keys, m.labels, strict=False))
            self.requests.add(1, {**attrs, "llmtop.status": m.status})
            if m.status == "failure":
                attrs_err = {**attrs, "error.type": m.error_type or "error"}
            else:
                attrs_err = attrs
            if m.latency_s is not None:
                self.duration.record(m.latency_s, attrs_err)
            self.usage.record(m.tokens["input"], {**attrs, "gen_ai.token.type": "input"})
            self.usage.record(m.tokens["output"], {**attrs, "gen_ai.token.type": "output"})
            for kind, count in m.tokens.items():
                if count:
                    self.tokens.add(count, {**attrs, "gen_ai.token.type": kind})
            if m.cost_usd:
                self.cost.add(m.cost_usd, attrs)
            if m.is_retry:
                self.retries.add(1, attrs)
            if m.is_fallback:
                self.fallbacks.add(1, attrs)
            if m.cache_hit:
                self.cache_hits.add(1, attrs)
                self.cache_saved.add(m.saved_usd, attrs)

    def start(self, interval: float = 5.0) -> OtelExporter:
        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.poll()
                except Exception as exc:  # a locked or vanished file: try again next interval
                    print(f"llmtop metrics: OTLP: {exc}", flush=True)

        self._thread = threading.Thread(target=run, name="llmtop-otel", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.poll()
        finally:
            self.provider.shutdown()
            self.reader.close()


def start_from_env(path: str | Path, dims: Sequence[str], max_series: int) -> OtelExporter | None:
    """The OTLP exporter if the environment configures one (and the extra is installed)."""
    if not enabled():
        return None
    try:
        exporter = OtelExporter(path, dims)
    except ImportError:
        print(
            "llmtop metrics: OTEL_* asks for OTLP but the SDK is missing:"
            " pip install 'llmtop[otel]'",
            flush=True,
        )
        return None
    print("llmtop metrics: exporting over OTLP as configured by OTEL_*", flush=True)
    return exporter.start()
