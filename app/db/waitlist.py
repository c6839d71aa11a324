"""SQL for waitlist entries and the offers made from them.

A seat's queue is its WAITING seat-level entries; a branch's queue is its WAITING
branch-level entries; both in (created_at, id) order. An offer is a HELD reservation
in the entrant's name, so the exclusion constraints keep everyone else off the seat
until it is claimed or lapses.
"""

from datetime import datetime

import asyncpg

from app.db import statuses
from app.db.pool import Connection
from app.db.seats import Range
from app.errors import error_for_constraint
from app.models import WaitlistEntry

_ACTIVE = statuses.ACTIVE

# `position` counts from 1 within the entry's queue, for WAITING entries only.
_COLUMNS = """
    w.id, w.user_id, w.seat_id, w.branch_id, b.name AS branch, w.start_time, w.end_time,
    w.status, w.offer_expires_at, w.reservation_id, w.created_at,
    CASE WHEN w.status = 'WAITING' THEN (
        SELECT count(*) FROM waitlist_entries q
        WHERE q.status = 'WAITING' AND q.branch_id = w.branch_id
          AND q.seat_id IS NOT DISTINCT FROM w.seat_id
          AND (q.created_at, q.id) <= (w.created_at, w.id)
    ) END AS position
"""
_FROM = "waitlist_entries w JOIN branches b ON b.id = w.branch_id"

_INSERT = """
    INSERT INTO waitlist_entries (user_id, branch_id, seat_id, start_time, end_time,
                                  created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $6)
    RETURNING id
"""
_GET = f"SELECT {_COLUMNS} FROM {_FROM} WHERE w.id = $1"
_LIST = f"""
    SELECT {_COLUMNS}, count(*) OVER () AS total FROM {_FROM}
    WHERE w.user_id = $1 ORDER BY w.created_at DESC, w.id DESC LIMIT $2 OFFSET $3
"""
_COUNT = "SELECT count(*) FROM waitlist_entries WHERE user_id = $1"

# Is any ACTIVE seat of the target free for the whole interval? ($1 seat or NULL,
# $2 branch, $3 the interval)
_FREE_SEAT_EXISTS = f"""
    SELECT EXISTS (
        SELECT 1 FROM seats s
        WHERE s.branch_id = $2 AND ($1::bigint IS NULL OR s.id = $1) AND s.status = 'ACTIVE'
          AND NOT EXISTS (
              SELECT 1 FROM reservations r
              WHERE r.seat_id = s.id AND r.{_ACTIVE}
                AND tstzrange(r.start_time, r.end_time, '[)') && $3::tstzrange))
"""

# The next entry to offer time on seat $1 (of branch $2) released over $3: the seat's
# own queue first, then the branch's; the entry's whole interval must be free on the
# seat; entries already tried in this round ($5) are skipped. Whether its owner is free
# then is left to the insert (reservations_user_no_overlap refuses it, and the caller
# tries the next entry). SKIP LOCKED: an entry another transaction is offering right
# now is not ours to take.
#
# Written so that no plan can be slow, whatever the statistics say. Right after a rush,
# before autovacuum analyzes, the tables look empty to the planner, and it answered an
# anti-join per candidate ("does a booking of this seat overlap it?", "does one of this
# owner?") from the range-only GiST index, walking every booking of the slot for each of
# thousands of candidates: 3 s per call, a --no-analyze rush's 300 cancels took a
# minute. The seat's bookings are read once (seat_busy: one probe of one seat) and each
# candidate is checked against that short list.
_NEXT_CANDIDATE = f"""
    WITH seat_busy AS MATERIALIZED (
        SELECT tstzrange(r.start_time, r.end_time, '[)') AS busy FROM reservations r
        WHERE r.seat_id = $1 AND r.{_ACTIVE} AND r.end_time > $4
    )
    SELECT w.id, w.user_id, w.start_time, w.end_time FROM waitlist_entries w
    WHERE w.status = 'WAITING' AND w.branch_id = $2 AND (w.seat_id = $1 OR w.seat_id IS NULL)
      AND tstzrange(w.start_time, w.end_time, '[)') && $3::tstzrange
      AND w.end_time > $4
      AND NOT (w.id = ANY($5::bigint[]))
      AND EXISTS (SELECT 1 FROM seats s WHERE s.id = $1 AND s.status = 'ACTIVE')
      AND NOT EXISTS (
          SELECT 1 FROM seat_busy b WHERE b.busy && tstzrange(w.start_time, w.end_time, '[)'))
    ORDER BY w.seat_id IS NULL, w.created_at, w.id
    LIMIT 1
    FOR UPDATE OF w SKIP LOCKED
"""
# The ACTIVE seats of branch $1 that WAITING entries overlapping $2 ask for: their own
# seat, or every seat of the branch for an entry that takes any.
_SEATS_WANTED = """
    SELECT s.id FROM seats s
    WHERE s.branch_id = $1 AND s.status = 'ACTIVE' AND EXISTS (
        SELECT 1 FROM waitlist_entries w
        WHERE w.status = 'WAITING' AND w.branch_id = $1
          AND (w.seat_id = s.id OR w.seat_id IS NULL)
          AND tstzrange(w.start_time, w.end_time, '[)') && $2::tstzrange)
    ORDER BY s.id
"""
_INSERT_HELD = """
    INSERT INTO reservations (user_id, seat_id, start_time, end_time, status, offer_expires_at,
                              created_at, updated_at)
    VALUES ($1, $2, $3, $4, 'HELD', $5, $6, $6)
    RETURNING id
"""
_MARK_OFFERED = """
    UPDATE waitlist_entries
    SET status = 'OFFERED', reservation_id = $2, offer_expires_at = $3, updated_at = $4
    WHERE id = $1
"""

