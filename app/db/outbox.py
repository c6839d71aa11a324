"""SQL for the outbox: messages written in their event's transaction, delivered later.

A message is claimed for delivery by a conditional UPDATE over a batch picked with
FOR UPDATE SKIP LOCKED that moves its ``next_attempt_at`` past a lease: jobs on any
number of instances take disjoint batches, and a claimed message is not due again
until its lease ends (a job that died mid-batch leaves its messages to be retried then).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from app.db.pool import Connection
from app.db.reservations import COLUMNS
from app.models import Reservation

Channel = Literal["email", "webhook"]
Status = Literal["pending", "sent", "dead"]

_INSERT = """
    INSERT INTO outbox (channel, payload, next_attempt_at, created_at)
    SELECT $1, p, $2, $2 FROM unnest($3::jsonb[]) AS p
"""
_CLAIM = """
    WITH due AS (
        SELECT id FROM outbox
        WHERE channel = $1 AND status = 'pending' AND next_attempt_at <= $2
        ORDER BY next_attempt_at, id LIMIT $4
        FOR UPDATE SKIP LOCKED
    )
    UPDATE outbox o SET attempts = o.attempts + 1, next_attempt_at = $2::timestamptz + $3::interval,
        last_attempt_at = $2
    FROM due WHERE o.id = due.id AND o.status = 'pending'
    RETURNING o.id, o.payload, o.attempts, o.created_at, o.endpoint_id
"""
_SENT = """
    UPDATE outbox SET status = 'sent', sent_at = $2, last_error = NULL, last_status_code = $3
    WHERE id = $1 AND status = 'pending'
"""
_FAILED = """
    UPDATE outbox SET status = $2, next_attempt_at = $3, last_error = $4, last_status_code = $5
    WHERE id = $1 AND status = 'pending'
"""
_STATS = """
    SELECT
        count(*) FILTER (WHERE status = 'pending') AS pending,
        count(*) FILTER (WHERE status = 'dead') AS dead,
        min(created_at) FILTER (WHERE status = 'pending') AS oldest_pending
    FROM outbox WHERE channel = $1 AND status <> 'sent'
"""
_PURGE_SENT = """
    DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox WHERE status = 'sent' AND created_at < $1 LIMIT $2
    )
"""
_LIST = """
    SELECT id, channel, status, attempts, next_attempt_at, created_at, sent_at, last_error,
           payload ->> 'to' AS recipient, payload ->> 'subject' AS subject,
           payload ->> 'kind' AS kind, count(*) OVER () AS total
    FROM outbox WHERE ($1::text IS NULL OR status = $1)
    ORDER BY id DESC LIMIT $2 OFFSET $3
"""
# Who may receive e-mail: an address, and not opted out.
_RECIPIENTS = """
    SELECT id, name, email FROM users
    WHERE id = ANY($1::bigint[]) AND email IS NOT NULL AND email_notifications
"""
_RESERVATIONS = f"""
    SELECT {COLUMNS}, b.timezone FROM reservations r
    JOIN seats s ON s.id = r.seat_id JOIN branches b ON b.id = s.branch_id
    WHERE r.id = ANY($1::bigint[])
"""


@dataclass(frozen=True)
class Claimed:
    id: int
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    endpoint_id: int | None = None  # a webhook delivery's endpoint


async def insert_many(
    conn: Connection, channel: Channel, payloads: list[dict[str, Any]], *, now: datetime
) -> int:
    """Queue messages (due at once), in one round trip; the number queued."""
    if not payloads:
        return 0
    await conn.execute(_INSERT, channel, now, payloads)
    return len(payloads)


async def claim_due(
    conn: Connection, channel: Channel, *, now: datetime, lease: timedelta, batch: int
) -> list[Claimed]:
    """Take up to ``batch`` due messages for one delivery attempt each."""
    rows = await conn.fetch(_CLAIM, channel, now, lease, batch)
    return [
        Claimed(r["id"], r["payload"], r["attempts"], r["created_at"], r["endpoint_id"])
        for r in rows
    ]


async def mark_sent(
    conn: Connection, outbox_id: int, *, now: datetime, status_code: int | None = None
) -> None:
    await conn.execute(_SENT, outbox_id, now, status_code)


async def mark_failed(
    conn: Connection,
    outbox_id: int,
    *,
    dead: bool,
    next_attempt_at: datetime,
    error: str,
    status_code: int | None = None,
) -> None:
    await conn.execute(
        _FAILED,
        outbox_id,
        "dead" if dead else "pending",
        next_attempt_at,
        error[:1000],
        status_code,
    )


@dataclass(frozen=True)
class Stats:
    pending: int
    dead: int
    oldest_pending: datetime | None


async def stats(conn: Connection, channel: Channel) -> Stats:
    row = await conn.fetchrow(_STATS, channel)
    assert row is not None
    return Stats(row["pending"], row["dead"], row["oldest_pending"])


async def purge_sent(conn: Connection, *, before: datetime, batch: int) -> int:
    result = await conn.execute(_PURGE_SENT, before, batch)
    return int(result.rsplit(" ", 1)[-1])


async def list_messages(
    conn: Connection, *, status: Status | None, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await conn.fetch(_LIST, status, limit, offset)
    if rows:
        return rows, rows[0]["total"]
    total = 0
    if offset:
        total = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE ($1::text IS NULL OR status = $1)", status
        )
    return rows, total


@dataclass(frozen=True)
class Recipient:
    id: int
    name: str
    email: str


async def recipients(conn: Connection, user_ids: list[int]) -> dict[int, Recipient]:
    rows = await conn.fetch(_RECIPIENTS, user_ids)
    return {r["id"]: Recipient(r["id"], r["name"], r["email"]) for r in rows}


async def reservations(conn: Connection, ids: list[int]) -> dict[int, tuple[Reservation, str]]:
    """Reservations by id, each with its branch's time zone."""
    rows = await conn.fetch(_RESERVATIONS, ids)
    found = {}
    for row in rows:
        data = dict(row)
        timezone = data.pop("timezone")
        found[row["id"]] = (Reservation.model_validate(data), timezone)
    return found
