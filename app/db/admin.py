"""SQL for staff: branches and seats, anyone's reservations, statistics, the audit log."""

from datetime import datetime
from typing import Any

import asyncpg

from app.db import statuses
from app.db.pool import Connection
from app.db.reservations import COLUMNS as RESERVATION_COLUMNS
from app.errors import error_for_constraint
from app.models import Reservation, ReservationStatus

_BRANCH_COLUMNS = "id, name, timezone, created_at"
_INSERT_BRANCH = f"""
    INSERT INTO branches (name, timezone, created_at) VALUES ($1, $2, $3)
    RETURNING {_BRANCH_COLUMNS}
"""

_SEAT_COLUMNS = """
    s.id, s.branch_id, b.name AS branch, s.area, s.label, s.has_power, s.has_monitor, s.status
"""
_INSERT_SEAT = f"""
    WITH s AS (
        INSERT INTO seats (branch_id, area, label, has_power, has_monitor, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $6)
        RETURNING *
    )
    SELECT {_SEAT_COLUMNS} FROM s JOIN branches b ON b.id = s.branch_id
"""
# The row lock makes bookings (FOR SHARE on the seat) wait until this change commits.
_LOCK_SEAT = f"""
    SELECT {_SEAT_COLUMNS} FROM seats s JOIN branches b ON b.id = s.branch_id
    WHERE s.id = $1 FOR UPDATE OF s
"""
_UPDATE_SEAT = f"""
    WITH s AS (
        UPDATE seats SET area = $2, label = $3, has_power = $4, has_monitor = $5, status = $6,
                         updated_at = $7
        WHERE id = $1
        RETURNING *
    )
    SELECT {_SEAT_COLUMNS} FROM s JOIN branches b ON b.id = s.branch_id
"""

# Active reservations of seat $1 that have not ended by $2, locked for the cascade.
_ACTIVE_ON_SEAT = f"""
    SELECT {RESERVATION_COLUMNS}
    FROM reservations r JOIN seats s ON s.id = r.seat_id JOIN branches b ON b.id = s.branch_id
    WHERE r.seat_id = $1 AND {statuses.active("r")} AND r.end_time > $2
    ORDER BY r.start_time
    FOR UPDATE OF r
"""
# A checked-in reservation under way ends now: its final interval is what was used.
_CANCEL_FOR_STAFF = f"""
    UPDATE reservations
    SET status = 'CANCELLED', cancelled_at = $2, cancel_reason = $3, updated_at = $2,
        end_time = CASE WHEN status = 'CHECKED_IN' AND start_time < $2
                        THEN least(end_time, $2) ELSE end_time END
    WHERE id = ANY($1::bigint[]) AND {statuses.ACTIVE}
"""

_LIST_RESERVATIONS = f"""
    SELECT {RESERVATION_COLUMNS}, count(*) OVER () AS total
    FROM reservations r JOIN seats s ON s.id = r.seat_id JOIN branches b ON b.id = s.branch_id
    WHERE ($1::bigint IS NULL OR r.seat_id = $1)
      AND ($2::bigint IS NULL OR r.user_id = $2)
      AND ($3::text IS NULL OR r.status = $3)
      AND ($4::timestamptz IS NULL OR r.end_time > $4)
      AND ($5::timestamptz IS NULL OR r.start_time < $5)
    ORDER BY r.start_time DESC, r.id DESC
    LIMIT $6 OFFSET $7
"""

# Definitions: see app/schemas/admin.py (StatsRow) and the contract.
_STATS = """
    WITH counted AS (
        SELECT s.branch_id, r.status, r.checked_in_at,
               -- the final interval, clipped to the window
               greatest(extract(epoch FROM least(r.end_time, $2) - greatest(r.start_time, $1)), 0)
                   AS seconds_in_window
        FROM reservations r JOIN seats s ON s.id = r.seat_id
        WHERE r.start_time >= $1 AND r.start_time < $2
    )
    SELECT b.name AS branch,
           count(c.status) AS reservations,
           count(c.status) FILTER (WHERE c.checked_in_at IS NOT NULL) AS checked_in,
           count(c.status) FILTER (WHERE c.status = 'NO_SHOW') AS no_shows,
           count(c.status) FILTER (WHERE c.status = 'CANCELLED') AS cancelled,
           coalesce(sum(c.seconds_in_window) FILTER (WHERE c.checked_in_at IS NOT NULL), 0)
               AS used_seconds,
           (SELECT count(*) FROM seats a WHERE a.branch_id = b.id AND a.status = 'ACTIVE')
               * extract(epoch FROM $2 - $1) AS open_seconds
    FROM branches b LEFT JOIN counted c ON c.branch_id = b.id
    WHERE ($3::text IS NULL OR b.name = $3)
    GROUP BY b.id
    ORDER BY b.name
"""

