"""The OTLP side of `llmtop metrics`: the official SDK's InMemoryMetricReader stands in for the
collector endpoint; everything between the database and the reader is the real exporter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from llmtop.otel import OtelExporter, enabled
from tests.review_db import build, q


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    for rm in data.resource_metrics if data else ():
        assert rm.resource.attributes["service.name"] == "llmtop"
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def test_rows_written_after_start_are_exported_with_semconv_names(tmp_path: Path) -> None:
    db = tmp_path / "otel.db"
    build(db, days=1, seed=3)  # history before the exporter starts is not replayed
    (start,) = q(db, "SELECT MAX(id) FROM calls")[0]
    reader = InMemoryMetricReader()
    exp = OtelExporter(db, ["model", "provider", "feature"], reader=reader)
    assert exp.poll() == 0
    build(db, days=1, seed=4)
    assert exp.poll() == q(db, "SELECT count(*) FROM requests WHERE id > ?", (start,))[0][0]
    got = points(reader)
    new = f"id > {start}"

    def sql(expr: str, where: str = "1") -> float:
        return q(db, f"SELECT TOTAL({expr}) FROM requests WHERE {new} AND {where}")[0][0]

    assert sum(p.value for p in got["llmtop.requests"]) == sql("1")
    assert sum(p.value for p in got["llmtop.cost"]) == pytest.approx(sql("cost_usd"), rel=1e-9)
    dur = got["gen_ai.client.operation.duration"]
    assert sum(p.count for p in dur) == sql("latency_ms IS NOT NULL")
    assert sum(p.sum for p in dur) == pytest.approx(sql("latency_ms") / 1000, rel=1e-9)
    assert dur[0].explicit_bounds[:3] == (0.01, 0.02, 0.04)  # the conventions' advised buckets
    usage = got["gen_ai.client.token.usage"]
    inp = [p for p in usage if p.attributes["gen_ai.token.type"] == "input"]
    assert sum(p.sum for p in inp) == sql("input_tokens")
    failed = [p for p in dur if "error.type" in p.attributes]
    assert sum(p.count for p in failed) == sql("1", "status = 'failure'")
    models = {p.attributes["gen_ai.request.model"] for p in dur}
    assert models == {m for (m,) in q(db, f"SELECT DISTINCT model FROM requests WHERE {new}")}
    assert {p.attributes["gen_ai.provider.name"] for p in dur} >= {"openai"}
    tokens = got["llmtop.tokens"]
    cached = sum(p.value for p in tokens if p.attributes["gen_ai.token.type"] == "cache_read")
    assert cached == sql("cache_read_tokens")
    assert sum(p.value for p in got.get("llmtop.retries", [])) == sql("is_retry")
    exp.shutdown()


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:4318/v1/metrics"}, True),
        ({"OTEL_METRICS_EXPORTER": "otlp"}, True),
        ({"OTEL_METRICS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_METRICS_EXPORTER": "otlp"}, False),
    ],
)
def test_off_unless_otel_environment_configures_it(env: dict[str, str], on: bool) -> None:
    assert enabled(env) is on


def test_llmtop_metrics_pushes_otlp_http_to_the_configured_endpoint(tmp_path: Path) -> None:
    """The real OTLP/HTTP exporter, configured only by OTEL_* variables, to a loopback receiver."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    got: list[ExportMetricsServiceRequest] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            assert self.path == "/v1/metrics"
            req = ExportMetricsServiceRequest()
            req.ParseFromString(body)
            got.append(req)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    db = tmp_path / "push.db"
    build(db, days=1, seed=6)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmtop", "metrics", "--db", str(db), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert any("OTLP" in x for x in lines) and any("serving" in x for x in lines), lines
        (start,) = q(db, "SELECT MAX(id) FROM calls")[0]
        build(db, days=1, seed=7)  # written while the exporter runs
        proc.send_signal(signal.SIGTERM)  # shutdown records what is left and flushes
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        server.shutdown()
        server.server_close()
    assert got
    count = 0
    for req in got:
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == "gen_ai.client.operation.duration":
                        count = max(count, sum(p.count for p in m.histogram.data_points))
    assert count == q(db, "SELECT count(*) FROM requests WHERE id > ?", (start,))[0][0]
