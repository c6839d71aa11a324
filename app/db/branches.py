"""SQL for branch hours, closures and policy (the rules' inputs; the rules themselves
are in app/services/openings.py)."""

from datetime import date, datetime
from typing import Any

import asyncpg

from app.db import statuses
from app.db.pool import Connection
from app.db.reservations import COLUMNS as RESERVATION_COLUMNS
from app.db.reservations import SEAT_LOCK
from app.errors import error_for_constraint
from app.models import Reservation

POLICY_COLUMNS = (
    "max_reservation_hours",
    "booking_horizon_days",
    "checkin_early_minutes",
    "grace_minutes",
    "claim_minutes",
    "max_bookings_per_day",
    "max_hours_per_week",
)

# Each branch's zone and template, with its closures that end on or after $1 (a local
# date; callers pass a day early enough for every zone) and, with $2, only that branch.
_SCHEDULES = """
    SELECT b.id, b.timezone, b.hours,
           coalesce(jsonb_agg(jsonb_build_object(
                        'id', c.id, 'date_from', c.date_from, 'date_to', c.date_to,
                        'reason', c.reason, 'open', c.open) ORDER BY c.date_from)
                    FILTER (WHERE c.id IS NOT NULL), '[]'::jsonb) AS closures
    FROM branches b
    LEFT JOIN branch_closures c ON c.branch_id = b.id AND c.date_to >= $1
    WHERE $2::bigint IS NULL OR b.id = $2
    GROUP BY b.id
    ORDER BY b.id
"""

# One branch's schedule, name and own policy: by branch id $1, or by the seat $3 when
# $1 is NULL; closures ending on or after the local date $2.
_RULES = f"""
    SELECT b.id, b.name, b.timezone, b.hours, b.rules_version,
           {", ".join("b." + c for c in POLICY_COLUMNS)},
           coalesce((SELECT jsonb_agg(jsonb_build_object(
                         'id', c.id, 'date_from', c.date_from, 'date_to', c.date_to,
                         'reason', c.reason, 'open', c.open) ORDER BY c.date_from)
                     FROM branch_closures c WHERE c.branch_id = b.id AND c.date_to >= $2),
                    '[]'::jsonb) AS closures
    FROM branches b
    WHERE b.id = coalesce($1::bigint, (SELECT branch_id FROM seats WHERE id = $3::bigint))
"""

_POLICY = f"SELECT {', '.join(POLICY_COLUMNS)} FROM branches WHERE id = $1"
_SEAT_IDS = "SELECT id FROM seats WHERE branch_id = $1"


async def schedules(
    conn: Connection, *, since: date, branch_id: int | None = None
) -> list[dict[str, Any]]:
    """``{id, timezone, hours, closures: [{id, date_from, date_to, reason, open}]}`` per
    branch (dates as ISO text)."""
    return [dict(row) for row in await conn.fetch(_SCHEDULES, since, branch_id)]


async def rules(
    conn: Connection, *, since: date, branch_id: int | None = None, seat_id: int | None = None
) -> dict[str, Any] | None:
    """A branch's schedule (as ``schedules`` answers it), name and own policy columns, by
    branch or by one of its seats; None: no such branch or seat."""
    row = await conn.fetchrow(_RULES, branch_id, since, seat_id)
    return None if row is None else dict(row)


async def seat_ids(conn: Connection, branch_id: int) -> list[int]:
    """The ids of the branch's seats (any status)."""
    return [row["id"] for row in await conn.fetch(_SEAT_IDS, branch_id)]


async def policy(conn: Connection, branch_id: int) -> dict[str, Any] | None:
    """The branch's own policy columns (None: the global setting), or None: no branch."""
    row = await conn.fetchrow(_POLICY, branch_id)
    return None if row is None else dict(row)


# --- staff changes

