"""SQL for extending a reservation (POST /reservations/{id}/extend).

An extension writes a longer interval into an existing row, so it meets the exclusion
constraints exactly like a booking's insert, and it queues on the same advisory locks
first (app/db/reservations.py SEAT_LOCK, USER_LOCK and the comment there): seat, then
user, one order for everyone. Without them an extension and a booking of the time it
adds each wait on the other's uncommitted index entry, and PostgreSQL settles that only
by aborting one after deadlock_timeout.
"""

from datetime import datetime

import asyncpg

from app.db.pool import Connection
from app.db.reservations import COLUMNS, SEAT_LOCK, USER_LOCK
from app.errors import error_for_constraint
from app.models import Reservation

# The owner's reservation, locked: advisory locks of its seat and its owner (taken before
# the row lock, in the insert's order), then the row itself, so that what the use case
# checks cannot change before the UPDATE. A seat and an owner never change, so reading
# them before the locks is safe; the row is read again by FOR UPDATE after them.
_LOCK_OWN = f"""
    WITH locked AS MATERIALIZED (
        SELECT pg_advisory_xact_lock({SEAT_LOCK}, (seat_id % 2147483647)::int) AS seat,
               pg_advisory_xact_lock({USER_LOCK}, (user_id % 2147483647)::int) AS usr
        FROM reservations WHERE id = $1 AND user_id = $2
    )
    SELECT {COLUMNS}
    FROM locked, reservations r
    JOIN seats s ON s.id = r.seat_id JOIN branches b ON b.id = s.branch_id
    WHERE r.id = $1 AND r.user_id = $2
    FOR UPDATE OF r
"""

# The one write. Its WHERE restates the rules checked on the locked row (active, not
# ended, a later end), so it cannot lengthen a row that no longer qualifies.
_EXTEND = f"""
    UPDATE reservations r SET end_time = $2, updated_at = $3
    FROM seats s JOIN branches b ON b.id = s.branch_id
    WHERE r.id = $1 AND s.id = r.seat_id
      AND r.status IN ('CONFIRMED', 'CHECKED_IN') AND r.end_time > $3 AND r.end_time < $2
    RETURNING {COLUMNS}
"""


def _reservation(row: asyncpg.Record) -> Reservation:
    return Reservation.model_validate(dict(row))


async def lock_own(conn: Connection, reservation_id: int, *, user_id: int) -> Reservation | None:
    """The user's reservation with its seat's and owner's booking locks and its row lock
    held to the end of the transaction; None when it is missing or someone else's."""
    row = await conn.fetchrow(_LOCK_OWN, reservation_id, user_id)
    return None if row is None else _reservation(row)


async def extend(
    conn: Connection, reservation_id: int, *, end: datetime, now: datetime
) -> Reservation | None:
    """Move the end of a locked, active, not yet ended reservation to the later ``end``;
    None when it no longer qualifies.

    Taken time raises SeatConflict / UserOverlap (the constraint that fired), inside a
    savepoint so that the caller's transaction stays usable (an idempotent request
    stores the refusal as its answer)."""
    try:
        async with conn.transaction():
            row = await conn.fetchrow(_EXTEND, reservation_id, end, now)
    except asyncpg.ExclusionViolationError as exc:
        raise error_for_constraint(exc) from exc
    return None if row is None else _reservation(row)
