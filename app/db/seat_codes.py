"""SQL for seat codes: what a scan needs to know about a seat, and a branch's code sheet."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.db import statuses
from app.db.pool import Connection
from app.db.reservations import branch_minutes
from app.db.seats import interval

_ACTIVE = statuses.active("r")

# One round trip for a scan: the seat, whether anything active covers $6 ([now, now +
# tolerance), matched like seats.py so the GiST index serves it), the caller's
# CONFIRMED reservation here whose check-in window (its branch's, else [start - $4,
# start + $5]) holds now
# (one not yet ended first), the caller's CHECKED_IN one here that has not ended (a
# repeat scan; checked in early, it may not have started; checked in by a concurrent
# tap whose clock read came a moment after ours, up to $7 later), and when the seat's
# next active reservation starts.
_CONTEXT = f"""
    SELECT s.status, b.timezone,
           NOT EXISTS (
               SELECT 1 FROM reservations r
               WHERE r.seat_id = s.id AND {_ACTIVE}
                 AND tstzrange(r.start_time, r.end_time, '[)') && $6::tstzrange) AS free_now,
           (SELECT r.id FROM reservations r
            WHERE r.seat_id = s.id AND r.user_id = $2 AND r.status = 'CONFIRMED'
              AND $3 BETWEEN r.start_time - {branch_minutes("checkin_early_minutes", "$4")}
                         AND r.start_time + {branch_minutes("grace_minutes", "$5")}
            ORDER BY r.end_time <= $3, r.start_time
            LIMIT 1) AS to_check_in,
           (SELECT r.id FROM reservations r
            WHERE r.seat_id = s.id AND r.user_id = $2 AND r.status = 'CHECKED_IN'
              AND r.checked_in_at <= $3 + $7::interval AND $3 < r.end_time
            ORDER BY r.start_time
            LIMIT 1) AS checked_in_here,
           (SELECT min(r.start_time) FROM reservations r
            WHERE r.seat_id = s.id AND {_ACTIVE} AND r.start_time > $3) AS next_start
    FROM seats s JOIN branches b ON b.id = s.branch_id
    WHERE s.id = $1
"""

_BRANCH_SEATS = """
    SELECT s.id AS seat_id, s.label, s.area, count(*) OVER () AS total
    FROM seats s JOIN branches b ON b.id = s.branch_id
    WHERE b.name = $1
    ORDER BY s.area, s.label, s.id
    LIMIT $2 OFFSET $3
"""
_BRANCH_SEAT_COUNT = """
    SELECT count(*) FROM seats s JOIN branches b ON b.id = s.branch_id WHERE b.name = $1
"""


@dataclass(frozen=True)
class ScanContext:
    seat_status: str
    timezone: str
    free_now: bool
    to_check_in: int | None
    checked_in_here: int | None
    next_start: datetime | None


@dataclass(frozen=True)
class SeatLine:
    seat_id: int
    label: str
    area: str


async def scan_context(
    conn: Connection,
    seat_id: int,
    user_id: int,
    *,
    now: datetime,
    early: timedelta,
    grace: timedelta,
    tolerance: timedelta,
) -> ScanContext | None:
    """``free_now``: nothing active overlaps [now, now + tolerance)."""
    soon = interval(now, now + tolerance)
    row = await conn.fetchrow(_CONTEXT, seat_id, user_id, now, early, grace, soon, tolerance)
    if row is None:
        return None
    return ScanContext(
        seat_status=row["status"],
        timezone=row["timezone"],
        free_now=row["free_now"],
        to_check_in=row["to_check_in"],
        checked_in_here=row["checked_in_here"],
        next_start=row["next_start"],
    )


async def branch_seats(
    conn: Connection, branch: str, *, limit: int, offset: int
) -> tuple[list[SeatLine], int]:
    """A page of the branch's seats (any status) by area and label, and how many it has."""
    rows = await conn.fetch(_BRANCH_SEATS, branch, limit, offset)
    if rows:
        total: int = rows[0]["total"]
    else:
        total = await conn.fetchval(_BRANCH_SEAT_COUNT, branch)
    return [SeatLine(row["seat_id"], row["label"], row["area"]) for row in rows], total
