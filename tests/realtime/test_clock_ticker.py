"""Seat events caused by the clock alone (app/realtime/clock_ticker.py): the ticker's
``tick(now)`` on a frozen clock, its waiting in real time, and live streams on one and
two real instances."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from app.clock import SystemClock
from app.db import pool as pool_module
from app.db import seats as seats_db
from app.db.pool import Pool
from app.realtime.broker import Hub, Message, Subscription, messages
from app.realtime.clock_ticker import ClockTicker
from app.realtime.events import Changes, SeatState
from app.timeutil import utcnow
from tests.conftest import make_settings
from tests.factories import (
    HOUR,
    MINUTE,
    SECOND,
    FrozenClock,
    add_branch,
    add_reservation,
    add_seat,
    add_student,
    at,
    booked,
)
from tests.realtime.servers import EventStream, Servers, open_stream, wait_until_subscribed

NOW = at(9, 59)
T10, T11, T12 = at(10), at(11), at(12)


@pytest.fixture
async def pool(db: asyncpg.Connection, database_url: str) -> AsyncIterator[Pool]:
    # Depends on ``db``: closed before the tables are emptied.
    pool = await pool_module.create_pool(database_url, make_settings(database_url))
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def hub() -> Hub:
    return Hub()


@pytest.fixture
def ticker(pool: Pool, hub: Hub) -> ClockTicker:
    return ClockTicker(pool, hub, FrozenClock(NOW))


async def seat_in(db: asyncpg.Connection, branch: str = "Main", label: str = "A1") -> int:
    branch_id = await db.fetchval("SELECT id FROM branches WHERE name = $1", branch)
    return await add_seat(db, branch_id or await add_branch(db, branch), label)


async def book(
    db: asyncpg.Connection, seat_id: int, start: datetime, end: datetime, status: str = "CONFIRMED"
) -> int:
    user = await add_student(db, f"S{await db.fetchval('SELECT count(*) FROM users'):07d}")
    return await add_reservation(
        db, user_id=user.id, seat_id=seat_id, start=start, end=end, status=status
    )


@contextmanager
def watching(hub: Hub, branch: str | None = None) -> Iterator[Subscription]:
    with hub.branch(branch) as subscription:
        yield subscription


def drained(subscription: Subscription) -> list[dict[str, Any]]:
    found: list[Message] = []
    while not subscription.queue.empty():
        found.append(subscription.queue.get_nowait())
    return [message["seat"] for message in found]


def stream_messages(subscription: Subscription) -> list[dict[str, Any]]:
    """Seat and branch messages in order, seat ones reduced to their seat."""
    found: list[dict[str, Any]] = []
    while not subscription.queue.empty():
        message = subscription.queue.get_nowait()
        found.append(
            {"kind": "seat", "seat": message["seat"]}
            if message["kind"] == "seat"
            else {"kind": message["kind"], "branch": message["branch"]}
        )
    return found


def state(seat_id: int, available: bool, status: str = "ACTIVE") -> dict[str, Any]:
    return {"seat_id": seat_id, "branch": "Main", "available": available, "status": status}


# tick(now) on a frozen clock


async def test_tick_tells_the_seat_map_when_a_booking_starts_and_when_it_ends(
    db: asyncpg.Connection, hub: Hub, ticker: ClockTicker
) -> None:
    seat_id = await seat_in(db)
    await book(db, seat_id, T10, T11)

    with watching(hub, "Main") as stream:
        first = await ticker.tick(NOW)
        before = drained(stream)
        await ticker.tick(T10 - SECOND)
        await ticker.tick(T10)
        at_start = drained(stream)
        await ticker.tick(T10 + 30 * MINUTE)
        during = drained(stream)
        after_end = await ticker.tick(T11)
        at_end = drained(stream)

    assert first == T10 and before == []
    assert at_start == [state(seat_id, False)]
    assert during == []
    assert after_end is None and at_end == [state(seat_id, True)]


async def test_a_late_tick_catches_up_on_every_seat_that_changed_meanwhile(
    db: asyncpg.Connection, hub: Hub, ticker: ClockTicker
) -> None:
    started, ended, came_and_went = [await seat_in(db, label=f"A{n}") for n in range(3)]
    await book(db, started, T10, T12)
    await book(db, ended, NOW - HOUR, T10 + MINUTE)
    await book(db, came_and_went, T10, T10 + MINUTE)  # free before and after: no change

    with watching(hub) as stream:
        await ticker.tick(NOW)
        await ticker.tick(T11)
        told = drained(stream)

    assert told == [state(started, False), state(ended, True)]


async def test_back_to_back_bookings_change_nothing_at_the_handover(
    db: asyncpg.Connection, hub: Hub, ticker: ClockTicker
) -> None:
    seat_id = await seat_in(db)
    await book(db, seat_id, T10, T11)
    await book(db, seat_id, T11, T12, status="CHECKED_IN")

    with watching(hub) as stream:
        await ticker.tick(T10 + MINUTE)
        handover = await ticker.tick(T11)
        at_handover = drained(stream)
        await ticker.tick(T12)
        at_end = drained(stream)

    assert handover == T12 and at_handover == []
    assert at_end == [state(seat_id, True)]  # a checked-in stay ending frees the seat


async def test_inactive_bookings_and_closed_seats_tell_nothing(
    db: asyncpg.Connection, hub: Hub, ticker: ClockTicker
) -> None:
    seat_id = await seat_in(db)
    closed = await seat_in(db, label="B1")
    await db.execute("UPDATE seats SET status = 'MAINTENANCE' WHERE id = $1", closed)
    for status in ("CANCELLED", "NO_SHOW", "COMPLETED"):
        await book(db, seat_id, T10, T11, status=status)
    await book(db, closed, T10, T11)

    with watching(hub) as stream:
        await ticker.tick(NOW)
        await ticker.tick(T12)
        told = drained(stream)

    assert told == []


async def test_a_held_offer_starting_takes_the_seat_like_a_booking(
    db: asyncpg.Connection, hub: Hub, ticker: ClockTicker
) -> None:
    seat_id = await seat_in(db)
    await book(db, seat_id, T10, T11, status="HELD")

    with watching(hub) as stream:
        await ticker.tick(NOW)
        await ticker.tick(T10)
        told = drained(stream)

    assert told == [state(seat_id, False)]


async def test_tick_tells_this_instances_streams_of_that_branch_only(
    db: asyncpg.Connection, hub: Hub, ticker: ClockTicker
) -> None:
    seat_id = await seat_in(db)
    await book(db, seat_id, T10, T11)

    with watching(hub, "Main") as main, watching(hub, "Science") as science:
        await ticker.tick(NOW)
        await ticker.tick(T10)
        told_main, told_science = drained(main), drained(science)

    assert told_main == [state(seat_id, False)]
    assert told_science == []


async def test_a_clock_moved_back_starts_over_without_telling(
    db: asyncpg.Connection, hub: Hub, ticker: ClockTicker
) -> None:
    seat_id = await seat_in(db)
    await book(db, seat_id, T10, T11)

    with watching(hub) as stream:
        await ticker.tick(T11 + MINUTE)
        await ticker.tick(NOW)  # back before the booking: no "interval" to look into
        backwards = drained(stream)
        await ticker.tick(T10)
        forwards = drained(stream)

    assert backwards == []
    assert forwards == [state(seat_id, False)]


async def test_a_write_delivered_during_the_read_is_not_overtaken_by_an_older_state(
    db: asyncpg.Connection,
    hub: Hub,
    ticker: ClockTicker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The booking is cancelled (and its event delivered) while the tick reads: the tick
    reads again and tells the state after the cancel, after the cancel's own event."""
    seat_id = await seat_in(db)
    booking = await book(db, seat_id, T10, T11)
    read = seats_db.changed_by_clock
    reads: list[list[SeatState]] = []

    async def cancelled_meanwhile(
        conn: Any, since: datetime, now: datetime, *, closed: list[int]
    ) -> list[SeatState]:
        found = await read(conn, since, now, closed=closed)
        reads.append(found)
        if len(reads) == 1:
            await db.execute("UPDATE reservations SET status = 'CANCELLED' WHERE id = $1", booking)
            hub.dispatch({"kind": "seat", "branch": "Main", "seat": state(seat_id, True)})
        return found

    monkeypatch.setattr(seats_db, "changed_by_clock", cancelled_meanwhile)
    with watching(hub) as stream:
        await ticker.tick(NOW)
        await ticker.tick(T10)
        told = drained(stream)

    assert [[s.available for s in found] for found in reads] == [[False], []]
    assert told == [state(seat_id, True)]  # the cancel's event; nothing older after it


