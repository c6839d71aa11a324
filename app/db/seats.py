"""SQL for seats, branches and seat availability.

Availability is answered by PostgreSQL with the GiST index behind the
``reservations_seat_no_overlap`` constraint: the ``status IN (...)`` predicate below
matches the constraint's WHERE clause word for word so the planner can use it.
"""

from dataclasses import dataclass
from datetime import datetime

from asyncpg import Range

__all__ = ["Range", "SeatFilter", "interval", "point"]

from app.db import statuses
from app.db.pool import Connection
from app.models import SeatStatus
from app.realtime.events import SeatState

_ACTIVE = statuses.active("r")


def _available_during(param: str) -> str:
    """Seat ``s`` is free for the whole tstzrange parameter ``param``."""
    return f"""
    s.status = 'ACTIVE' AND NOT EXISTS (
        SELECT 1 FROM reservations r
        WHERE r.seat_id = s.id AND {_ACTIVE}
          AND tstzrange(r.start_time, r.end_time, '[)') && {param}::tstzrange)
"""


# $1: the tstzrange availability is asked for.
_SEAT_AVAILABLE = _available_during("$1")

# What an active reservation makes of a seat, strongest first when several overlap the
# asked time: a checked-in one (occupied) over a confirmed one (booked) over an offer (held).
_RANK = "max(CASE r.status WHEN 'CHECKED_IN' THEN 3 WHEN 'CONFIRMED' THEN 2 ELSE 1 END)"
_RANK_WORD = "CASE {rank} WHEN 3 THEN 'occupied' WHEN 2 THEN 'booked' WHEN 1 THEN 'held' END"


def _state(taken: str, closed: str, status: str = "s.status") -> str:
    """The seat's state word for the web app's map: its status when not ACTIVE, else what
    ``taken`` (a rank subquery, NULL when nothing active overlaps) makes of it, else
    ``outside_hours`` when ``closed`` (its branch is not open for the asked time)."""
    return f"""
    CASE {status} WHEN 'MAINTENANCE' THEN 'maintenance' WHEN 'CLOSED' THEN 'closed'
         ELSE coalesce({_RANK_WORD.format(rank=taken)},
                       CASE WHEN {closed} THEN 'outside_hours' ELSE 'free' END) END
"""


def _in_closed(param: str) -> str:
    """Seat ``s``'s branch is among the bigint[] parameter ``param``: branches not open
    for the asked time (app/services/branches.py ``closed_branches``)."""
    return f"(s.branch_id = ANY({param}::bigint[]))"


# The seats taken during $1 and how, found once through reservations_active_range_idx.
_BUSY_SEATS = f"""
    busy AS MATERIALIZED (
        SELECT r.seat_id, {_RANK} AS rank FROM reservations r
        WHERE {_ACTIVE} AND tstzrange(r.start_time, r.end_time, '[)') && $1::tstzrange
        GROUP BY r.seat_id)
"""
_FILTERS = """
    ($2::text IS NULL OR b.name = $2)
    AND ($3::text IS NULL OR s.area = $3)
    AND ($4::boolean IS NULL OR s.has_power = $4)
    AND ($5::boolean IS NULL OR s.has_monitor = $5)
    AND ($6::text IS NULL OR s.status = $6)
"""


def _matching(closed: str) -> str:
    """``matching``: the seats the filters let through, each with its busy rank (NULL:
    nothing active overlaps $1), found by one hash join against ``busy`` rather than a
    scan of ``busy`` per seat, and whether its branch is among the bigint[] parameter
    ``closed`` (not open for $1); ``judged``: the same with ``available``."""
    return f"""
    matching AS (
        SELECT s.id, b.name AS branch, s.area, s.label, s.has_power, s.has_monitor, s.status,
               busy.rank, {_in_closed(closed)} AS closed
        FROM seats s JOIN branches b ON b.id = s.branch_id
        LEFT JOIN busy ON busy.seat_id = s.id
        WHERE {_FILTERS}),
    judged AS (
        SELECT *, (status = 'ACTIVE' AND rank IS NULL AND NOT closed) AS available
        FROM matching)
"""


_LIST = f"""
    WITH {_BUSY_SEATS}, {_matching("$10")}
    SELECT id, branch, area, label, has_power, has_monitor, status, available,
           {_state("rank", "closed", "status")} AS state,
           count(*) OVER () AS total
    FROM judged
    WHERE NOT $7::boolean OR available
    ORDER BY id
    LIMIT $8 OFFSET $9
"""

