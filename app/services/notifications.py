"""Notifications: the caller's list, and marking one read."""

from datetime import datetime

from app.db import notifications as notifications_db
from app.db.pool import Connection
from app.errors import NotFound
from app.schemas.notifications import NotificationList, NotificationOut, NotificationQuery


async def list_own(conn: Connection, *, user_id: int, query: NotificationQuery) -> NotificationList:
    rows, total = await notifications_db.list_for_user(
        conn, user_id, unread_only=query.unread_only, limit=query.limit, offset=query.offset
    )
    return NotificationList(
        items=[NotificationOut.model_validate(n, from_attributes=True) for n in rows], total=total
    )


async def mark_read(
    conn: Connection, *, user_id: int, notification_id: int, now: datetime
) -> NotificationOut:
    found = await notifications_db.mark_read(conn, notification_id, user_id=user_id, now=now)
    if found is None:
        raise NotFound("No such notification")
    return NotificationOut.model_validate(found, from_attributes=True)
