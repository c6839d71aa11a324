"""SQL for notifications: rows are the source of truth; streams only wake people up."""

from datetime import datetime
from typing import Any

import asyncpg

from app.db.pool import Connection
from app.models import Notification, NotificationType

_COLUMNS = "id, user_id, type, data, created_at, read_at"

_INSERT = f"""
    INSERT INTO notifications (user_id, type, data, created_at)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::timestamptz[])
    RETURNING {_COLUMNS}
"""
_LIST = f"""
    SELECT {_COLUMNS}, count(*) OVER () AS total FROM notifications
    WHERE user_id = $1 AND (NOT $2::boolean OR read_at IS NULL)
    ORDER BY id DESC LIMIT $3 OFFSET $4
"""
_COUNT = """
    SELECT count(*) FROM notifications WHERE user_id = $1 AND (NOT $2::boolean OR read_at IS NULL)
"""
_AFTER = f"""
    SELECT {_COLUMNS} FROM notifications WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3
"""
# Reading twice keeps the first read time.
_MARK_READ = f"""
    UPDATE notifications SET read_at = coalesce(read_at, $3)
    WHERE id = $1 AND user_id = $2
    RETURNING {_COLUMNS}
"""


def _notification(row: asyncpg.Record) -> Notification:
    return Notification.model_validate(dict(row))


async def insert_many(
    conn: Connection,
    items: list[tuple[int, NotificationType, dict[str, Any]]],
    *,
    now: datetime,
) -> list[Notification]:
    """One row per (user_id, type, data), in one round trip."""
    if not items:
        return []
    users = [user_id for user_id, _, _ in items]
    types = [kind.value for _, kind, _ in items]
    data = [payload for _, _, payload in items]
    rows = await conn.fetch(_INSERT, users, types, data, [now] * len(items))
    return [_notification(row) for row in rows]


async def list_for_user(
    conn: Connection, user_id: int, *, unread_only: bool, limit: int, offset: int
) -> tuple[list[Notification], int]:
    rows = await conn.fetch(_LIST, user_id, unread_only, limit, offset)
    if rows:
        return [_notification(row) for row in rows], rows[0]["total"]
    total = await conn.fetchval(_COUNT, user_id, unread_only) if offset else 0
    return [], total


async def after(conn: Connection, user_id: int, last_id: int, *, limit: int) -> list[Notification]:
    """The user's notifications with an id above ``last_id``, oldest first (SSE replay)."""
    return [_notification(row) for row in await conn.fetch(_AFTER, user_id, last_id, limit)]


async def mark_read(
    conn: Connection, notification_id: int, *, user_id: int, now: datetime
) -> Notification | None:
    row = await conn.fetchrow(_MARK_READ, notification_id, user_id, now)
    return None if row is None else _notification(row)


async def latest_id(conn: Connection, user_id: int) -> int:
    """The user's newest notification id (0 when none): where a fresh stream starts."""
    found: int | None = await conn.fetchval(
        "SELECT max(id) FROM notifications WHERE user_id = $1", user_id
    )
    return found or 0
