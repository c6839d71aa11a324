"""The seat events the sweeps publish after COMMIT: an offer expiring and a no-show free a
seat now (api.md, v2 "The web app": `/seats/stream` pushes when an offer expires), through
the sweep's unit of work; a start or end alone is the clock ticker's (tests/realtime)."""

from typing import Any

import asyncpg

from app.db.pool import Pool
from app.jobs import sweeps
from app.realtime.broker import Broker, Subscription
from app.realtime.publisher import Publisher
from app.settings import Settings
from tests.factories import GRACE, HOUR, MINUTE, SECOND, add_reservation, add_user
from tests.jobs.test_sweeps import NOW, Seat, add_entry, add_offer
from tests.jobs.test_sweeps import broker as broker
from tests.jobs.test_sweeps import pool as pool
from tests.jobs.test_sweeps import publisher as publisher
from tests.jobs.test_sweeps import seat as seat
from tests.jobs.test_sweeps import settings as settings


def drained(subscription: Subscription) -> tuple[list[dict[str, Any]], list[str]]:
    """What reached a seat stream: the seat states (``seat.availability``) and the
    branches whose listings changed (``seats.changed``)."""
    seats, branches = [], []
    while not subscription.queue.empty():
        message = subscription.queue.get_nowait()
        if message["kind"] == "seat":
            seats.append(message["seat"])
        else:
            branches.append(message["branch"])
    return seats, branches


def told(subscription: Subscription) -> list[dict[str, Any]]:
    return drained(subscription)[0]


def state(place: Seat, available: bool) -> dict[str, Any]:
    return {"seat_id": place.seat_id, "branch": "Main", "available": available, "status": "ACTIVE"}


async def test_an_expired_offer_for_the_present_frees_the_seat_on_the_seat_stream(
    db: asyncpg.Connection,
    pool: Pool,
    broker: Broker,
    publisher: Publisher,
    settings: Settings,
    seat: Seat,
) -> None:
    user = await add_user(db, "S0000001")
    await add_offer(
        db, seat, user_id=user, start=NOW - 5 * MINUTE, end=NOW + HOUR, expires_at=NOW - SECOND
    )

    with broker.hub.branch("Main") as stream:
        assert await sweeps.expire_offers(pool, publisher, settings, now=NOW) == 1

    assert told(stream) == [state(seat, True)]


async def test_an_expired_offer_passed_to_the_next_in_line_keeps_the_seat_taken(
    db: asyncpg.Connection,
    pool: Pool,
    broker: Broker,
    publisher: Publisher,
    settings: Settings,
    seat: Seat,
) -> None:
    first, second = await add_user(db, "S0000001"), await add_user(db, "S0000002")
    start, end = NOW - 5 * MINUTE, NOW + HOUR
    await add_offer(db, seat, user_id=first, start=start, end=end, expires_at=NOW - SECOND)
    await add_entry(
        db,
        user_id=second,
        branch_id=seat.branch_id,
        seat_id=seat.seat_id,
        start=NOW,
        end=end,
        created_at=NOW - 30 * MINUTE,
    )

    with broker.hub.branch(None) as stream:
        assert await sweeps.expire_offers(pool, publisher, settings, now=NOW) == 1

    assert told(stream) == [state(seat, False)]  # once, with the state after the commit


async def test_an_expired_offer_for_a_later_slot_tells_the_seat_stream_nothing(
    db: asyncpg.Connection,
    pool: Pool,
    broker: Broker,
    publisher: Publisher,
    settings: Settings,
    seat: Seat,
) -> None:
    user = await add_user(db, "S0000001")
    await add_offer(
        db, seat, user_id=user, start=NOW + HOUR, end=NOW + 2 * HOUR, expires_at=NOW - SECOND
    )

    with broker.hub.branch("Main") as stream:
        assert await sweeps.expire_offers(pool, publisher, settings, now=NOW) == 1

    # The seat is free now before and after; the map of that later hour changed.
    assert drained(stream) == ([], ["Main"])


async def test_a_no_show_frees_the_seat_on_the_seat_stream(
    db: asyncpg.Connection,
    pool: Pool,
    broker: Broker,
    publisher: Publisher,
    settings: Settings,
    seat: Seat,
) -> None:
    user = await add_user(db, "S0000001")
    start = NOW - GRACE - SECOND
    await add_reservation(db, user_id=user, seat_id=seat.seat_id, start=start, end=start + HOUR)

    with broker.hub.branch("Main") as stream:
        assert await sweeps.mark_no_shows(pool, publisher, settings, now=NOW) == 1

    assert told(stream) == [state(seat, True)]