# The same page as the SeatList JSON body, built by PostgreSQL: the hot listing path
# then decodes no rows and validates no models in Python. Each item is a row turned
# into JSON whole (json_agg of a record: compact, and cheaper than json_build_object's
# nine key/value arguments per seat).
_LIST_JSON = f"""
    WITH page AS ({_LIST})
    SELECT json_build_object(
        'items', coalesce(json_agg(item ORDER BY item.id), '[]'::json),
        'total', coalesce(max(page.total), 0))::text
    FROM page, LATERAL (
        SELECT page.id, page.branch, page.area, page.label, page.has_power,
               page.has_monitor, page.status, page.available, page.state) item
"""

_COUNT = f"""
    WITH {_BUSY_SEATS}, {_matching("$8")}
    SELECT count(*) FROM judged WHERE NOT $7::boolean OR available
"""

_TAKEN_DURING = f"""(
    SELECT {_RANK} FROM reservations r
    WHERE r.seat_id = s.id AND {_ACTIVE}
      AND tstzrange(r.start_time, r.end_time, '[)') && $1::tstzrange)"""

_GET = f"""
    SELECT s.id, b.name AS branch, b.timezone, s.area, s.label, s.has_power, s.has_monitor,
           s.status, {_SEAT_AVAILABLE} AND NOT $3::boolean AS available,
           {_state(_TAKEN_DURING, "$3::boolean")} AS state
    FROM seats s JOIN branches b ON b.id = s.branch_id
    WHERE s.id = $2
"""

_BUSY = f"""
    SELECT r.start_time, r.end_time FROM reservations r
    WHERE r.seat_id = $1 AND {_ACTIVE}
      AND tstzrange(r.start_time, r.end_time, '[)') && $2::tstzrange
    ORDER BY r.start_time
"""

# $1 is a point: at most one active reservation per seat overlaps it (the exclusion
# constraint), so a seat's busy rank is that reservation's status. The busy seats are
# found once through reservations_active_range_idx and hash-joined, not probed per seat.
_BRANCHES = f"""
    WITH {_BUSY_SEATS}
    SELECT b.id, b.name, b.timezone,
           count(s.id) AS total_seats,
           count(s.id) FILTER (WHERE s.status = 'ACTIVE' AND busy.rank IS NULL
                               AND NOT b.id = ANY($3::bigint[])) AS available_now,
           count(s.id) FILTER (WHERE busy.rank IN (1, 2)) AS reserved_now,
           count(s.id) FILTER (WHERE busy.rank = 3) AS occupied_now,
           count(s.id) FILTER (WHERE s.has_power) AS with_power,
           count(s.id) FILTER (WHERE s.has_monitor) AS with_monitor,
           coalesce(array_agg(DISTINCT s.area ORDER BY s.area)
                    FILTER (WHERE s.id IS NOT NULL), '{{}}') AS areas
    FROM branches b
    LEFT JOIN seats s ON s.branch_id = b.id
    LEFT JOIN busy ON busy.seat_id = s.id
    WHERE $2::bigint IS NULL OR b.id = $2
    GROUP BY b.id
    ORDER BY b.name
"""


# The next instant after $1 at which an active reservation starts or ends: until then,
# every answer about "now" stays true (unless a write bumps the cache generation).
_NEXT_CHANGE = f"""
    SELECT least(
        (SELECT min(r.start_time) FROM reservations r WHERE {_ACTIVE} AND r.start_time > $1),
        (SELECT min(r.end_time) FROM reservations r WHERE {_ACTIVE} AND r.end_time > $1))
"""


@dataclass(frozen=True)
class SeatFilter:
    branch: str | None = None
    area: str | None = None
    has_power: bool | None = None
    has_monitor: bool | None = None
    status: SeatStatus | None = None
    available_only: bool = False


def point(moment: datetime) -> Range[datetime]:
    """The range holding just ``moment``: overlaps [start, end) iff start <= moment < end."""
    return Range(moment, moment, lower_inc=True, upper_inc=True)


def interval(start: datetime, end: datetime) -> Range[datetime]:
    """The half-open range [start, end)."""
    return Range(start, end, lower_inc=True, upper_inc=False)


def _filter_args(when: Range[datetime], f: SeatFilter) -> tuple[object, ...]:
    status = f.status.value if f.status else None
    return (when, f.branch, f.area, f.has_power, f.has_monitor, status, f.available_only)


async def list_seats_json(
    conn: Connection,
    when: Range[datetime],
    f: SeatFilter,
    *,
    closed_branches: list[int],
    limit: int,
    offset: int,
) -> bytes:
    """One page as the JSON body ``{"items": [...], "total": N}``; seats of
    ``closed_branches`` (not open for ``when``) are not available."""
    args = _filter_args(when, f)
    body: str = await conn.fetchval(_LIST_JSON, *args, limit, offset, closed_branches)
    if offset and body.endswith('"total" : 0}'):  # past the last page: count without it
        total = await conn.fetchval(_COUNT, *args, closed_branches)
        body = body.removesuffix("0}") + f"{total}}}"
    return body.encode()


