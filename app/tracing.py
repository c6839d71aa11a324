"""OpenTelemetry tracing, on when the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set and ``OTEL_SDK_DISABLED`` is not true.

On: one TracerProvider per process (service.name ``dlsms`` unless ``OTEL_SERVICE_NAME``
or ``OTEL_RESOURCE_ATTRIBUTES`` names it), a BatchSpanProcessor (``OTEL_BSP_*``) and the
OTLP exporter, HTTP/protobuf unless ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL=grpc``; the
exporter reads its endpoint, headers and timeout from the environment itself. The
maintained instrumentations trace what a request touches: each app (FastAPI/ASGI: one
server span per request, ``traceparent`` continued), asyncpg and redis (patched
process-wide, hence installed once per process), and the gRPC server (an interceptor).

Off: nothing is installed, so the request path carries no tracing code at all. The
job spans below (sweeps, deliveries) go through the OpenTelemetry API, a no-op
without a provider.
"""

import logging
import os
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import anyio
import grpc
from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode

# The instrumentations are imported where they are installed: with tracing off the
# process does not even load them. (asyncpg's and grpc's are not annotated.)

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "dlsms"
# Probes and scrapes are not traced (every few seconds, from every instance). The ASGI
# middleware matches these against scheme://host/path (no query). The standard
# OTEL_PYTHON_FASTAPI_EXCLUDED_URLS (or OTEL_PYTHON_EXCLUDED_URLS) replaces the list.
EXCLUDED_URLS = "/health$,/ready$,/metrics$"
_EXCLUDED_URLS_ENV = ("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
# gRPC health checks are the probes of the gRPC side.
_GRPC_HEALTH = "grpc.health.v1.Health"

_provider: TracerProvider | None = None  # this process's, while installed
_apps: "weakref.WeakSet[FastAPI]" = weakref.WeakSet()


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def provider() -> TracerProvider | None:
    return _provider


def install_from_env() -> TracerProvider | None:
    """The process's provider, built on the first call when the environment asks for
    tracing; None when it does not (then nothing is installed)."""
    if _provider is None and enabled():
        install(BatchSpanProcessor(_exporter_from_env()))
    return _provider


def install(processor: SpanProcessor) -> TracerProvider:
    """Set up the process's provider with ``processor`` and instrument asyncpg and redis
    (module-level patches: once per process). Tests pass an in-memory exporter's."""
    global _provider
    if _provider is not None:
        raise RuntimeError("tracing is already installed in this process")
    tracer_provider = TracerProvider(resource=_resource())
    tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    from opentelemetry.instrumentation.asyncpg import (
        AsyncPGInstrumentor,
    )
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    AsyncPGInstrumentor().instrument(tracer_provider=tracer_provider)  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument(tracer_provider=tracer_provider)
    _provider = tracer_provider
    log.info("tracing on (%s)", tracer_provider.resource.attributes.get(SERVICE_NAME))
    return tracer_provider


def uninstall() -> None:
    """Undo ``install`` (for tests, which build many apps in one process): the library
    patches removed, the apps' middleware taken out, the provider shut down."""
    global _provider
    if _provider is None:
        return
    from opentelemetry.instrumentation.asyncpg import (
        AsyncPGInstrumentor,
    )
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    for app in list(_apps):
        FastAPIInstrumentor.uninstrument_app(app)
    _apps.clear()
    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().uninstrument()
    _provider.shutdown()
    _provider = None


def instrument_app(app: FastAPI) -> None:
    """One server span per request (W3C ``traceparent`` continued), when installed."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    excluded = None if any(os.environ.get(name) for name in _EXCLUDED_URLS_ENV) else EXCLUDED_URLS
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=excluded,
        # No extra span per ASGI message (a stream sends thousands): the server span only.
        exclude_spans=["receive", "send"],
    )
    _apps.add(app)


def grpc_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The gRPC server's span per call (health checks left out), when installed."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import (
        aio_server_interceptor,
    )
    from opentelemetry.instrumentation.grpc.filters import (
        negate,
        service_name,
    )

    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=_provider, filter_=negate(service_name(_GRPC_HEALTH))
    )
    return [interceptor]


async def flush() -> None:
    """Export what is buffered (at the end of an app's lifespan; the SDK shuts the
    provider down at process exit). The exporter blocks: off the event loop."""
    if _provider is not None:
        await anyio.to_thread.run_sync(_provider.force_flush)


def start_delivery_span(kind: str, attempt: int) -> Span:
    """A span for one outbox delivery attempt (``kind``: email, webhook), started, not
    current, not ended: for an attempt whose outcome is settled elsewhere."""
    # The tracer is asked for each time (not kept at import): tests replace the provider.
    return trace.get_tracer(__name__).start_span(
        f"outbox deliver {kind}",
        kind=SpanKind.CLIENT if kind == "webhook" else SpanKind.INTERNAL,
        attributes={"dlsms.outbox.kind": kind, "dlsms.outbox.attempt": attempt},
    )


@contextmanager
def delivery_span(kind: str, attempt: int, span: Span | None = None) -> Iterator[Span]:
    """One outbox delivery attempt's span (or ``span``, started before), current while
    open (SQL spans nest under it; ``inject_traceparent`` sends its context), ended at
    the end; the caller sets the outcome with ``set_outcome``."""
    with trace.use_span(span or start_delivery_span(kind, attempt), end_on_exit=True) as used:
        yield used


def set_outcome(span: Span, outcome: str, *, error: str | None = None) -> None:
    """``sent``, ``retry`` or ``dead``; a failure marks the span as an error."""
    span.set_attribute("dlsms.outbox.outcome", outcome)
    if outcome != "sent":
        span.set_status(StatusCode.ERROR, error)


def inject_traceparent(headers: dict[str, str]) -> None:
    """Add ``traceparent`` (and ``tracestate``) of the current span, if any, to
    ``headers``: the receiver can join the delivery's trace."""
    propagate.inject(headers)


def _resource() -> Resource:
    resource = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def _exporter_from_env() -> SpanExporter:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    if protocol != "http/protobuf":
        log.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported: using http/protobuf", protocol
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()
