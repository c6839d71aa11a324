"""SQL for seat suggestions ("find me a seat now").

One statement answers the common case: the seats free for the asked interval in the
branches open for all of it, each with the start of its next active reservation inside
the look-ahead, the student's habits, and its rank (ORDER BY ... LIMIT in PostgreSQL, so
only the chosen rows travel). The reservations near the interval are found once through
``reservations_active_range_idx`` (GiST on the range of active reservations) and grouped
by seat; a per-seat probe of 2,000 seats would cost more than that single range scan.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.db import statuses
from app.db.pool import Connection

_ACTIVE = statuses.active("r")
# Booked, in the habits' sense: what the student really took (no cancellations, no
# unclaimed waitlist offers).
_BOOKED = "r.status IN ('CONFIRMED', 'CHECKED_IN', 'COMPLETED', 'NO_SHOW')"

# $1 user id or NULL, $2 habits since, $3 habits until (now). The student's bookings
# are read once (reservations_user_start_idx), then counted two ways.
_HABITS = f"""
    booked AS MATERIALIZED (
        SELECT hs.branch_id, hs.area, r.start_time
        FROM reservations r JOIN seats hs ON hs.id = r.seat_id
        WHERE r.user_id = $1 AND {_BOOKED} AND r.start_time >= $2 AND r.start_time < $3
    ),
    habits AS MATERIALIZED (
        SELECT
            (SELECT branch_id FROM booked GROUP BY branch_id
             ORDER BY count(*) DESC, max(start_time) DESC LIMIT 1) AS branch_id,
            (SELECT area FROM booked GROUP BY area
             ORDER BY count(*) DESC, max(start_time) DESC LIMIT 1) AS area
    )
"""

# The branches that may be suggested: their closing time (NULL: none in the look-ahead).
# $4 branch ids, $5 closing times, $6 branch name or NULL, $7 duration in hours,
# $8 the start, $3 now (the branch's own booking horizon, when staff set one).
_BRANCHES = """
    open_branch AS (
        SELECT o.branch_id, o.closes_at, b.name
        FROM unnest($4::bigint[], $5::timestamptz[]) AS o(branch_id, closes_at)
        JOIN branches b ON b.id = o.branch_id
        WHERE ($6::text IS NULL OR b.name = $6)
          AND (b.max_reservation_hours IS NULL OR $7::float8 <= b.max_reservation_hours)
          AND (b.booking_horizon_days IS NULL
               OR $8::timestamptz <= $3::timestamptz + b.booking_horizon_days * interval '1 day')
    )
"""

# Preferences: $10 area, $11 has_power, $12 has_monitor (NULL: not asked).
_MATCHES = """
    (($10::text IS NOT NULL AND s.area = $10)::int
     + ($11::boolean IS NOT NULL AND s.has_power = $11)::int
     + ($12::boolean IS NOT NULL AND s.has_monitor = $12)::int)
"""

# The rank as one number, compared whole: matched preferences outweigh any length of
# free time (1000 each), free time after the interval in half hours up to the look-ahead
# (48 at most, 10 each) outweighs habits (usual branch 2, usual area 1).
# $9 the interval's end, $13 the end of the look-ahead.
_SCORE = f"""
    ({_MATCHES} * 1000
     + 10 * floor(date_part('epoch', coalesce(c.free_until, $13::timestamptz) - $9::timestamptz)
                  / 1800)::int
     + 2 * coalesce((s.branch_id = h.branch_id)::int, 0)
     + coalesce((s.area = h.area)::int, 0))::float8
"""

_SEAT_COLUMNS = """
    s.id, ob.name AS branch, s.area, s.label, s.has_power, s.has_monitor, s.status,
    s.branch_id, (s.branch_id = h.branch_id) IS TRUE AS usual_branch,
    (s.area = h.area) IS TRUE AS usual_area
