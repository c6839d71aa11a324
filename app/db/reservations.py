"""SQL for reservations. Every state change is one conditional UPDATE: the WHERE clause
holds the rule (status, owner, time window), so two requests racing on one row can't
both pass it."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from app.db.pool import Connection
from app.errors import error_for_constraint
from app.models import Reservation, ReservationStatus

Scope = Literal["upcoming", "history", "all"]

# Columns of a Reservation, from `reservations r` joined to `seats s` and `branches b`.
COLUMNS = """
    r.id, r.user_id, r.seat_id, s.branch_id, b.name AS branch, s.area, s.label,
    r.start_time, r.end_time, r.status, r.created_at, r.checked_in_at, r.cancelled_at,
    r.cancel_reason, r.offer_expires_at,
    b.checkin_early_minutes AS branch_checkin_early_minutes,
    b.grace_minutes AS branch_grace_minutes
"""
_JOIN_SEAT = "JOIN seats s ON s.id = r.seat_id JOIN branches b ON b.id = s.branch_id"


def branch_minutes(column: str, default: str) -> str:
    """The branch ``b``'s own policy value in minutes as an interval, else the global
    setting passed as the interval parameter ``default`` (app/services/policy.py)."""
    return f"coalesce(b.{column} * interval '1 minute', {default}::interval)"


# What booking needs to know first, in one round trip: the seat, and the user's recent
# no-shows (fair use).
_BOOKING_CONTEXT = """
    SELECT s.status, b.name AS branch,
           ARRAY(SELECT n.start_time FROM reservations n
                 WHERE n.user_id = $2 AND n.status = 'NO_SHOW'
                   AND n.start_time > $3 AND n.start_time <= $4) AS no_show_starts
    FROM seats s JOIN branches b ON b.id = s.branch_id
    WHERE s.id = $1
"""

# Advisory lock namespaces (the two-int form): bookings of one seat, and of one user.
SEAT_LOCK, USER_LOCK = 71_001, 71_002

# Two conflicting inserts checked against an exclusion constraint wait on each other's
# uncommitted row, and PostgreSQL breaks that tie only after deadlock_timeout (1 s) by
# aborting one. So bookings of one seat, and of one user, first queue on advisory locks
# (seat, then user: one order for everyone, no cycles); held to the end of the statement's
# transaction, they make the constraint check meet only committed rows. The constraints
# still decide who wins. FOR SHARE on the seat: staff closing it (an UPDATE) waits for
# this booking to commit and then cancels it, or the booking sees it closed.
#
# The booking was judged by one branch's rules ($7) at one version ($8): it inserts only
# if, now that the locks are held, the seat is still that branch's and the rules are
# still at that version (read by dlsms_rules_version, migration 0006: a staff change
# bumps it while holding every seat's lock, so it commits before or after this insert,
# never during). Otherwise it inserts nothing and answers what it found, and the caller
# judges again by the current rules; nothing judged by stale rules is ever committed.
_INSERT = f"""
    WITH locked AS MATERIALIZED (
        SELECT pg_advisory_xact_lock({SEAT_LOCK}, ($2::bigint % 2147483647)::int) AS seat,
               pg_advisory_xact_lock({USER_LOCK}, ($1::bigint % 2147483647)::int) AS usr
    ), s AS MATERIALIZED (
        SELECT seats.id, seats.branch_id, seats.area, seats.label FROM seats, locked
        WHERE seats.id = $2 AND seats.status = 'ACTIVE' FOR SHARE OF seats
    ), v AS MATERIALIZED (
        SELECT dlsms_rules_version(s.branch_id) AS rules_version FROM s
    ), r AS (
        INSERT INTO reservations (user_id, seat_id, start_time, end_time, status,
                                  created_at, updated_at)
        SELECT $1, s.id, $3, $4, 'CONFIRMED', $5, $5 FROM s, v
        WHERE s.branch_id = $7 AND v.rules_version = $8
        -- $6, $9: refuse (insert nothing) when the user has $9 no-shows since $6 (then
        -- a suspension is possible), so that the caller can look closer (fair use);
        -- NULL: no such guard.
          AND ($6::timestamptz IS NULL OR (
            SELECT count(*) FROM (
                SELECT 1 FROM reservations n
                WHERE n.user_id = $1 AND n.status = 'NO_SHOW' AND n.start_time > $6
                LIMIT $9) AS no_shows) < $9)
        RETURNING *
    )
    SELECT {COLUMNS}, v.rules_version
    FROM s CROSS JOIN v JOIN branches b ON b.id = s.branch_id LEFT JOIN r ON r.seat_id = s.id
