"""Two uvicorn processes on one PostgreSQL (and, where marked, one Redis): the scale-out
path of api.md. Rows are the truth; Redis pub/sub only carries the wake-up calls."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from app.db.migrations import upgrade_to_head
from app.timeutil import utcnow
from tests.factories import (
    Student,
    add_branch,
    add_reservation,
    add_seat,
    add_student,
    add_students,
    booked,
    cancel,
    iso,
    mint_token,
)
from tests.realtime.servers import EventStream, Server, Servers, open_stream, wait_until_subscribed

pytestmark = pytest.mark.slow

NOTIFICATIONS = "/notifications/stream"


@pytest.fixture(scope="module")
async def module_servers(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Servers]:
    async with Servers(database_url, tmp_path_factory.mktemp("instances")) as started:
        yield started


@pytest.fixture
async def redis_pair(
    module_servers: Servers, redis_url: str, db: asyncpg.Connection
) -> tuple[Server, Server]:
    """Two instances on one PostgreSQL and one Redis, both sweeping every 0.2 s, shared by
    the tests of this module that need them (a process takes seconds to start). Nothing
    the other tests arrange is overdue, so the sweeps leave their rows alone."""
    a, b = await module_servers.shared(
        "redis", 2, REDIS_URL=redis_url, SCHEDULER_ENABLED=True, SWEEP_INTERVAL_SECONDS=0.2
    )
    for server in (a, b):
        await wait_until_subscribed(server, redis_url)
    return a, b


def next_hour() -> datetime:
    return (utcnow() + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


async def waiting_for_booked_seat(
    db: asyncpg.Connection, client: httpx.AsyncClient
) -> tuple[Student, Student, dict[str, Any], dict[str, Any]]:
    """Alice has booked a seat in two hours; Bob waits for exactly that slot."""
    seat_id = await add_seat(db, await add_branch(db, "Main"), "A1")
    alice, bob = await add_student(db, "S0000001"), await add_student(db, "S0000002")
    start = next_hour()
    booking = await booked(client, alice, seat_id, start, start + timedelta(hours=1))
    response = await client.post(
        "/waitlist",
        json={"seat_id": seat_id, "start_time": iso(start), "end_time": booking["end_time"]},
        headers=bob.headers,
    )
    assert response.status_code == 201, response.text
    return alice, bob, booking, response.json()


async def next_matching(
    stream: EventStream, kind: str, check: Callable[[Any], bool], within: float = 5
) -> Any:
    """The first ``kind`` event whose data passes ``check``. Other events are skipped:
    Redis pub/sub channels are server-wide, so another test run on the same Redis may
    publish to the same channel (see test_deployments_sharing_only_a_redis_server...)."""
    async with asyncio.timeout(within):
        while True:
            event = await stream.next_event(within)
            if event.event == kind and check(event.json()):
                return event.json()


@pytest.mark.redis
async def test_offer_caused_on_one_instance_reaches_a_stream_on_the_other(
    redis_pair: tuple[Server, Server], db: asyncpg.Connection
) -> None:
    a, b = redis_pair
    alice, bob, booking, entry = await waiting_for_booked_seat(db, a.client)

    async with open_stream(b.client, NOTIFICATIONS, headers=bob.headers) as on_b:
        await cancel(a.client, alice, booking["id"])
        offer = await next_matching(
            on_b, "waitlist.offer", lambda n: n["data"]["entry_id"] == entry["id"]
        )

    row = await db.fetchrow("SELECT user_id, type FROM notifications WHERE id = $1", offer["id"])
    assert row is not None
    assert (row["user_id"], row["type"]) == (bob.id, "waitlist.offer")
    assert offer["data"]["start_time"] == booking["start_time"]


@pytest.mark.redis
async def test_seat_change_on_one_instance_reaches_a_seat_stream_on_the_other(
    redis_pair: tuple[Server, Server], db: asyncpg.Connection
) -> None:
    a, b = redis_pair
    seat_id = await add_seat(db, await add_branch(db, "Main"), "A1")
    student = await add_student(db, "S0000001")

    async with open_stream(b.client, "/seats/stream", params={"branch": "Main"}) as on_b:
        now = utcnow()
        booking = await booked(a.client, student, seat_id, now, now + timedelta(hours=1))
        taken = await next_matching(
            on_b, "seat.availability", lambda s: s["seat_id"] == seat_id and not s["available"]
        )
        await cancel(a.client, student, booking["id"])
        freed = await next_matching(
            on_b, "seat.availability", lambda s: s["seat_id"] == seat_id and s["available"]
        )

    assert taken == {"seat_id": seat_id, "branch": "Main", "available": False, "status": "ACTIVE"}
    assert freed == {"seat_id": seat_id, "branch": "Main", "available": True, "status": "ACTIVE"}


async def arrange_overdue_work(
    db: asyncpg.Connection, *, no_shows: int, expired_offers: int
) -> tuple[list[int], dict[int, int]]:
    """CONFIRMED bookings whose start and grace (15 minutes) have passed, and HELD offers past their
    deadline with their OFFERED waitlist entries; all committed at once, so that both
    instances find them in the same sweep. Returns the booking ids and offer -> entry."""
    branch_id = await add_branch(db, "Main")
    seats = [await add_seat(db, branch_id, f"A{n}") for n in range(5)]
    late = await add_students(db, "L", no_shows)
    waiting = await add_students(db, "W", expired_offers)
    now = utcnow()
    booking_ids: list[int] = []
    entries: dict[int, int] = {}
    async with db.transaction():
        for n, student in enumerate(late):
            start = now - timedelta(hours=3) + timedelta(minutes=15 * (n // len(seats)))
            booking_ids.append(
                await add_reservation(
                    db,
                    user_id=student.id,
                    seat_id=seats[n % len(seats)],
                    start=start,
                    end=start + timedelta(minutes=15),
                )
            )
        for n, student in enumerate(waiting):
            seat_id = seats[n % len(seats)]
            start = now + timedelta(hours=1) + timedelta(minutes=30 * (n // len(seats)))
            deadline = now - timedelta(minutes=1)
            held_id = await add_reservation(
                db,
                user_id=student.id,
                seat_id=seat_id,
                start=start,
                end=start + timedelta(minutes=30),
                status="HELD",
                offer_expires_at=deadline,
            )
            entries[held_id] = await db.fetchval(
                "INSERT INTO waitlist_entries (user_id, branch_id, seat_id, start_time, end_time,"
                " status, reservation_id, offer_expires_at, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $5, 'OFFERED', $6, $7, $8, $8) RETURNING id",
                student.id,
                branch_id,
                seat_id,
                start,
                start + timedelta(minutes=30),
                held_id,
                deadline,
                now - timedelta(minutes=20),
            )
    return booking_ids, entries


async def notifications_per_reservation(db: asyncpg.Connection, kind: str) -> dict[int, int]:
    rows = await db.fetch(
        "SELECT (data->>'reservation_id')::bigint AS reservation_id, count(*) AS n "
        "FROM notifications WHERE type = $1 GROUP BY 1",
        kind,
    )
    return {row["reservation_id"]: row["n"] for row in rows}


@pytest.mark.redis
async def test_two_sweeping_instances_settle_each_overdue_row_once_and_notify_once(
    redis_pair: tuple[Server, Server], db: asyncpg.Connection
) -> None:
    booking_ids, offers = await arrange_overdue_work(db, no_shows=50, expired_offers=20)
    async with asyncio.timeout(20):
        while True:
            pending = await db.fetchval(
                "SELECT count(*) FROM reservations WHERE status IN ('CONFIRMED', 'HELD')"
            )
            if not pending:
                break
            await asyncio.sleep(0.1)

    statuses = {r["id"]: r["status"] for r in await db.fetch("SELECT * FROM reservations")}
    entries = {r["id"]: r["status"] for r in await db.fetch("SELECT * FROM waitlist_entries")}
    expired = await db.fetch(
        "SELECT (data->>'reservation_id')::bigint AS reservation_id,"
        " (data->>'entry_id')::bigint AS entry_id FROM notifications"
        " WHERE type = 'waitlist.expired'"
    )
    kinds = {
        r["type"]: r["n"]
        for r in await db.fetch("SELECT type, count(*) AS n FROM notifications GROUP BY type")
    }
    assert {statuses[i] for i in booking_ids} == {"NO_SHOW"}
    assert {statuses[i] for i in offers} == {"CANCELLED"}
    assert entries == dict.fromkeys(offers.values(), "EXPIRED")
    assert await notifications_per_reservation(db, "reservation.no_show") == dict.fromkeys(
        booking_ids, 1
    )
    assert await notifications_per_reservation(db, "waitlist.expired") == dict.fromkeys(offers, 1)
    assert {row["reservation_id"]: row["entry_id"] for row in expired} == offers
    assert kinds == {"reservation.no_show": 50, "waitlist.expired": 20}


async def test_without_redis_a_stream_on_the_other_instance_hears_nothing_but_rows_are_shared(
    servers: Servers, db: asyncpg.Connection
) -> None:
    a, b = await servers.start_many(2)
    alice, bob, booking, entry = await waiting_for_booked_seat(db, a.client)

    async with (
        open_stream(a.client, NOTIFICATIONS, headers=bob.headers) as on_a,
        open_stream(b.client, NOTIFICATIONS, headers=bob.headers) as on_b,
    ):
        await cancel(a.client, alice, booking["id"])
        offer = (await on_a.next_event(within=5)).json()
        heard_on_b = await on_b.events_within(1.0)
    listed_on_b = await b.client.get("/notifications", headers=bob.headers)

    assert offer["type"] == "waitlist.offer"
    assert offer["data"]["entry_id"] == entry["id"]
    assert heard_on_b == []
    assert listed_on_b.status_code == 200
    assert listed_on_b.json()["items"] == [offer]  # PostgreSQL has it for every instance


def other_redis_database(redis_url: str) -> str:
    parts = urlsplit(redis_url)
    number = int(parts.path.lstrip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{number - 1 if number else 1}"))


@pytest.fixture(scope="module")
def other_database_url(fresh_database: Callable[[str], str]) -> str:
    """A second migrated database: another deployment's."""
    url = fresh_database("other_deployment")
    upgrade_to_head(url)
    return url