"""

# $8 start, $9 end, $13 end of the look-ahead, $14 limit.
_FREE_SEATS = f"""
    WITH {_HABITS}, {_BRANCHES},
    near AS MATERIALIZED (
        SELECT r.seat_id, bool_or(r.start_time < $9) AS taken, min(r.start_time) AS next_start
        FROM reservations r
        WHERE {_ACTIVE}
          AND tstzrange(r.start_time, r.end_time, '[)') && tstzrange($8, $13, '[)')
        GROUP BY r.seat_id
    )
    SELECT {_SEAT_COLUMNS}, c.free_until, c.free_until = ob.closes_at AS at_closing,
           {_SCORE} AS score, {_MATCHES} AS matches
    FROM seats s
    JOIN open_branch ob ON ob.branch_id = s.branch_id
    LEFT JOIN near n ON n.seat_id = s.id
    CROSS JOIN habits h
    CROSS JOIN LATERAL (
        SELECT nullif(least(n.next_start, ob.closes_at, $13::timestamptz), $13::timestamptz)
            AS free_until) c
    WHERE s.status = 'ACTIVE' AND n.taken IS NOT TRUE
    ORDER BY score DESC, coalesce(c.free_until, 'infinity') DESC, s.id
    LIMIT $14
"""

# The fallback's input: every ACTIVE seat of the branches open some time today, with its
# active reservations from $8 to $13 (the end of the day plus the duration), sorted.
_SEATS_WITH_BUSY = f"""
    WITH {_HABITS}, {_BRANCHES},
    near AS MATERIALIZED (
        SELECT r.seat_id,
               array_agg(r.start_time ORDER BY r.start_time) AS starts,
               array_agg(r.end_time ORDER BY r.start_time) AS ends
        FROM reservations r
        -- A wide window (the rest of the day and more): only the asked branches' seats.
        JOIN seats rs ON rs.id = r.seat_id AND rs.branch_id IN (SELECT branch_id FROM open_branch)
        WHERE {_ACTIVE}
          AND tstzrange(r.start_time, r.end_time, '[)') && tstzrange($8, $13, '[)')
        GROUP BY r.seat_id
    )
    SELECT {_SEAT_COLUMNS}, {_MATCHES} AS matches,
           coalesce(n.starts, '{{}}') AS starts, coalesce(n.ends, '{{}}') AS ends
    FROM seats s
    JOIN open_branch ob ON ob.branch_id = s.branch_id
    LEFT JOIN near n ON n.seat_id = s.id
    CROSS JOIN habits h
    -- $9 (the asked end) is not needed here; typed so both statements take one tuple.
    WHERE s.status = 'ACTIVE' AND $9::timestamptz IS NOT NULL
    ORDER BY s.id
"""


@dataclass(frozen=True)
class Ask:
    """What a suggestion query needs, already checked and turned into instants."""

    user_id: int | None
    habits_since: datetime
    now: datetime
    branch_ids: list[int]
    closes_at: list[datetime | None]
    branch: str | None
    duration_hours: float
    start: datetime
    end: datetime
    area: str | None
    has_power: bool | None
    has_monitor: bool | None
    look_ahead: datetime

    def args(self) -> tuple[object, ...]:
        return (
            self.user_id,
            self.habits_since,
            self.now,
            self.branch_ids,
            self.closes_at,
            self.branch,
            self.duration_hours,
            self.start,
            self.end,
            self.area,
            self.has_power,
            self.has_monitor,
            self.look_ahead,
        )


async def free_seats(conn: Connection, ask: Ask, *, limit: int) -> list[dict[str, Any]]:
    """The best ``limit`` seats free for [start, end), best first, with ``free_until``
    (the next reservation's start or the closing time, NULL past the look-ahead),
    ``score``, ``matches`` (preferences met) and the habit flags."""
    return [dict(row) for row in await conn.fetch(_FREE_SEATS, *ask.args(), limit)]


async def seats_with_busy(conn: Connection, ask: Ask) -> list[dict[str, Any]]:
    """Every ACTIVE seat of the given branches with the start and end times of its active
    reservations overlapping [start, look_ahead), sorted (``starts``, ``ends``)."""
    return [dict(row) for row in await conn.fetch(_SEATS_WITH_BUSY, *ask.args())]