async def get_seat(
    conn: Connection, seat_id: int, when: Range[datetime], *, branch_closed: bool = False
) -> dict[str, object] | None:
    """The seat and whether it is available for ``when`` (never while ``branch_closed``)."""
    row = await conn.fetchrow(_GET, when, seat_id, branch_closed)
    return None if row is None else dict(row)


async def busy_intervals(
    conn: Connection, seat_id: int, within: Range[datetime]
) -> list[tuple[datetime, datetime]]:
    """Active reservations of the seat overlapping ``within`` (no identities)."""
    rows = await conn.fetch(_BUSY, seat_id, within)
    return [(row["start_time"], row["end_time"]) for row in rows]


async def branch_summaries(
    conn: Connection, now: datetime, branch_id: int | None = None, *, closed: list[int]
) -> list[dict[str, object]]:
    """Every branch's live counts (or one branch's: ``branch_id``); a branch in
    ``closed`` has no seat available now."""
    return [dict(row) for row in await conn.fetch(_BRANCHES, point(now), branch_id, closed)]


async def next_availability_change(conn: Connection, now: datetime) -> datetime | None:
    """When the present availability of some seat next changes by the clock alone."""
    moment: datetime | None = await conn.fetchval(_NEXT_CHANGE, now)
    return moment


_STATES = f"""
    SELECT s.id AS seat_id, b.name AS branch, s.status,
           {_SEAT_AVAILABLE} AND NOT {_in_closed("$3")} AS available
    FROM seats s JOIN branches b ON b.id = s.branch_id
    WHERE s.id = ANY($2::bigint[]) OR s.branch_id = ANY($4::bigint[])
    ORDER BY s.id
"""
_SEAT_REF = """
    SELECT s.id, s.branch_id, b.name AS branch, s.status
    FROM seats s JOIN branches b ON b.id = s.branch_id WHERE s.id = $1
"""
_BRANCH_ID = "SELECT id FROM branches WHERE name = $1"


async def seat_states(
    conn: Connection,
    seat_ids: list[int],
    now: datetime,
    *,
    closed: list[int],
    of_branches: list[int] | None = None,
) -> list[SeatState]:
    """Each seat's availability at ``now`` (none in the ``closed`` branches), for
    ``seat.availability`` events: of ``seat_ids`` and of every seat of ``of_branches``."""
    rows = await conn.fetch(_STATES, point(now), seat_ids, closed, of_branches or [])
    return [SeatState(**dict(row)) for row in rows]


# The seats whose availability at $2 differs from that at $1 ($1, $2: points; $3 < $4 the
# same instants): only a reservation starting or ending in ($3, $4] can make it differ,
# and the two boundary indexes (reservations_active_start_idx, _end_idx) find those.
_CHANGED_BY_CLOCK = f"""
    WITH moved AS (
        SELECT r.seat_id FROM reservations r
        WHERE {_ACTIVE} AND r.start_time > $3 AND r.start_time <= $4
        UNION
        SELECT r.seat_id FROM reservations r
        WHERE {_ACTIVE} AND r.end_time > $3 AND r.end_time <= $4
    )
    SELECT s.id AS seat_id, b.name AS branch, s.status,
           {_available_during("$2")} AND NOT {_in_closed("$5")} AS available
    FROM moved JOIN seats s ON s.id = moved.seat_id JOIN branches b ON b.id = s.branch_id
    WHERE ({_available_during("$1")}) <> ({_available_during("$2")})
    ORDER BY s.id
"""


async def changed_by_clock(
    conn: Connection, since: datetime, now: datetime, *, closed: list[int]
) -> list[SeatState]:
    """The seats whose present availability at ``now`` differs from that at ``since``
    (earlier) because a reservation started or ended in between, with their state at
    ``now`` (none available in the ``closed`` branches)."""
    rows = await conn.fetch(_CHANGED_BY_CLOCK, point(since), point(now), since, now, closed)
    return [SeatState(**dict(row)) for row in rows]


async def seat_ref(conn: Connection, seat_id: int) -> dict[str, object] | None:
    """The seat's id, branch_id, branch (name) and status."""
    row = await conn.fetchrow(_SEAT_REF, seat_id)
    return None if row is None else dict(row)


async def branch_id(conn: Connection, name: str) -> int | None:
    found: int | None = await conn.fetchval(_BRANCH_ID, name)
    return found
