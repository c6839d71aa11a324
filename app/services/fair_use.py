"""Fair use: too many no-shows suspend booking and waitlisting for a while."""

from datetime import datetime, timedelta

from app.db import reservations as reservations_db
from app.db.pool import Connection
from app.settings import Settings


def suspension_end(
    no_show_starts: list[datetime], settings: Settings, now: datetime
) -> datetime | None:
    """When the current suspension ends, or None.

    A no-show that brings the count within ``NO_SHOW_WINDOW_DAYS`` (counted back from
    it) to ``NO_SHOW_LIMIT`` starts a suspension of ``SUSPENSION_DAYS`` from its start
    time. The latest such no-show whose suspension has not ended wins."""
    window = timedelta(days=settings.NO_SHOW_WINDOW_DAYS)
    length = timedelta(days=settings.SUSPENSION_DAYS)
    starts = sorted(no_show_starts, reverse=True)
    for i, start in enumerate(starts):
        if start + length <= now:
            break  # this and all older ones ended their suspensions already
        in_window = sum(1 for other in starts[i:] if other > start - window)
        if in_window >= settings.NO_SHOW_LIMIT:
            return start + length
    return None


def lookback(settings: Settings) -> timedelta:
    """How far back a no-show can still matter for a suspension running now."""
    return timedelta(days=settings.NO_SHOW_WINDOW_DAYS + settings.SUSPENSION_DAYS)


async def suspended_until(
    conn: Connection, settings: Settings, *, user_id: int, now: datetime
) -> datetime | None:
    starts = await reservations_db.no_show_starts(
        conn, user_id, after=now - lookback(settings), until=now
    )
    return suspension_end(starts, settings, now)
