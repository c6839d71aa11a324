"""SQL for branch quotas: what one student has used at a branch on a local day or in an
ISO week (app/services/quotas.py holds the rule)."""

from datetime import datetime

from app.db.pool import Connection
from app.db.reservations import SEAT_LOCK, USER_LOCK
from app.models import QUOTA_STATUSES

_COUNTED = ", ".join(f"'{status.value}'" for status in QUOTA_STATUSES)

# The same two locks, in the same order, as a booking's insert (app/db/reservations.py
# _INSERT): held to the end of the transaction, they make "count, then insert" one step
# for this student, and never form a cycle with a booking.
_LOCK = f"""
    SELECT pg_advisory_xact_lock({SEAT_LOCK}, ($1::bigint % 2147483647)::int),
           pg_advisory_xact_lock({USER_LOCK}, ($2::bigint % 2147483647)::int)
"""

# The student $1's counted reservations at branch $2 starting in [$3, $4), and their
# booked time inside [$5, $6) in seconds; reservation $7 (being changed) left out.
_USED = f"""
    SELECT count(*) FILTER (WHERE r.start_time >= $3 AND r.start_time < $4) AS bookings,
           coalesce(sum(extract(epoch FROM least(r.end_time, $6) - greatest(r.start_time, $5)))
                    FILTER (WHERE r.start_time < $6 AND r.end_time > $5), 0) AS seconds
    FROM reservations r JOIN seats s ON s.id = r.seat_id
    WHERE r.user_id = $1 AND s.branch_id = $2 AND r.status IN ({_COUNTED})
      AND r.start_time < greatest($4, $6) AND r.end_time > least($3, $5)
      AND r.id IS DISTINCT FROM $7
"""


async def lock_for_booking(conn: Connection, *, seat_id: int, user_id: int) -> None:
    """Queue behind the seat's and the student's other bookings (inside a transaction)."""
    await conn.execute(_LOCK, seat_id, user_id)


async def used(
    conn: Connection,
    *,
    user_id: int,
    branch_id: int,
    day: tuple[datetime, datetime],
    week: tuple[datetime, datetime],
    leave_out: int | None = None,
) -> tuple[int, float]:
    """(bookings starting within ``day``, booked hours inside ``week``)."""
    row = await conn.fetchrow(_USED, user_id, branch_id, *day, *week, leave_out)
    assert row is not None
    return int(row["bookings"]), float(row["seconds"]) / 3600
