"""Tracing of requests (api.md, "Limits and operations": Tracing), with the real app on
the test database and Redis, spans exported to memory: one trace per request, its SQL
and Redis spans inside it, ``traceparent`` continued, probes untraced, ``trace_id`` in
the JSON log lines; and with tracing off, nothing of it in the request path."""

import io
import json
import logging
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from app import tracing
from app.grpc.generated import dlsms_pb2 as pb
from app.logs import configure_logging
from app.main import create_app
from tests.conftest import ClientFactory, make_settings
from tests.factories import Student, add_branch, add_seat, booked
from tests.grpc.conftest import GrpcFactory, make_grpc
from tests.tracing.conftest import by_id, root_of

pytestmark = pytest.mark.redis

__all__ = ["make_grpc"]  # the fixture, from tests/grpc

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


async def test_a_booking_is_one_trace_with_its_sql_and_redis_spans_inside(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter, db: asyncpg.Connection
) -> None:
    seat_id = await add_seat(db, await add_branch(db, "Main Library"), "A1")
    alice = await _student(db)
    spans.clear()

    await booked(traced, alice, seat_id)

    recorded = spans.get_finished_spans()
    [server] = [s for s in recorded if s.kind == SpanKind.SERVER]
    assert server.name == "POST /reservations"
    assert server.parent is None  # the root: no traceparent came in
    assert server.attributes is not None
    assert (
        server.attributes.get(
            "http.response.status_code", server.attributes.get("http.status_code")
        )
        == 201
    )
    assert server.context is not None
    trace_id = server.context.trace_id
    in_request = [s for s in recorded if s.context is not None and s.context.trace_id == trace_id]
    spans_by_id = by_id(recorded)
    # Every span of the request's trace leads up to the server span: one trace.
    assert all(root_of(s, spans_by_id) is server for s in in_request)
    sql = [s for s in in_request if _system(s) == "postgresql"]
    redis = [s for s in in_request if _system(s) == "redis"]
    assert sql, [s.name for s in in_request]
    assert redis, [s.name for s in in_request]
    assert any("INSERT INTO reservations" in _statement(s) for s in sql)


async def test_an_uncached_listing_reads_redis_then_postgresql_in_one_trace(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter, db: asyncpg.Connection
) -> None:
    await add_seat(db, await add_branch(db, "Main Library"), "A1")
    spans.clear()

    response = await traced.get("/seats")

    assert response.status_code == 200
    recorded = spans.get_finished_spans()
    [server] = [s for s in recorded if s.kind == SpanKind.SERVER]
    assert server.name == "GET /seats"
    assert server.context is not None
    spans_by_id = by_id(recorded)
    children = [s for s in recorded if s is not server and root_of(s, spans_by_id) is server]
    assert {_system(s) for s in children} >= {"postgresql", "redis"}


async def test_a_traceparent_that_comes_in_is_continued(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    response = await traced.get("/seats", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})

    assert response.status_code == 200
    [server] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert server.context is not None and server.parent is not None
    assert format_trace_id(server.context.trace_id) == TRACE_ID
    assert format_span_id(server.parent.span_id) == PARENT_ID
    assert server.parent.is_remote
    sql = [s for s in spans.get_finished_spans() if _system(s) == "postgresql"]
    assert sql and all(
        s.context is not None and format_trace_id(s.context.trace_id) == TRACE_ID for s in sql
    )