# Leaving: WAITING or OFFERED -> CANCELLED; returns the offer's reservation, if any.
_CANCEL = f"""
    WITH w AS (
        UPDATE waitlist_entries SET status = 'CANCELLED', updated_at = $3
        WHERE id = $1 AND user_id = $2 AND status IN ('WAITING', 'OFFERED')
        RETURNING *
    )
    SELECT {_COLUMNS} FROM w JOIN branches b ON b.id = w.branch_id
"""

# Claiming: an OFFERED entry whose deadline has not passed -> CLAIMED.
_CLAIM = f"""
    WITH w AS (
        UPDATE waitlist_entries SET status = 'CLAIMED', updated_at = $3
        WHERE id = $1 AND user_id = $2 AND status = 'OFFERED' AND offer_expires_at >= $3
        RETURNING *
    )
    SELECT {_COLUMNS} FROM w JOIN branches b ON b.id = w.branch_id
"""

# The entry holding offer (HELD reservation) $1 changes to $2 (EXPIRED, CANCELLED, or
# WAITING again keeping its place when staff withdraw the offer).
_SETTLE_OFFER = """
    UPDATE waitlist_entries
    SET status = $2, offer_expires_at = NULL,
        reservation_id = CASE WHEN $2 = 'WAITING' THEN NULL ELSE reservation_id END,
        updated_at = $3
    WHERE reservation_id = $1 AND status = 'OFFERED'
    RETURNING id, user_id, seat_id
"""


def _entry(row: asyncpg.Record) -> WaitlistEntry:
    return WaitlistEntry.model_validate(dict(row))


async def insert(
    conn: Connection,
    *,
    user_id: int,
    branch_id: int,
    seat_id: int | None,
    start: datetime,
    end: datetime,
    now: datetime,
) -> WaitlistEntry:
    try:
        entry_id = await conn.fetchval(_INSERT, user_id, branch_id, seat_id, start, end, now)
    except (asyncpg.ExclusionViolationError, asyncpg.ForeignKeyViolationError) as exc:
        raise error_for_constraint(exc) from exc
    # Read back in a new statement: its position counts the row it just inserted.
    entry = await get(conn, entry_id)
    assert entry is not None
    return entry


async def get(conn: Connection, entry_id: int) -> WaitlistEntry | None:
    row = await conn.fetchrow(_GET, entry_id)
    return None if row is None else _entry(row)


async def list_for_user(
    conn: Connection, user_id: int, *, limit: int, offset: int
) -> tuple[list[WaitlistEntry], int]:
    rows = await conn.fetch(_LIST, user_id, limit, offset)
    if rows:
        return [_entry(row) for row in rows], rows[0]["total"]
    return [], await conn.fetchval(_COUNT, user_id) if offset else 0


async def free_seat_exists(
    conn: Connection, *, seat_id: int | None, branch_id: int, within: Range[datetime]
) -> bool:
    return bool(await conn.fetchval(_FREE_SEAT_EXISTS, seat_id, branch_id, within))


async def next_candidate(
    conn: Connection,
    *,
    seat_id: int,
    branch_id: int,
    released: Range[datetime],
    now: datetime,
    skip: list[int],
) -> asyncpg.Record | None:
    return await conn.fetchrow(_NEXT_CANDIDATE, seat_id, branch_id, released, now, skip)


async def seats_wanted(conn: Connection, branch_id: int, within: Range[datetime]) -> list[int]:
    return [row["id"] for row in await conn.fetch(_SEATS_WANTED, branch_id, within)]


async def insert_held(
    conn: Connection,
    *,
    user_id: int,
    seat_id: int,
    start: datetime,
    end: datetime,
    expires_at: datetime,
    now: datetime,
) -> int | None:
    """The HELD reservation's id, or None when a constraint says someone got there first.

    A deadlock abort (40P01) propagates: the whole unit of work runs again."""
    try:
        async with conn.transaction():  # a savepoint: the caller's transaction goes on
            reservation_id: int = await conn.fetchval(
                _INSERT_HELD, user_id, seat_id, start, end, expires_at, now
            )
    except asyncpg.ExclusionViolationError:
        return None
    return reservation_id


async def mark_offered(
    conn: Connection, entry_id: int, *, reservation_id: int, expires_at: datetime, now: datetime
) -> None:
    await conn.execute(_MARK_OFFERED, entry_id, reservation_id, expires_at, now)


async def cancel(
    conn: Connection, entry_id: int, *, user_id: int, now: datetime
) -> WaitlistEntry | None:
    row = await conn.fetchrow(_CANCEL, entry_id, user_id, now)
    return None if row is None else _entry(row)


async def claim(
    conn: Connection, entry_id: int, *, user_id: int, now: datetime
) -> WaitlistEntry | None:
    row = await conn.fetchrow(_CLAIM, entry_id, user_id, now)
    return None if row is None else _entry(row)


async def settle_offer(
    conn: Connection, reservation_id: int, *, status: str, now: datetime
) -> asyncpg.Record | None:
    """Move the entry behind offer ``reservation_id`` to ``status``; its id/user/seat."""
    return await conn.fetchrow(_SETTLE_OFFER, reservation_id, status, now)
