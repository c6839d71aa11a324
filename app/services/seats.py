"""Seat discovery: listings, one seat's day, availability for an interval, branch counts."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter

from app.cache import Computed, ListingSlot, Lookup, SeatCache
from app.db import seats as seats_db
from app.db.pool import Connection, Pool, connection
from app.errors import NotFound
from app.schemas.rendered import Rendered
from app.schemas.seats import (
    AvailabilityOut,
    BranchOut,
    Interval,
    SeatDetailOut,
    SeatList,
    SeatQuery,
)
from app.services import branches as branches_service


def _asked_range(query: SeatQuery, now: datetime) -> seats_db.Range[datetime]:
    # The schema holds the pair to "both or neither, end after start".
    if query.start_time is None or query.end_time is None:
        return seats_db.point(now)
    return seats_db.interval(query.start_time, query.end_time)


async def list_seats(
    pool: Pool, cache: SeatCache, query: SeatQuery, *, slot: ListingSlot, now: datetime
) -> Rendered[SeatList]:
    """The listing (built as JSON by PostgreSQL), from the cache when it holds a valid one."""
    lookup = await cache.read(slot, now)
    if lookup.body is not None:
        return Rendered(SeatList, lookup.body)

    async def compute() -> Computed:
        async with connection(pool) as conn:
            about_now = query.start_time is None
            if about_now:
                state = await branches_service.open_now(conn, now=now)
                closed, hours_change = state.closed, state.valid_until
            else:
                closed = await branches_service.closed_branches(
                    conn, start=query.start_time or now, end=query.end_time, now=now
                )
                hours_change = None
            body = await _list_seats(conn, query, _asked_range(query, now), closed)
            valid_until = await _valid_until(conn, cache, lookup, about_now=about_now, now=now)
        # An answer about now also stops being true when a branch opens or closes.
        valid_until = _earliest(valid_until, hours_change)
        await cache.keep(
            slot, lookup, body, answer_branch=query.branch, now=now, valid_until=valid_until
        )
        return Computed(body, valid_until)

    return Rendered(SeatList, (await cache.computed_once(lookup, now, compute)).body)


async def _valid_until(
    conn: Connection, cache: SeatCache, lookup: Lookup, *, about_now: bool, now: datetime
) -> datetime | None:
    # An answer about an interval changes only by writes (which bump the generation);
    # one about the present moment also changes when a reservation starts or ends.
    if not about_now or not cache.storable(lookup):
        return None
    return await seats_db.next_availability_change(conn, now)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


async def _list_seats(
    conn: Connection, query: SeatQuery, asked: seats_db.Range[datetime], closed: list[int]
) -> bytes:
    seat_filter = seats_db.SeatFilter(
        branch=query.branch,
        area=query.area,
        has_power=query.has_power,
        has_monitor=query.has_monitor,
        status=query.status,
        available_only=query.available_only,
    )
    return await seats_db.list_seats_json(
        conn, asked, seat_filter, closed_branches=closed, limit=query.limit, offset=query.offset
    )


async def seat_day(
    conn: Connection, seat_id: int, day: date | None, *, now: datetime
) -> SeatDetailOut:
    schedule = await branches_service.schedule_of_seat(conn, seat_id, now=now)
    seat = await seats_db.get_seat(
        conn,
        seat_id,
        seats_db.point(now),
        branch_closed=schedule is not None and not schedule.is_open(now),
    )
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
    asked = seats_db.interval(start, end)
    schedule = await branches_service.schedule_of_seat(conn, seat_id, now=now)
    seat = await seats_db.get_seat(
        conn,
        seat_id,
        asked,
        branch_closed=schedule is not None and schedule.opening(start, end) is None,
    )
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


_BRANCH_LIST = TypeAdapter(list[BranchOut])


async def branches(
    pool: Pool, cache: SeatCache, *, slot: ListingSlot, now: datetime
) -> Rendered[BranchOut]:
    """Every branch with live counts (cached like listings)."""
    lookup = await cache.read(slot, now)
    if lookup.body is not None:
        return Rendered(BranchOut, lookup.body, many=True)

    async def compute() -> Computed:
        async with connection(pool) as conn:
            state = await branches_service.open_now(conn, now=now)
            rows = await seats_db.branch_summaries(conn, now, closed=state.closed)
            valid_until = await _valid_until(conn, cache, lookup, about_now=True, now=now)
            state.annotate(rows)
        # open_now turns at the next opening or closing: the answer is true until then.
        valid_until = _earliest(valid_until, state.valid_until)
        body = _BRANCH_LIST.dump_json([BranchOut.model_validate(row) for row in rows])
        # A stray ?branch= is ignored by the route, not by the key: store only without one.
        await cache.keep(slot, lookup, body, answer_branch=None, now=now, valid_until=valid_until)
        return Computed(body, valid_until)

    return Rendered(BranchOut, (await cache.computed_once(lookup, now, compute)).body, many=True)