async def test_probes_and_scrapes_make_no_span(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    for path in ("/health", "/ready", "/metrics"):
        assert (await traced.get(path)).status_code == 200, path

    assert [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER] == []
    # ... while any other request does.
    await traced.get("/seats")
    assert [s.name for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER] == [
        "GET /seats"
    ]


async def test_a_json_log_line_in_a_traced_request_carries_its_trace_id(
    spans: InMemorySpanExporter, make_client: ClientFactory
) -> None:
    def add_logging_route(app: FastAPI) -> None:
        @app.get("/log-something")
        async def log_something() -> dict[str, str]:
            logging.getLogger("app.test").warning("inside a request")
            return {}

    client = await make_client(app_hook=add_logging_route)
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", "json")
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        assert (await client.get("/log-something")).status_code == 200
        logging.getLogger("app.test").warning("outside")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    inside = next(line for line in lines if line["message"] == "inside a request")
    outside = next(line for line in lines if line["message"] == "outside")
    [server] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert server.context is not None
    assert inside["trace_id"] == format_trace_id(server.context.trace_id)
    assert outside["trace_id"] == "-"
    assert inside["request_id"] != "-"  # the request id is still there


async def test_off_nothing_is_installed_in_the_request_path(
    make_client: ClientFactory, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    apps: list[FastAPI] = []
    client = await make_client(app_hook=apps.append, REDIS_URL=redis_url)
    [app] = apps

    assert (await client.get("/seats")).status_code == 200
    assert tracing.provider() is None
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert not any(isinstance(layer, OpenTelemetryMiddleware) for layer in _stack(app))
    assert not _asyncpg_instrumented()
    assert not RedisInstrumentor().is_instrumented_by_opentelemetry
    # The libraries' own methods, not wrappers around them.
    assert not hasattr(asyncpg.connection.Connection.fetch, "__wrapped__")
    from redis.asyncio import Redis

    assert not hasattr(Redis.execute_command, "__wrapped__")


async def test_on_the_app_is_wrapped_and_the_libraries_patched(
    spans: InMemorySpanExporter, database_url: str
) -> None:
    """The converse of the test above (so that it cannot pass by looking in the wrong
    place), and ``uninstall`` undoes it all."""
    app = create_app(make_settings(database_url))
    async with LifespanManager(app):
        assert any(isinstance(layer, OpenTelemetryMiddleware) for layer in _stack(app))
    assert _asyncpg_instrumented()
    assert hasattr(asyncpg.connection.Connection.fetch, "__wrapped__")

    tracing.uninstall()

    assert not _asyncpg_instrumented()
    assert not hasattr(asyncpg.connection.Connection.fetch, "__wrapped__")
    assert not any(isinstance(layer, OpenTelemetryMiddleware) for layer in _stack(app))


def test_enabled_by_the_standard_variables() -> None:
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert not tracing.enabled({})
    assert tracing.enabled(endpoint)
    assert tracing.enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert not tracing.enabled({**endpoint, "OTEL_SDK_DISABLED": "true"})
    assert not tracing.enabled({**endpoint, "OTEL_TRACES_EXPORTER": "none"})


def _stack(app: FastAPI) -> list[Any]:
    """The built middleware stack, outermost first (each layer's ``app`` is the next)."""
    layers: list[Any] = []
    layer: Any = app.middleware_stack
    while layer is not None and len(layers) < 50:
        layers.append(layer)
        layer = getattr(layer, "app", None)
    return layers


def _asyncpg_instrumented() -> bool:
    instrumented: bool = AsyncPGInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
    return instrumented


def _system(span: Any) -> str:
    attributes = span.attributes or {}
    return str(attributes.get("db.system.name", attributes.get("db.system", "")))


def _statement(span: Any) -> str:
    attributes = span.attributes or {}
    return str(attributes.get("db.query.text", attributes.get("db.statement", "")))


async def _student(db: asyncpg.Connection) -> Student:
    from tests.factories import add_student

    return await add_student(db, "S0000001")


async def test_a_grpc_call_is_one_trace_with_its_sql_inside_and_health_checks_none(
    spans: InMemorySpanExporter, make_grpc: GrpcFactory, db: asyncpg.Connection
) -> None:
    await add_seat(db, await add_branch(db, "Main Library"), "A1")
    app = await make_grpc()
    health: Any = health_pb2_grpc.HealthStub(app.channel)  # typed for grpc.Channel only
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == 1  # SERVING
    spans.clear()

    answer = await app.seats.GetSeats(pb.GetSeatsRequest())
    await health.Check(health_pb2.HealthCheckRequest())

    assert answer.total == 1
    recorded = spans.get_finished_spans()
    [server] = [s for s in recorded if s.kind == SpanKind.SERVER]
    assert server.name == "/dlsms.v1.SeatService/GetSeats"
    spans_by_id = by_id(recorded)
    sql = [s for s in recorded if _system(s) == "postgresql" and root_of(s, spans_by_id) is server]
    assert sql
