"""End to end: ``dlsms serve`` as a real process with the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a real OTLP/HTTP endpoint started here (the
collector's protocol: protobuf POSTed to /v1/traces); what arrives is decoded with
opentelemetry-proto."""

import gzip
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.cli.test_cli import DLSMS, cli_env, wait_until_ready
from tests.realtime.servers import free_port

pytestmark = pytest.mark.slow


class Received:
    """Every export request a collector endpoint got, decoded."""

    url: str

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self._lock = threading.Lock()

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """Every span received, with its resource's attributes."""
        with self._lock:
            requests = list(self.requests)
        return [
            (_attributes(resource_spans.resource.attributes), span)
            for request in requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]


class OtlpHttpEndpoint(Received):
    """A collector's OTLP/HTTP traces endpoint (protobuf POSTed to /v1/traces)."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                with endpoint._lock:
                    endpoint.paths.append(self.path)
                    endpoint.requests.append(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _attributes(values: Any) -> dict[str, Any]:
    def value(kv: KeyValue) -> Any:
        kind = kv.value.WhichOneof("value")
        return getattr(kv.value, kind) if kind else None

    return {kv.key: value(kv) for kv in values}


@pytest.fixture
def collector() -> Iterator[OtlpHttpEndpoint]:
    endpoint = OtlpHttpEndpoint()
    try:
        yield endpoint
    finally:
        endpoint.stop()


def wait_for(probe: Callable[[], Any], *, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        time.sleep(0.1)


class OtlpGrpcEndpoint(Received):
    """A collector's OTLP/gRPC traces service (TraceService/Export)."""

    def __init__(self) -> None:
        super().__init__()
        endpoint = self

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> ExportTraceServiceResponse:
                with endpoint._lock:
                    endpoint.requests.append(request)
                return ExportTraceServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), self._server)  # type: ignore[no-untyped-call]
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self._server.stop(0)


def serve_and_get_seats(
    database_url: str, tmp_path: Path, collector: Received, **env_extra: str
) -> tuple[dict[str, Any], Span, list[Span]]:
    """``dlsms serve`` exporting to ``collector``; one GET /seats. The server span that
    arrived for it (with its resource's attributes) and the SQL spans of its trace."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = cli_env(
        database_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_BSP_SCHEDULE_DELAY="100",  # ms: exported at once, not after 5 s
        SCHEDULER_ENABLED="false",  # only the request's spans (and the ticker's SQL)
    )
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED"):
        env.pop(name, None)
    env.update(env_extra)
    with (tmp_path / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(
            [DLSMS, "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            wait_until_ready(base, proc)
            response = httpx.get(f"{base}/seats", timeout=5)
            assert response.status_code == 200

            def server_span() -> list[tuple[dict[str, Any], Span]]:
                return [
                    (resource, span)
                    for resource, span in collector.spans()
                    if span.kind == Span.SPAN_KIND_SERVER and span.name == "GET /seats"
                ]

            [(resource, server)] = wait_for(server_span, within=20, what="the server span")

            def sql_in_its_trace() -> list[Span]:
                return [
                    span
                    for _, span in collector.spans()
                    if span.trace_id == server.trace_id
                    and _attributes(span.attributes).get("db.system") == "postgresql"
                ]

            sql = wait_for(sql_in_its_trace, within=20, what="a SQL span in the request's trace")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()
    # /ready (polled until the server answered) was not traced.
    assert not [s for _, s in collector.spans() if s.name.endswith("/ready")]
    return resource, server, sql


def test_serve_exports_a_requests_trace_over_otlp_http(
    fresh_database: Callable[[str], str], tmp_path: Path, collector: OtlpHttpEndpoint
) -> None:
    resource, server, sql = serve_and_get_seats(
        fresh_database("tracing_export"), tmp_path, collector
    )

    assert set(collector.paths) == {"/v1/traces"}
    assert resource["service.name"] == "dlsms"
    assert _attributes(server.attributes).get("http.route") == "/seats"
    assert not server.parent_span_id  # the root of its trace
    assert all(span.parent_span_id for span in sql)


def test_serve_exports_over_otlp_grpc_when_asked_and_names_itself_as_told(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    collector = OtlpGrpcEndpoint()
    try:
        resource, server, sql = serve_and_get_seats(
            fresh_database("tracing_export_grpc"),
            tmp_path,
            collector,
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_RESOURCE_ATTRIBUTES="service.name=seats-east,deployment.environment=test",
        )
    finally:
        collector.stop()

    assert resource["service.name"] == "seats-east"
    assert resource["deployment.environment"] == "test"
    assert sql and server.name == "GET /seats"