"""

_GET = f"SELECT {COLUMNS} FROM reservations r {_JOIN_SEAT} WHERE r.id = $1"

_SCOPES: dict[Scope, tuple[str, str]] = {
    # (condition on $3 = now, order)
    "upcoming": ("r.end_time > $3", "r.start_time, r.id"),
    "history": (
        "r.end_time <= $3 AND r.end_time > $3 - interval '30 days'",
        "r.start_time DESC, r.id DESC",
    ),
    "all": ("$3::timestamptz IS NOT NULL", "r.start_time DESC, r.id DESC"),  # $3 unused
}


def _list_sql(scope: Scope) -> str:
    condition, order = _SCOPES[scope]
    return f"""
        SELECT {COLUMNS}, count(*) OVER () AS total
        FROM reservations r {_JOIN_SEAT}
        WHERE r.user_id = $1 AND ($2::text IS NULL OR r.status = $2) AND {condition}
        ORDER BY {order}
        LIMIT $4 OFFSET $5
    """


_LIST = {scope: _list_sql(scope) for scope in _SCOPES}

# $2: the owner, or NULL for staff acting on anyone's reservation.
_CHECK_IN = f"""
    UPDATE reservations r SET status = 'CHECKED_IN', checked_in_at = $3, updated_at = $3
    FROM seats s JOIN branches b ON b.id = s.branch_id
    WHERE r.id = $1 AND s.id = r.seat_id AND ($2::bigint IS NULL OR r.user_id = $2)
      AND r.status = 'CONFIRMED'
      AND $3 BETWEEN r.start_time - {branch_minutes("checkin_early_minutes", "$4")}
                 AND r.start_time + {branch_minutes("grace_minutes", "$5")}
    RETURNING {COLUMNS}
"""

# The old end_time comes from the locked row, so the caller learns which time was freed.
_CHECK_OUT = f"""
    WITH old AS (SELECT id, end_time FROM reservations WHERE id = $1 FOR UPDATE)
    UPDATE reservations r
    SET status = 'COMPLETED', end_time = least(r.end_time, $3), updated_at = $3
    FROM old, seats s JOIN branches b ON b.id = s.branch_id
    WHERE r.id = old.id AND s.id = r.seat_id AND r.user_id = $2
      AND r.status = 'CHECKED_IN' AND r.start_time < $3
    RETURNING {COLUMNS}, old.end_time AS booked_until
"""

# HELD offers can always be declined; CONFIRMED ones until the check-in deadline
# (after it the reservation is a no-show waiting for the sweep).
_CANCEL = f"""
    UPDATE reservations r
    SET status = 'CANCELLED', cancelled_at = $3, cancel_reason = $5, updated_at = $3
    FROM seats s JOIN branches b ON b.id = s.branch_id
    WHERE r.id = $1 AND s.id = r.seat_id AND r.user_id = $2
      AND (r.status = 'HELD' OR (r.status = 'CONFIRMED'
                                 AND $3 <= r.start_time + {branch_minutes("grace_minutes", "$4")}))
    RETURNING {COLUMNS}
"""

_NO_SHOW_STARTS = """
    SELECT start_time FROM reservations
    WHERE user_id = $1 AND status = 'NO_SHOW' AND start_time > $2 AND start_time <= $3
    ORDER BY start_time DESC
