"""SQL for webhooks: endpoints, the rows their events queue in the outbox, their log.

A delivery is an ``outbox`` row of channel ``webhook`` with the ``endpoint_id`` it goes
to; its payload holds the ``webhook_id`` (the ``webhook-id`` header, made once when the
row is written, so every retry carries the same one) and the body's ``type``,
``timestamp`` and ``data``. Claiming, leases and retries are the outbox's
(app/db/outbox.py).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.db.pool import Connection

ENDPOINT_COLUMNS = "id, url, events, description, active, created_at, failing_since, disabled_at"

_INSERT_ENDPOINT = f"""
    INSERT INTO webhook_endpoints (url, events, description, secret, created_at)
    VALUES ($1, $2, $3, $4, $5)
    RETURNING {ENDPOINT_COLUMNS}, secret
"""
_LIST_ENDPOINTS = f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"
_GET_ENDPOINT = f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
_DELETE_ENDPOINT = "DELETE FROM webhook_endpoints WHERE id = $1 RETURNING id"
# Which events some active endpoint takes (the writers' process-wide hint).
_SUBSCRIBED = "SELECT DISTINCT unnest(events) FROM webhook_endpoints WHERE active"
# One row per (event, active endpoint taking it), each with its own webhook-id; an
# event about a reservation gets the reservation's fields as they are in this transaction.
_QUEUE = """
    WITH e AS (
        SELECT e.type, e.n, CASE WHEN r.id IS NULL THEN e.data ELSE jsonb_build_object(
                   'reservation_id', r.id, 'user_id', r.user_id, 'seat_id', r.seat_id,
                   'start_time', to_char(r.start_time AT TIME ZONE 'UTC', $5),
                   'end_time', to_char(r.end_time AT TIME ZONE 'UTC', $5),
                   'status', r.status::text) || e.data END AS data
        FROM unnest($3::text[], $4::jsonb[]) WITH ORDINALITY AS e(type, data, n)
        LEFT JOIN reservations r ON r.id = (e.data ->> 'reservation_id')::bigint
    )
    INSERT INTO outbox (channel, payload, next_attempt_at, created_at, endpoint_id)
    SELECT 'webhook',
           jsonb_build_object(
               'webhook_id', 'msg_' || replace(gen_random_uuid()::text, '-', ''),
               'type', e.type, 'timestamp', $2::text, 'data', e.data
           ),
           $1, $1, w.id
    FROM e JOIN webhook_endpoints w ON w.active AND e.type = ANY(w.events)
    ORDER BY e.n, w.id
"""
_UTC_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
_TARGETS = "SELECT id, url, secret, active FROM webhook_endpoints WHERE id = ANY($1::bigint[])"
_SUCCEEDED = """
    UPDATE webhook_endpoints SET failing_since = NULL
    WHERE id = $1 AND failing_since IS NOT NULL
"""
# A failure: failing since now unless already. Set inactive after ``$3`` of failures,
# or when a delivery is given up ($4: when it was queued) that failed all along.
_FAILED = """
    WITH cur AS (
        SELECT id, coalesce(failing_since, $2) AS since FROM webhook_endpoints
        WHERE id = $1 FOR UPDATE
    ), verdict AS (
        SELECT id, since, since <= $2 - $3::interval
                   OR since <= coalesce($4::timestamptz, '-infinity') AS disable
        FROM cur
    )
    UPDATE webhook_endpoints w SET
        failing_since = v.since,
        active = w.active AND NOT v.disable,
        disabled_at = CASE WHEN w.active AND v.disable THEN $2 ELSE w.disabled_at END
    FROM verdict v WHERE w.id = v.id
    RETURNING v.disable AND w.disabled_at = $2 AS just_disabled
"""
_GIVE_UP = """
    UPDATE outbox SET status = 'dead', last_error = $2
    WHERE endpoint_id = $1 AND status = 'pending'
"""
_DELIVERIES = """
    SELECT id, payload ->> 'webhook_id' AS message_id, payload ->> 'type' AS event,
           CASE status WHEN 'sent' THEN 'delivered' WHEN 'dead' THEN 'failed'
                       ELSE 'pending' END AS status,
           attempts, last_status_code, last_attempt_at,
           CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at,
           last_error, count(*) OVER () AS total
    FROM outbox WHERE endpoint_id = $1
    ORDER BY id DESC LIMIT $2 OFFSET $3
"""


async def insert_endpoint(
    conn: Connection,
    *,
    url: str,
    events: list[str],
    description: str | None,
    secret: str,
    now: datetime,
) -> asyncpg.Record:
    row = await conn.fetchrow(_INSERT_ENDPOINT, url, events, description, secret, now)
    assert row is not None
    return row


async def list_endpoints(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch(_LIST_ENDPOINTS)


async def get_endpoint(conn: Connection, endpoint_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(_GET_ENDPOINT, endpoint_id)


async def delete_endpoint(conn: Connection, endpoint_id: int) -> bool:
    """Remove an endpoint and its deliveries (pending ones are never sent)."""
    return await conn.fetchval(_DELETE_ENDPOINT, endpoint_id) is not None


async def subscribed(conn: Connection) -> set[str]:
    return {r[0] for r in await conn.fetch(_SUBSCRIBED)}


async def queue(
    conn: Connection, events: list[tuple[str, dict[str, Any]]], *, now: datetime, stamp: str
) -> int:
    """Queue ``events`` (type, data) for every active endpoint taking them; the rows made."""
    if not events:
        return 0
    result = await conn.execute(
        _QUEUE, now, stamp, [t for t, _ in events], [d for _, d in events], _UTC_FORMAT
    )
    return int(result.rsplit(" ", 1)[-1])


@dataclass(frozen=True)
class Target:
    id: int
    url: str
    secret: str
    active: bool


async def targets(conn: Connection, endpoint_ids: list[int]) -> dict[int, Target]:
    rows = await conn.fetch(_TARGETS, endpoint_ids)
    return {r["id"]: Target(r["id"], r["url"], r["secret"], r["active"]) for r in rows}


async def succeeded(conn: Connection, endpoint_id: int) -> None:
    await conn.execute(_SUCCEEDED, endpoint_id)


async def failed(
    conn: Connection,
    endpoint_id: int,
    *,
    now: datetime,
    disable_after: timedelta,
    gave_up_since: datetime | None = None,
) -> bool:
    """Record a failed delivery; True when this failure set the endpoint inactive (its
    pending deliveries are then given up)."""
    async with conn.transaction():
        row = await conn.fetchrow(_FAILED, endpoint_id, now, disable_after, gave_up_since)
        if row is None or not row["just_disabled"]:
            return False
        await conn.execute(_GIVE_UP, endpoint_id, "endpoint disabled after 24 h of failures")
        return True


async def deliveries(
    conn: Connection, endpoint_id: int, *, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await conn.fetch(_DELIVERIES, endpoint_id, limit, offset)
    if rows:
        return rows, rows[0]["total"]
    total = 0
    if offset:
        total = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE endpoint_id = $1", endpoint_id
        )
    return rows, total
