"""Spans of the background work, spans exported to memory: a sweep tick (the rows each
sweep changed), an outbox delivery attempt (kind, attempt, outcome; an error when it
failed) for webhooks against a real HTTP receiver, which gets the delivery's
``traceparent``, and for e-mail against a real SMTP server."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from app.cache import SeatCache
from app.db import outbox as outbox_db
from app.db.pool import connection
from app.jobs import outbox as outbox_job
from app.jobs import sweeps
from app.jobs import webhooks as webhooks_job
from app.models import Role
from app.realtime.broker import Broker
from app.realtime.publisher import Publisher
from app.services.mail import smtp_config
from app.timeutil import utcnow
from tests.conftest import ClientFactory, PoolFactory, make_settings
from tests.factories import (
    RULES,
    FrozenClock,
    add_branch,
    add_reservation,
    add_seat,
    add_student,
    at,
    booked,
)
from tests.mail.conftest import SmtpServer
from tests.webhooks.conftest import Receiver, register

pytestmark = pytest.mark.redis  # the traced app (tests/tracing/conftest.py) runs on Redis


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_a_sweep_tick_is_a_span_with_the_rows_it_changed(
    spans: InMemorySpanExporter, db: asyncpg.Connection, make_pool: PoolFactory, database_url: str
) -> None:
    settings = make_settings(database_url, **RULES)
    pool = await make_pool(settings)
    seat_id = await add_seat(db, await add_branch(db, "Main"), "A1")
    student = await add_student(db, "S0000001")
    # Booked 09:00-10:00, never checked in: a no-show at 12:00.
    await add_reservation(db, user_id=student.id, seat_id=seat_id, start=at(9), end=at(10))
    publisher = Publisher(SeatCache(None, 10), Broker(None, None))
    spans.clear()

    result = await sweeps.run_all(pool, publisher, settings, now=at(12))

    assert result.no_shows == 1
    [sweep] = named(spans, "sweep")
    assert attributes(sweep) == {
        "dlsms.sweep.no_shows": 1,
        "dlsms.sweep.completed": 0,
        "dlsms.sweep.expired_offers": 0,
        "dlsms.sweep.idempotency_keys_removed": 0,
    }
    assert sweep.parent is None and sweep.context is not None
    # Its SQL inside it.
    inside = [
        s
        for s in spans.get_finished_spans()
        if s.parent is not None and s.parent.span_id == sweep.context.span_id
    ]
    assert any("UPDATE reservations" in str(attributes(s).get("db.statement", "")) for s in inside)


async def test_a_webhook_delivery_is_a_span_whose_traceparent_the_receiver_gets(
    traced: httpx.AsyncClient,
    spans: InMemorySpanExporter,
    db: asyncpg.Connection,
    make_pool: PoolFactory,
    database_url: str,
    receiver: Receiver,
) -> None:
    settings = make_settings(database_url, WEBHOOK_ALLOW_PRIVATE=True, **RULES)
    pool = await make_pool(settings)
    admin = await add_student(db, "ADMIN01", role=Role.ADMIN)
    alice = await add_student(db, "S0000001")
    seat_id = await add_seat(db, await add_branch(db, "Main Library"), "A1")
    await register(traced, admin, receiver.url(), ["reservation.created"])
    await booked(traced, alice, seat_id)
    spans.clear()

    result = await webhooks_job.deliver_webhooks(pool, settings, now=utcnow())

    assert result.sent == 1
    [delivery] = named(spans, "outbox deliver webhook")
    assert delivery.kind == SpanKind.CLIENT
    assert attributes(delivery) == {
        "dlsms.outbox.kind": "webhook",
        "dlsms.outbox.attempt": 1,
        "dlsms.outbox.outcome": "sent",
        "http.response.status_code": 204,
    }
    assert delivery.status.status_code != StatusCode.ERROR
    [request] = receiver.requests
    version, trace_id, parent_id, flags = request.headers["traceparent"].split("-")
    assert delivery.context is not None
    assert version == "00" and int(flags, 16) & 1  # sampled
    assert trace_id == format_trace_id(delivery.context.trace_id)
    assert parent_id == format_span_id(delivery.context.span_id)

    # A receiver failing: the next attempt's span is an error, retried later.
    receiver.status = 500
    await booked(traced, alice, seat_id, at(12), at(13))
    spans.clear()
    # At the app's frozen time (queued then): within the retry window.
    await webhooks_job.deliver_webhooks(pool, settings, now=at(8, 1))
    [failed] = named(spans, "outbox deliver webhook")
    assert attributes(failed)["dlsms.outbox.outcome"] == "retry"
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.status.description == "HTTP 500"
    assert failed.context is not None
    assert receiver.requests[-1].headers["traceparent"].split("-")[1] == format_trace_id(
        failed.context.trace_id
    )


async def test_without_tracing_a_webhook_carries_no_traceparent(
    make_client: ClientFactory,
    db: asyncpg.Connection,
    make_pool: PoolFactory,
    database_url: str,
    receiver: Receiver,
) -> None:
    api = await make_client(clock=FrozenClock(at(8)), WEBHOOK_ALLOW_PRIVATE=True, **RULES)
    settings = make_settings(database_url, WEBHOOK_ALLOW_PRIVATE=True, **RULES)
    pool = await make_pool(settings)
    admin = await add_student(db, "ADMIN01", role=Role.ADMIN)
    alice = await add_student(db, "S0000001")
    seat_id = await add_seat(db, await add_branch(db, "Main Library"), "A1")
    await register(api, admin, receiver.url(), ["reservation.created"])
    await booked(api, alice, seat_id)

    assert (await webhooks_job.deliver_webhooks(pool, settings, now=utcnow())).sent == 1
    assert "traceparent" not in receiver.requests[0].headers


async def test_e_mail_attempts_are_spans_sent_or_retried(
    spans: InMemorySpanExporter,
    make_pool: PoolFactory,
    database_url: str,
    smtp: SmtpServer,
) -> None:
    settings = make_settings(database_url, SMTP_URL=smtp.url, MAIL_FROM="Library <l@u.edu>")
    config = smtp_config(settings)
    assert config is not None
    pool = await make_pool(settings)
    message = {
        "kind": "test",
        "to": "someone@example.edu",
        "subject": "hello",
        "text": "body\n",
        "html": "<p>body</p>",
        "attachments": [],
    }
    now = utcnow()
    async with connection(pool) as conn:
        await outbox_db.insert_many(conn, "email", [message, message], now=now)

    smtp.stop()  # the relay down: both wait, each attempt a failed span
    result = await outbox_job.deliver_email(pool, config, now=now)
    assert result.retried == 2
    failed = named(spans, "outbox deliver email")
    assert len(failed) == 2
    assert {attributes(s)["dlsms.outbox.outcome"] for s in failed} == {"retry"}
    assert {attributes(s)["dlsms.outbox.attempt"] for s in failed} == {1}
    assert all(s.status.status_code == StatusCode.ERROR for s in failed)

    smtp.start()
    spans.clear()
    # Past the first backoff (15 to 30 s).
    result = await outbox_job.deliver_email(pool, config, now=now + timedelta(minutes=5))
    assert result.sent == 2
    sent = named(spans, "outbox deliver email")
    assert [attributes(s)["dlsms.outbox.outcome"] for s in sent] == ["sent", "sent"]
    assert {attributes(s)["dlsms.outbox.attempt"] for s in sent} == {2}
    assert all(s.status.status_code != StatusCode.ERROR for s in sent)