@pytest.mark.redis
async def test_deployments_sharing_only_a_redis_server_do_not_hear_each_other(
    redis_pair: tuple[Server, Server],
    servers: Servers,
    db: asyncpg.Connection,
    redis_url: str,
    other_database_url: str,
) -> None:
    """Two deployments: their own PostgreSQL databases and their own Redis databases
    (``/15`` and ``/14``) on one Redis server, as a developer's instance and the test
    suite, or staging and production, might be. User ids start at 1 in both."""
    ours, _ = redis_pair
    theirs = await servers.start(
        REDIS_URL=other_redis_database(redis_url), DATABASE_URL=other_database_url
    )
    await wait_until_subscribed(theirs, redis_url)
    alice, bob, booking, _ = await waiting_for_booked_seat(db, ours.client)
    their_user = {"Authorization": f"Bearer {mint_token(bob.id, 'T0000001')}"}

    async with (
        open_stream(ours.client, NOTIFICATIONS, headers=bob.headers) as our_stream,
        open_stream(theirs.client, NOTIFICATIONS, headers=their_user) as their_stream,
    ):
        await cancel(ours.client, alice, booking["id"])
        offer = await our_stream.next_event(within=5)
        leaked = await their_stream.events_within(1.0)

    assert offer.event == "waitlist.offer"
    assert [json.loads(event.data or "null") for event in leaked] == []
