"""Idempotency-Key for POST /reservations: one booking per key, however often it is sent.

The first request with a key claims it (a row in ``idempotency_keys``), books, and
stores its answer (the status code and the body, a domain error included) in the
same transaction. A repeat waits on that row until the first commits, then answers
what was stored; with a different body it is 422 ``idempotency_mismatch``. A repeat
that would wait longer than ``IN_PROGRESS_WAIT`` gets 409 ``idempotency_in_progress``.
Records live ``KEY_LIFETIME``; an expired key is taken over as new.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from app.db import idempotency as idempotency_db
from app.db.pool import Connection
from app.errors import (
    DomainError,
    IdempotencyInProgress,
    IdempotencyMismatch,
    ServiceUnavailable,
    error_body,
)
from app.models import Reservation, TokenUser
from app.realtime.publisher import Publisher
from app.schemas.reservations import ReservationCreate
from app.services import reservations as reservations_service
from app.settings import Settings

KEY_LIFETIME = timedelta(hours=24)
IN_PROGRESS_WAIT = "5s"  # a PostgreSQL lock_timeout


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    replayed: bool


def request_hash(data: ReservationCreate) -> str:
    """Same seat and same instants: the same request, whatever offsets were written."""
    start = data.start_time.astimezone(UTC).isoformat()
    end = data.end_time.astimezone(UTC).isoformat()
    return hashlib.sha256(f"{data.seat_id}|{start}|{end}".encode()).hexdigest()


async def create_reservation(
    conn: Connection,
    publisher: Publisher,
    settings: Settings,
    *,
    user: TokenUser,
    data: ReservationCreate,
    key: str,
    now: datetime,
) -> Answer:
    # Malformed requests are refused before the key is used, as validation errors are.
    reservations_service.check_booking_rules(data, settings, now)
    digest = request_hash(data)
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{IN_PROGRESS_WAIT}'")
        try:
            owned = await idempotency_db.claim(
                conn,
                user_id=user.id,
                key=key,
                request_hash=digest,
                now=now,
                expires_at=now + KEY_LIFETIME,
            )
        except asyncpg.LockNotAvailableError as exc:
            raise IdempotencyInProgress() from exc
        if not owned:
            return await _replay(conn, user_id=user.id, key=key, digest=digest)
        await conn.execute("SET LOCAL lock_timeout = 0")
        answer, reservation = await _book(conn, settings, user=user, data=data, now=now)
        await idempotency_db.record(
            conn,
            user_id=user.id,
            key=key,
            status_code=answer.status_code,
            reservation_id=answer.body.get("id") if answer.status_code == 201 else None,
            body=answer.body,
        )
    if reservation is not None:
        await publisher.publish(reservations_service.booked(reservation, now=now))
    return answer


async def _book(
    conn: Connection, settings: Settings, *, user: TokenUser, data: ReservationCreate, now: datetime
) -> tuple[Answer, Reservation | None]:
    try:
        reservation = await reservations_service.book(
            conn, settings, user_id=user.id, data=data, now=now
        )
    except ServiceUnavailable:
        raise  # not an answer: roll back and leave the key free for a retry
    except DomainError as exc:
        return Answer(exc.status_code, error_body(exc), replayed=False), None
    body = reservations_service.to_out(reservation, settings).model_dump(mode="json")
    return Answer(201, body, replayed=False), reservation


async def _replay(conn: Connection, *, user_id: int, key: str, digest: str) -> Answer:
    stored = await idempotency_db.get(conn, user_id=user_id, key=key)
    if stored is None:  # taken over by another request at this very moment
        raise IdempotencyInProgress()
    if stored.request_hash != digest:
        raise IdempotencyMismatch()
    return Answer(stored.status_code, stored.body, replayed=True)
