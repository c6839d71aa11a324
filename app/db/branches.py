"""SQL for branch hours, closures and policy (the rules' inputs; the rules themselves
are in app/services/openings.py)."""

from datetime import date
from typing import Any

from app.db.pool import Connection

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

_POLICY = f"SELECT {', '.join(POLICY_COLUMNS)} FROM branches WHERE id = $1"


async def schedules(
    conn: Connection, *, since: date, branch_id: int | None = None
) -> list[dict[str, Any]]:
    """``{id, timezone, hours, closures: [{id, date_from, date_to, reason, open}]}`` per
    branch (dates as ISO text)."""
    return [dict(row) for row in await conn.fetch(_SCHEDULES, since, branch_id)]


async def policy(conn: Connection, branch_id: int) -> dict[str, Any] | None:
    """The branch's own policy columns (None: the global setting), or None: no branch."""
    row = await conn.fetchrow(_POLICY, branch_id)
    return None if row is None else dict(row)