_LOCK_BRANCH = "SELECT id, name, timezone, hours FROM branches WHERE id = $1 FOR UPDATE"
_SET_HOURS = "UPDATE branches SET hours = $2 WHERE id = $1"
# Every seat's booking lock (app/db/reservations.py SEAT_LOCK), in one order, then a new
# rules version (a random one, never seen before: migration 0010): bookings in flight
# finish first; later ones see the new version.
_NEW_RULES_VERSION = f"""
    WITH locked AS MATERIALIZED (
        SELECT count(pg_advisory_xact_lock({SEAT_LOCK}, (id % 2147483647)::int))
        FROM (SELECT id FROM seats WHERE branch_id = $1 ORDER BY id) ordered
    )
    UPDATE branches SET rules_version = dlsms_new_rules_version() FROM locked WHERE id = $1
"""
_LOCK_POLICY = f"SELECT name, {', '.join(POLICY_COLUMNS)} FROM branches WHERE id = $1 FOR UPDATE"
# Every active reservation of the branch that has not ended, locked for a cancellation.
_ACTIVE_IN_BRANCH = f"""
    SELECT {RESERVATION_COLUMNS}
    FROM reservations r JOIN seats s ON s.id = r.seat_id JOIN branches b ON b.id = s.branch_id
    WHERE s.branch_id = $1 AND {statuses.active("r")} AND r.end_time > $2
    ORDER BY r.start_time, r.id
    FOR UPDATE OF r
"""
_CLOSURE_COLUMNS = "id, branch_id, date_from, date_to, reason, open"
_INSERT_CLOSURE = f"""
    INSERT INTO branch_closures (branch_id, date_from, date_to, reason, open, created_at)
    VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_CLOSURE_COLUMNS}
"""
_LIST_CLOSURES = f"""
    SELECT {_CLOSURE_COLUMNS} FROM branch_closures
    WHERE branch_id = $1 AND ($2::date IS NULL OR date_to >= $2)
      AND ($3::date IS NULL OR date_from <= $3)
    ORDER BY date_from
"""
_CLOSURE_BRANCH = "SELECT branch_id FROM branch_closures WHERE id = $1"
_DELETE_CLOSURE = f"DELETE FROM branch_closures WHERE id = $1 RETURNING {_CLOSURE_COLUMNS}"


async def lock_branch(conn: Connection, branch_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(_LOCK_BRANCH, branch_id)
    return None if row is None else dict(row)


async def set_hours(conn: Connection, branch_id: int, hours: dict[str, Any]) -> None:
    await conn.execute(_SET_HOURS, branch_id, hours)


async def new_rules_version(conn: Connection, branch_id: int) -> None:
    """Mark the branch's booking rules changed, after the bookings under way (inside the
    staff change's transaction; see migration 0006)."""
    await conn.execute(_NEW_RULES_VERSION, branch_id)


async def lock_policy(conn: Connection, branch_id: int) -> dict[str, Any] | None:
    """The branch's name and own policy columns, locked for a change; None: no branch."""
    row = await conn.fetchrow(_LOCK_POLICY, branch_id)
    return None if row is None else dict(row)


async def set_policy(conn: Connection, branch_id: int, changes: dict[str, Any]) -> None:
    """Set the named policy columns (None: back to the global setting)."""
    names = [name for name in changes if name in POLICY_COLUMNS]  # never a caller's text
    if not names:
        return
    assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(names, start=2))
    await conn.execute(
        f"UPDATE branches SET {assignments} WHERE id = $1",
        branch_id,
        *(changes[name] for name in names),
    )


async def active_in_branch(conn: Connection, branch_id: int, *, now: datetime) -> list[Reservation]:
    rows = await conn.fetch(_ACTIVE_IN_BRANCH, branch_id, now)
    return [Reservation.model_validate(dict(row)) for row in rows]


async def insert_closure(
    conn: Connection,
    *,
    branch_id: int,
    date_from: date,
    date_to: date,
    reason: str,
    open_hours: list[dict[str, str]] | None,
    now: datetime,
) -> dict[str, Any]:
    try:
        row = await conn.fetchrow(
            _INSERT_CLOSURE, branch_id, date_from, date_to, reason, open_hours, now
        )
    except asyncpg.ExclusionViolationError as exc:
        raise error_for_constraint(exc) from exc
    assert row is not None
    return dict(row)


async def list_closures(
    conn: Connection, branch_id: int, *, from_date: date | None, to_date: date | None
) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(_LIST_CLOSURES, branch_id, from_date, to_date)]


async def delete_closure(conn: Connection, closure_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(_DELETE_CLOSURE, closure_id)
    return None if row is None else dict(row)


async def closure_branch(conn: Connection, closure_id: int) -> int | None:
    branch_id: int | None = await conn.fetchval(_CLOSURE_BRANCH, closure_id)
    return branch_id
