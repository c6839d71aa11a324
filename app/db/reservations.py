"""SQL for reservations."""

from datetime import datetime

from app.db.pool import Connection

_NO_SHOW_STARTS = """
    SELECT start_time FROM reservations
    WHERE user_id = $1 AND status = 'NO_SHOW' AND start_time > $2 AND start_time <= $3
    ORDER BY start_time DESC
"""


async def no_show_starts(
    conn: Connection, user_id: int, *, after: datetime, until: datetime
) -> list[datetime]:
    """Start times of the user's no-shows in ``(after, until]``, latest first."""
    return [row["start_time"] for row in await conn.fetch(_NO_SHOW_STARTS, user_id, after, until)]