"""


@dataclass(frozen=True)
class BookingContext:
    seat_status: str
    branch: str
    no_show_starts: list[datetime]


def _reservation(row: asyncpg.Record) -> Reservation:
    return Reservation.model_validate(dict(row))


async def booking_context(
    conn: Connection, seat_id: int, user_id: int, *, no_shows_after: datetime, now: datetime
) -> BookingContext | None:
    row = await conn.fetchrow(_BOOKING_CONTEXT, seat_id, user_id, no_shows_after, now)
    if row is None:
        return None
    return BookingContext(row["status"], row["branch"], list(row["no_show_starts"]))


@dataclass(frozen=True)
class RulesChanged:
    """The insert found the seat's branch or its rules version other than the booking
    was judged by, and inserted nothing."""

    branch_id: int
    rules_version: int


async def insert(
    conn: Connection,
    *,
    user_id: int,
    seat_id: int,
    start: datetime,
    end: datetime,
    now: datetime,
    unless_no_shows_since: datetime | None,
    no_show_limit: int,
    judged_by: tuple[int, int],
) -> Reservation | RulesChanged | None:
    """A CONFIRMED reservation, if the seat is still the branch's and its rules still at
    the version ``judged_by`` = (branch id, rules version), else RulesChanged; or None
    when the seat is missing or not ACTIVE, or the user has ``no_show_limit`` no-shows
    after ``unless_no_shows_since`` (when given).

    Overlaps raise SeatConflict / UserOverlap (from the constraint that fired). A
    deadlock abort (40P01) propagates: the unit of work runs again."""
    args = (user_id, seat_id, start, end, now, unless_no_shows_since, *judged_by, no_show_limit)
    try:
        if conn.is_in_transaction():
            # A savepoint: a refused insert leaves the caller's transaction usable (an
            # idempotent booking stores the refusal as its answer).
            async with conn.transaction():
                row = await conn.fetchrow(_INSERT, *args)
        else:
            row = await conn.fetchrow(_INSERT, *args)
    except (asyncpg.ExclusionViolationError, asyncpg.ForeignKeyViolationError) as exc:
        raise error_for_constraint(exc) from exc
    if row is None:
        return None
    if row["id"] is None:
        found = (row["branch_id"], row["rules_version"])
        return None if found == judged_by else RulesChanged(*found)
    fields = dict(row)
    del fields["rules_version"]
    return Reservation.model_validate(fields)


async def get(conn: Connection, reservation_id: int) -> Reservation | None:
    row = await conn.fetchrow(_GET, reservation_id)
    return None if row is None else _reservation(row)


async def list_for_user(
    conn: Connection,
    user_id: int,
    *,
    scope: Scope,
    status: ReservationStatus | None,
    now: datetime,
    limit: int,
    offset: int,
) -> tuple[list[Reservation], int]:
    status_value = status.value if status else None
    rows = await conn.fetch(_LIST[scope], user_id, status_value, now, limit, offset)
    if rows:
        return [_reservation(row) for row in rows], rows[0]["total"]
    if offset == 0:
        return [], 0
    # Past the last page: count without paging.
    counted = await conn.fetch(_LIST[scope], user_id, status_value, now, 1, 0)
    return [], counted[0]["total"] if counted else 0


async def check_in(
    conn: Connection,
    reservation_id: int,
    *,
    user_id: int | None,
    now: datetime,
    early: timedelta,
    grace: timedelta,
) -> Reservation | None:
    """CONFIRMED -> CHECKED_IN inside the window; None when the row did not qualify."""
    row = await conn.fetchrow(_CHECK_IN, reservation_id, user_id, now, early, grace)
    return None if row is None else _reservation(row)


async def check_out(
    conn: Connection, reservation_id: int, *, user_id: int, now: datetime
) -> tuple[Reservation, datetime] | None:
    """CHECKED_IN -> COMPLETED with end_time cut to ``now``; also the end it had before."""
    row = await conn.fetchrow(_CHECK_OUT, reservation_id, user_id, now)
    if row is None:
        return None
    return _reservation(row), row["booked_until"]


async def cancel(
    conn: Connection,
    reservation_id: int,
    *,
    user_id: int,
    now: datetime,
    grace: timedelta,
    reason: str,
) -> Reservation | None:
    row = await conn.fetchrow(_CANCEL, reservation_id, user_id, now, grace, reason)
    return None if row is None else _reservation(row)


async def no_show_starts(
    conn: Connection, user_id: int, *, after: datetime, until: datetime
) -> list[datetime]:
    """Start times of the user's no-shows in ``(after, until]``, latest first."""
    return [row["start_time"] for row in await conn.fetch(_NO_SHOW_STARTS, user_id, after, until)]


# A claimed offer becomes an ordinary booking.
_CONFIRM_HELD = f"""
    UPDATE reservations r SET status = 'CONFIRMED', offer_expires_at = NULL, updated_at = $2
    FROM seats s JOIN branches b ON b.id = s.branch_id
    WHERE r.id = $1 AND s.id = r.seat_id AND r.status = 'HELD'
    RETURNING {COLUMNS}
"""
# Withdrawing an offer (declined, entry left, seat closed).
_CANCEL_HELD = f"""
    UPDATE reservations r
    SET status = 'CANCELLED', cancelled_at = $2, cancel_reason = $3, updated_at = $2
    FROM seats s JOIN branches b ON b.id = s.branch_id
    WHERE r.id = $1 AND s.id = r.seat_id AND r.status = 'HELD'
    RETURNING {COLUMNS}
"""


async def confirm_held(
    conn: Connection, reservation_id: int, *, now: datetime
) -> Reservation | None:
    row = await conn.fetchrow(_CONFIRM_HELD, reservation_id, now)
    return None if row is None else _reservation(row)


async def cancel_held(
    conn: Connection, reservation_id: int, *, now: datetime, reason: str
) -> Reservation | None:
    row = await conn.fetchrow(_CANCEL_HELD, reservation_id, now, reason)
    return None if row is None else _reservation(row)