# Waiting in real time


@pytest.mark.parametrize(
    ("start", "soon"),
    [(NOW + 10 * SECOND, True), (NOW + 30 * SECOND, True), (NOW + HOUR, False)],
    ids=["in-10-s", "in-30-s", "in-an-hour"],
)
def test_a_write_wakes_the_tickers_when_a_start_or_end_comes_within_their_sleep(
    start: datetime, soon: bool
) -> None:
    changes = Changes()
    changes.reservation_changed(seat_id=1, branch="Main", start=start, end=start + HOUR, now=NOW)

    assert ({"kind": "clock"} in messages(changes)) is soon


def test_a_booking_ending_soon_wakes_the_tickers_too() -> None:
    changes = Changes()
    changes.boundaries(NOW - HOUR, NOW + 5 * SECOND, now=NOW)

    assert messages(changes) == [{"kind": "clock"}]


class CountingReads:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = 0
        for name in ("changed_by_clock", "next_availability_change"):
            monkeypatch.setattr(seats_db, name, self._counted(getattr(seats_db, name)))

    def _counted(self, read: Any) -> Any:
        async def counted(*args: Any) -> Any:
            self.reads += 1
            return await read(*args)

        return counted


async def test_the_ticker_reads_nothing_while_no_seat_stream_is_open(
    db: asyncpg.Connection, pool: Pool, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = CountingReads(monkeypatch)
    ticker = ClockTicker(pool, hub, SystemClock())
    ticker.start()
    try:
        await asyncio.sleep(0.3)
        idle = counting.reads
        with watching(hub):
            await asyncio.sleep(0.3)
            watched = counting.reads
        await asyncio.sleep(0.1)
        after = counting.reads
        await asyncio.sleep(0.3)
        idle_again = counting.reads
    finally:
        await ticker.stop()

    assert idle == 0
    assert watched >= 1
    assert idle_again == after


async def test_the_ticker_wakes_when_a_booking_starts_and_when_it_ends(
    db: asyncpg.Connection, pool: Pool, hub: Hub
) -> None:
    seat_id = await seat_in(db)
    start = utcnow() + 1.5 * SECOND
    await book(db, seat_id, start, start + SECOND)
    ticker = ClockTicker(pool, hub, SystemClock())

    with watching(hub) as stream:
        ticker.start()
        try:
            taken = await asyncio.wait_for(stream.queue.get(), 5)
            taken_late = utcnow() - start
            freed = await asyncio.wait_for(stream.queue.get(), 5)
            freed_late = utcnow() - (start + SECOND)
        finally:
            await ticker.stop()

    assert (taken["seat"], freed["seat"]) == (state(seat_id, False), state(seat_id, True))
    assert timedelta(0) <= taken_late < 0.3 * SECOND
    assert timedelta(0) <= freed_late < 0.3 * SECOND


async def test_a_booking_made_while_the_ticker_sleeps_is_caught_at_its_start(
    db: asyncpg.Connection, pool: Pool, hub: Hub
) -> None:
    """Nothing is booked, so the ticker sleeps its longest; a write that puts a start
    within that sleep publishes a clock message (from any instance), and the ticker looks
    again for the next boundary."""
    seat_id = await seat_in(db)
    ticker = ClockTicker(pool, hub, SystemClock())
    with watching(hub) as stream:
        ticker.start()
        try:
            await asyncio.sleep(0.2)  # the first tick found nothing ahead
            start = utcnow() + 1.5 * SECOND
            await book(db, seat_id, start, start + HOUR)
            hub.dispatch({"kind": "clock"})
            taken = await asyncio.wait_for(stream.queue.get(), 5)
            late = utcnow() - start
        finally:
            await ticker.stop()

    assert taken["seat"] == state(seat_id, False)
    assert timedelta(0) <= late < 0.3 * SECOND


# Live streams on real instances


async def next_seat_events(stream: EventStream, seat_id: int, count: int, within: float) -> Any:
    """The first ``count`` seat.availability events about ``seat_id`` (others skipped)
    and when each arrived, then every further one about it in the next second."""
    found: list[tuple[float, dict[str, Any]]] = []
    deadline = time.monotonic() + within
    while len(found) < count:
        event = await stream.next_event(within=max(deadline - time.monotonic(), 0.01))
        if event.event == "seat.availability" and event.json()["seat_id"] == seat_id:
            found.append((time.monotonic(), event.json()))
    extra = [e.json() for e in await stream.events_within(1.0) if e.json()["seat_id"] == seat_id]
    return found, extra


@pytest.mark.slow
async def test_a_seat_stream_hears_a_booking_start_and_end_by_the_clock_alone(
    servers: Servers, db: asyncpg.Connection
) -> None:
    server = await servers.start()  # no scheduler, no Redis: the clock alone
    seat_id = await seat_in(db)
    student = await add_student(db, "S0000001")

    async with open_stream(server.client, "/seats/stream", params={"branch": "Main"}) as stream:
        await asyncio.sleep(0.2)  # the ticker found nothing ahead: it sleeps its longest
        start = utcnow() + 2 * SECOND
        await booked(server.client, student, seat_id, start, start + 2 * SECOND)
        began = time.monotonic() + (start - utcnow()).total_seconds()
        found, extra = await next_seat_events(stream, seat_id, 2, within=8)

    (taken_at, taken), (freed_at, freed) = found
    assert (taken, freed) == (state(seat_id, False), state(seat_id, True))
    assert 0 <= taken_at - began < 1.0
    assert 0 <= freed_at - (began + 2) < 1.0
    assert extra == []


@pytest.mark.slow
@pytest.mark.redis
async def test_with_two_instances_on_one_redis_each_stream_hears_the_clock_once(
    servers: Servers, db: asyncpg.Connection, redis_url: str
) -> None:
    a, b = await servers.start_many(2, REDIS_URL=redis_url)
    for server in (a, b):
        await wait_until_subscribed(server, redis_url)
    seat_id = await seat_in(db)
    student = await add_student(db, "S0000001")

    async with (
        open_stream(a.client, "/seats/stream", params={"branch": "Main"}) as on_a,
        open_stream(b.client, "/seats/stream") as on_b,
    ):
        await asyncio.sleep(0.2)  # both tickers found nothing ahead: they sleep their longest
        start = utcnow() + 2 * SECOND
        await booked(a.client, student, seat_id, start, start + 2 * SECOND)  # b hears of it
        began = time.monotonic() + (start - utcnow()).total_seconds()
        (found_a, extra_a), (found_b, extra_b) = await asyncio.gather(
            next_seat_events(on_a, seat_id, 2, within=8),
            next_seat_events(on_b, seat_id, 2, within=8),
        )

    for found, extra in ((found_a, extra_a), (found_b, extra_b)):
        (taken_at, taken), (freed_at, freed) = found
        assert (taken, freed) == (state(seat_id, False), state(seat_id, True))
        assert 0 <= taken_at - began < 1.0
        assert 0 <= freed_at - (began + 2) < 1.0
        assert extra == []  # once, not once per instance


async def test_a_branch_opening_and_closing_tells_every_seat_of_it(
    db: asyncpg.Connection, ticker: ClockTicker, hub: Hub
) -> None:
    """Main opens at 10:00 and closes at 11:00 (UTC): at each, every seat of Main changes
    and Main gets a ``seats.changed``; another branch stays quiet."""
    first, second = await seat_in(db, "Main", "A1"), await seat_in(db, "Main", "A2")
    await seat_in(db, "Other", "B1")
    await db.execute(
        "UPDATE branches SET hours = $1::jsonb WHERE name = 'Main'",
        '{"tuesday": [{"opens": "10:00", "closes": "11:00"}]}',
    )
    with watching(hub) as stream:
        assert await ticker.tick(NOW) == T10  # the opening is the next change
        assert drained(stream) == []
        assert await ticker.tick(T10) == T11
        opened = stream_messages(stream)
        await ticker.tick(T11)
        closed = stream_messages(stream)
    assert opened == [
        {"kind": "seat", "seat": state(first, True)},
        {"kind": "seat", "seat": state(second, True)},
        {"kind": "branch", "branch": "Main"},
    ]
    assert closed == [
        {"kind": "seat", "seat": state(first, False)},
        {"kind": "seat", "seat": state(second, False)},
        {"kind": "branch", "branch": "Main"},
    ]
