"""Seat discovery: listings, one seat's day, availability for an interval, branch counts."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.db import seats as seats_db
from app.db.pool import Connection
from app.errors import InvalidInterval, NotFound
from app.schemas.seats import (
    AvailabilityOut,
    BranchOut,
    Interval,
    SeatDetailOut,
    SeatList,
    SeatOut,
    SeatQuery,
)


def _asked_range(query: SeatQuery, now: datetime) -> seats_db.Range[datetime]:
    if (query.start_time is None) != (query.end_time is None):
        raise InvalidInterval("give both start_time and end_time, or neither")
    if query.start_time is None or query.end_time is None:
        return seats_db.point(now)
    check_order(query.start_time, query.end_time)
    return seats_db.interval(query.start_time, query.end_time)


def check_order(start: datetime, end: datetime) -> None:
    if end <= start:
        raise InvalidInterval("end_time must be after start_time")


async def list_seats(conn: Connection, query: SeatQuery, *, now: datetime) -> SeatList:
    seat_filter = seats_db.SeatFilter(
        branch=query.branch,
        area=query.area,
        has_power=query.has_power,
        has_monitor=query.has_monitor,
        status=query.status,
        available_only=query.available_only,
    )
    rows, total = await seats_db.list_seats(
        conn, _asked_range(query, now), seat_filter, limit=query.limit, offset=query.offset
    )
    return SeatList(items=[SeatOut.model_validate(row) for row in rows], total=total)


async def seat_day(
    conn: Connection, seat_id: int, day: date | None, *, now: datetime
) -> SeatDetailOut:
    seat = await seats_db.get_seat(conn, seat_id, seats_db.point(now))
    if seat is None:
        raise NotFound("No such seat")
    zone = ZoneInfo(str(seat["timezone"]))
    day = day or now.astimezone(zone).date()
    # The branch's day, which is not always 24 h long (daylight saving changes).
    day_start = datetime.combine(day, time(), tzinfo=zone)
    day_end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
    busy = await seats_db.busy_intervals(conn, seat_id, seats_db.interval(day_start, day_end))
    return SeatDetailOut.model_validate(
        {**seat, "busy": [Interval(start_time=s, end_time=e) for s, e in busy]}
    )


async def availability(
    conn: Connection, seat_id: int, start: datetime, end: datetime, *, now: datetime
) -> AvailabilityOut:
    check_order(start, end)
    asked = seats_db.interval(start, end)
    seat = await seats_db.get_seat(conn, seat_id, asked)
    if seat is None:
        raise NotFound("No such seat")
    conflicts = await seats_db.busy_intervals(conn, seat_id, asked)
    return AvailabilityOut(
        seat_id=seat_id,
        start_time=start,
        end_time=end,
        available=bool(seat["available"]),
        conflicts=[Interval(start_time=s, end_time=e) for s, e in conflicts],
    )


async def branches(conn: Connection, *, now: datetime) -> list[BranchOut]:
    return [BranchOut.model_validate(row) for row in await seats_db.branch_summaries(conn, now)]
