"""SQL for the background sweeps. Each is one conditional UPDATE over a batch picked
with FOR UPDATE SKIP LOCKED: instances sweeping at once take disjoint rows, and a row
whose status already changed no longer matches, so each row changes exactly once."""

from datetime import datetime, timedelta

import asyncpg

from app.db.pool import Connection
from app.db.reservations import COLUMNS, branch_minutes
from app.models import Reservation

# $1 now, $2 the global grace, $3 batch size. Each reservation's grace is its branch's
# (app/services/policy.py); a grace is never negative, so start_time < now bounds the scan.
_NO_SHOWS = f"""
    WITH due AS (
        SELECT r.id FROM reservations r
        JOIN seats s ON s.id = r.seat_id JOIN branches b ON b.id = s.branch_id
        WHERE r.status = 'CONFIRMED' AND r.start_time < $1::timestamptz
          AND r.start_time < $1::timestamptz - {branch_minutes("grace_minutes", "$2")}
        ORDER BY r.start_time LIMIT $3
        FOR UPDATE OF r SKIP LOCKED
    )
    UPDATE reservations r SET status = 'NO_SHOW', updated_at = $1
    FROM due, seats s JOIN branches b ON b.id = s.branch_id
    WHERE r.id = due.id AND s.id = r.seat_id AND r.status = 'CONFIRMED'
    RETURNING {COLUMNS}
"""
_COMPLETIONS = f"""
    WITH due AS (
        SELECT id FROM reservations
        WHERE status = 'CHECKED_IN' AND end_time <= $1
        ORDER BY end_time LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    UPDATE reservations r SET status = 'COMPLETED', updated_at = $1
    FROM due, seats s JOIN branches b ON b.id = s.branch_id
    WHERE r.id = due.id AND s.id = r.seat_id AND r.status = 'CHECKED_IN'
    RETURNING {COLUMNS}
"""
_EXPIRED_OFFERS = f"""
    WITH due AS (
        SELECT id FROM reservations
        WHERE status = 'HELD' AND offer_expires_at < $1
        ORDER BY offer_expires_at LIMIT $3
        FOR UPDATE SKIP LOCKED
    )
    UPDATE reservations r
    SET status = 'CANCELLED', cancelled_at = $1, cancel_reason = $2, updated_at = $1
    FROM due, seats s JOIN branches b ON b.id = s.branch_id
    WHERE r.id = due.id AND s.id = r.seat_id AND r.status = 'HELD'
    RETURNING {COLUMNS}
"""


def _rows(rows: list[asyncpg.Record]) -> list[Reservation]:
    return [Reservation.model_validate(dict(row)) for row in rows]


async def mark_no_shows(
    conn: Connection, *, now: datetime, grace: timedelta, batch: int
) -> list[Reservation]:
    """CONFIRMED and not checked in by start + grace -> NO_SHOW."""
    return _rows(await conn.fetch(_NO_SHOWS, now, grace, batch))


async def complete_checked_in(conn: Connection, *, now: datetime, batch: int) -> list[Reservation]:
    """CHECKED_IN whose end_time has come -> COMPLETED."""
    return _rows(await conn.fetch(_COMPLETIONS, now, batch))


async def cancel_expired_offers(
    conn: Connection, *, now: datetime, reason: str, batch: int
) -> list[Reservation]:
    """HELD past offer_expires_at -> CANCELLED."""
    return _rows(await conn.fetch(_EXPIRED_OFFERS, now, reason, batch))


# The reminder sweep (issue 15). $1 now, $2 the lead (REMINDER_MINUTES), $3 batch size.
# CONFIRMED, starting within the lead, booked at least the lead before its start (a
# booking made later gets none) and not reminded yet; reminded_at makes it once.
_REMINDERS = f"""
    WITH due AS (
        SELECT id FROM reservations
        WHERE status = 'CONFIRMED' AND reminded_at IS NULL
          AND start_time > $1::timestamptz AND start_time <= $1::timestamptz + $2::interval
          AND created_at <= start_time - $2::interval
        ORDER BY start_time LIMIT $3
        FOR UPDATE SKIP LOCKED
    )
    UPDATE reservations r SET reminded_at = $1
    FROM due, seats s JOIN branches b ON b.id = s.branch_id
    WHERE r.id = due.id AND s.id = r.seat_id AND r.status = 'CONFIRMED' AND r.reminded_at IS NULL
    RETURNING {COLUMNS}
"""


async def mark_reminded(
    conn: Connection, *, now: datetime, lead: timedelta, batch: int
) -> list[Reservation]:
    """CONFIRMED reservations whose reminder is due, marked reminded."""
    return _rows(await conn.fetch(_REMINDERS, now, lead, batch))
