"""Idempotency-Key: one answer per key, however often the request is sent.

``run_once`` wraps one use case. The first request with a key claims it (a row in
``idempotency_keys``), runs the use case, and stores its answer (the status code and
the body, a domain error included) in the same unit of work. A repeat waits on that
row until the first commits, then answers what was stored; with a different request
(another fingerprint) it is 422 ``idempotency_mismatch``. A repeat that would wait
longer than ``IN_PROGRESS_WAIT`` gets 409 ``idempotency_in_progress``. Records live
``KEY_LIFETIME``; an expired key is taken over as new.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel

from app.db import idempotency as idempotency_db
from app.db.pool import Connection
from app.errors import (
    DomainError,
    IdempotencyInProgress,
    IdempotencyMismatch,
    ServiceUnavailable,
    error_body,
)
from app.realtime.publisher import Publisher
from app.services.unit_of_work import UnitOfWork, Work, run_unit

KEY_LIFETIME = timedelta(hours=24)
IN_PROGRESS_WAIT = "5s"  # a PostgreSQL lock_timeout


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    replayed: bool


def fingerprint(*parts: object) -> str:
    """A request's identity for its key: equal parts, equal fingerprint. Give instants
    in UTC (``as_utc``), so that two spellings of one instant are one request."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def as_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


async def run_once(
    conn: Connection,
    publisher: Publisher,
    *,
    user_id: int,
    key: str,
    request_fingerprint: str,
    now: datetime,
    work: Work[BaseModel],
    status_code: int = 201,
) -> Answer:
    """``work``'s answer for this key: run now (and stored), or the stored one replayed.

    Refuse malformed requests before calling this: a refusal that needs no key must
    not use one up."""

    async def once(uow: UnitOfWork) -> Answer:
        try:
            owned = await idempotency_db.claim(
                uow.conn,
                user_id=user_id,
                key=key,
                request_hash=request_fingerprint,
                now=now,
                expires_at=now + KEY_LIFETIME,
                wait=IN_PROGRESS_WAIT,
            )
        except asyncpg.LockNotAvailableError as exc:
            raise IdempotencyInProgress() from exc
        if not owned:
            return await _replay(uow.conn, user_id=user_id, key=key, digest=request_fingerprint)
        answer = await _answer(work, uow, status_code)
        await idempotency_db.record(
            uow.conn,
            user_id=user_id,
            key=key,
            status_code=answer.status_code,
            reservation_id=answer.body.get("id") if answer.status_code == status_code else None,
            body=answer.body,
        )
        return answer

    return await run_unit(conn, publisher, now=now, work=once)


async def _answer(work: Work[BaseModel], uow: UnitOfWork, status_code: int) -> Answer:
    try:
        result = await work(uow)
    except ServiceUnavailable:
        raise  # not an answer: roll back and leave the key free for a retry
    except DomainError as exc:
        return Answer(exc.status_code, error_body(exc), replayed=False)
    return Answer(status_code, result.model_dump(mode="json"), replayed=False)


async def _replay(conn: Connection, *, user_id: int, key: str, digest: str) -> Answer:
    stored = await idempotency_db.get(conn, user_id=user_id, key=key)
    if stored is None:  # taken over by another request at this very moment
        raise IdempotencyInProgress()
    if stored.request_hash != digest:
        raise IdempotencyMismatch()
    return Answer(stored.status_code, stored.body, replayed=True)
