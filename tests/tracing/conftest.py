"""Tracing installed in this test process, exporting to memory (app/tracing.py).

The instrumentations of asyncpg and redis patch those libraries for the whole process,
and OpenTelemetry lets a process set its tracer provider once: ``spans`` installs
tracing for one test and takes all of it out again afterwards (the patches, the apps'
middleware, the global provider), so that the other tests of this process run untraced.
"""

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from app import tracing
from tests.conftest import ClientFactory
from tests.factories import RULES, FrozenClock, at


def _forget_global_provider() -> None:
    # What opentelemetry-test-utils' reset_trace_globals does: the API keeps the first
    # provider set for the life of the process otherwise.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test; what it recorded, span by span as each ended."""
    for name in ("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"):
        monkeypatch.delenv(name, raising=False)
    exporter = InMemorySpanExporter()
    _forget_global_provider()
    tracing.install(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.uninstall()
        _forget_global_provider()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(at(8))


@pytest.fixture
async def traced(
    spans: InMemorySpanExporter, make_client: ClientFactory, redis_url: str, clock: FrozenClock
) -> httpx.AsyncClient:
    """The app with Redis, built while tracing is on (so instrumented); started, and its
    start-up's spans forgotten."""
    client = await make_client(
        clock=clock, REDIS_URL=redis_url, WEBHOOK_ALLOW_PRIVATE=True, **RULES
    )
    spans.clear()
    return client


def by_id(spans: tuple[ReadableSpan, ...]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in spans if span.context is not None}


def root_of(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> ReadableSpan:
    """Up the parent chain as far as the recorded spans go."""
    while span.parent is not None and span.parent.span_id in spans:
        span = spans[span.parent.span_id]
    return span