# Reservations starting in [$1, $2) by the hour of their start on the branch's clock; every
# hour 0..23 of every branch listed, zeros included.
_STATS_BY_HOUR = """
    SELECT b.name AS branch, h.hour, count(r.id) AS reservations
    FROM branches b
    CROSS JOIN generate_series(0, 23) AS h(hour)
    LEFT JOIN (reservations r JOIN seats s ON s.id = r.seat_id)
           ON s.branch_id = b.id
          AND r.start_time >= $1 AND r.start_time < $2
          AND extract(hour FROM r.start_time AT TIME ZONE b.timezone) = h.hour
    WHERE ($3::text IS NULL OR b.name = $3)
    GROUP BY b.name, h.hour
    ORDER BY b.name, h.hour
"""

_INSERT_AUDIT = """
    INSERT INTO audit_log (actor_id, action, entity, entity_id, before, after, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
_LIST_AUDIT = """
    SELECT id, actor_id, action, entity, entity_id, before, after, created_at,
           count(*) OVER () AS total
    FROM audit_log ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2
"""


def _plain(row: asyncpg.Record) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "total"}


async def insert_branch(
    conn: Connection, *, name: str, timezone: str, now: datetime
) -> dict[str, Any]:
    try:
        row = await conn.fetchrow(_INSERT_BRANCH, name, timezone, now)
    except asyncpg.UniqueViolationError as exc:
        raise error_for_constraint(exc) from exc
    assert row is not None
    return dict(row)


async def insert_seat(
    conn: Connection,
    *,
    branch_id: int,
    area: str,
    label: str,
    has_power: bool,
    has_monitor: bool,
    now: datetime,
) -> dict[str, Any]:
    try:
        row = await conn.fetchrow(_INSERT_SEAT, branch_id, area, label, has_power, has_monitor, now)
    except asyncpg.UniqueViolationError as exc:
        raise error_for_constraint(exc) from exc
    assert row is not None
    return dict(row)


async def lock_seat(conn: Connection, seat_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(_LOCK_SEAT, seat_id)
    return None if row is None else dict(row)


async def update_seat(
    conn: Connection, seat_id: int, values: dict[str, Any], *, now: datetime
) -> dict[str, Any]:
    """Write every editable field from ``values`` (the merged old and new row)."""
    try:
        row = await conn.fetchrow(
            _UPDATE_SEAT,
            seat_id,
            values["area"],
            values["label"],
            values["has_power"],
            values["has_monitor"],
            values["status"],
            now,
        )
    except asyncpg.UniqueViolationError as exc:
        raise error_for_constraint(exc) from exc
    assert row is not None
    return dict(row)


async def active_on_seat(conn: Connection, seat_id: int, *, now: datetime) -> list[Reservation]:
    rows = await conn.fetch(_ACTIVE_ON_SEAT, seat_id, now)
    return [Reservation.model_validate(dict(row)) for row in rows]


async def cancel_for_staff(
    conn: Connection, reservation_ids: list[int], *, now: datetime, reason: str
) -> None:
    await conn.execute(_CANCEL_FOR_STAFF, reservation_ids, now, reason)


async def list_reservations(
    conn: Connection,
    *,
    seat_id: int | None,
    user_id: int | None,
    status: ReservationStatus | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[Reservation], int]:
    args = (seat_id, user_id, status.value if status else None, start, end)
    rows = await conn.fetch(_LIST_RESERVATIONS, *args, limit, offset)
    if not rows and offset:
        counted = await conn.fetch(_LIST_RESERVATIONS, *args, 1, 0)
        return [], counted[0]["total"] if counted else 0
    total = rows[0]["total"] if rows else 0
    return [Reservation.model_validate(_plain(row)) for row in rows], total


async def stats(
    conn: Connection, *, start: datetime, end: datetime, branch: str | None
) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(_STATS, start, end, branch)]


async def stats_by_hour(
    conn: Connection, *, start: datetime, end: datetime, branch: str | None
) -> dict[str, list[dict[str, int]]]:
    """Per branch name, 24 ``{hour, reservations}`` rows."""
    hours: dict[str, list[dict[str, int]]] = {}
    for row in await conn.fetch(_STATS_BY_HOUR, start, end, branch):
        hours.setdefault(row["branch"], []).append(
            {"hour": row["hour"], "reservations": row["reservations"]}
        )
    return hours


async def audit(
    conn: Connection,
    *,
    actor_id: int,
    action: str,
    entity: str,
    entity_id: int,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime,
) -> None:
    try:
        await conn.execute(_INSERT_AUDIT, actor_id, action, entity, entity_id, before, after, now)
    except asyncpg.ForeignKeyViolationError as exc:
        raise error_for_constraint(exc) from exc


async def list_audit(
    conn: Connection, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    rows = await conn.fetch(_LIST_AUDIT, limit, offset)
    if not rows:
        total = await conn.fetchval("SELECT count(*) FROM audit_log") if offset else 0
        return [], total
    return [_plain(row) for row in rows], rows[0]["total"]
