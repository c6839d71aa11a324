"""Waitlist, offers, notifications and fair use (api.md, "Waitlist", "Notifications",
"Reservations" fair use) through the HTTP API on a frozen clock, arranged in SQL."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.cache import SeatCache
from app.db import pool as pool_module
from app.jobs import sweeps
from app.realtime.broker import Broker
from app.realtime.publisher import Publisher
from tests.conftest import ClientFactory, make_settings
from tests.factories import (
    CLAIM,
    DAY,
    GRACE,
    HOUR,
    MINUTE,
    RULES,
    SECOND,
    T10,
    T11,
    T12,
    FrozenClock,
    Student,
    add_branch,
    add_reservation,
    add_seat,
    add_user,
    assert_error,
    assert_validation_error,
    at,
    cancel,
    iso,
    join,
    joined,
    my_entries,
    my_notifications,
    reservation_row,
    reserve,
)

# Dec 1, 08:00 UTC; the seats are wanted from 10:00.
NOW = at(8)
SETTINGS: dict[str, Any] = {
    **RULES,
    "NO_SHOW_LIMIT": 3,
    "NO_SHOW_WINDOW_DAYS": 30,
    "SUSPENSION_DAYS": 7,
}

ENTRY_FIELDS = {
    "id",
    "user_id",
    "seat_id",
    "branch",
    "start_time",
    "end_time",
    "status",
    "position",
    "offer_expires_at",
    "reservation_id",
    "created_at",
}


@dataclass(frozen=True)
class Library:
    main: int
    a1: int
    a2: int
    broken: int


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def api(make_client: ClientFactory, clock: FrozenClock) -> httpx.AsyncClient:
    return await make_client(clock=clock, **SETTINGS)


@pytest.fixture
async def library(db: asyncpg.Connection) -> Library:
    main = await add_branch(db, "Main")
    return Library(
        main=main,
        a1=await add_seat(db, main, "A1"),
        a2=await add_seat(db, main, "A2"),
        broken=await add_seat(db, main, "B1", status="MAINTENANCE"),
    )


async def occupy(
    db: asyncpg.Connection,
    seat_id: int,
    start: datetime = T10,
    end: datetime = T11,
    *,
    user_id: int | None = None,
    status: str = "CONFIRMED",
) -> int:
    """A reservation on the seat, by ``user_id`` or by a fresh user of its own."""
    if user_id is None:
        user_id = await add_user(db, f"X{seat_id}-{start:%H%M}-{status}")
    return await add_reservation(
        db, user_id=user_id, seat_id=seat_id, start=start, end=end, status=status
    )


async def my_entry(api: httpx.AsyncClient, student: Student, entry_id: int) -> dict[str, Any]:
    return (await my_entries(api, student))[entry_id]


Sweep = Callable[[datetime], Awaitable[sweeps.SweepResult]]


@asynccontextmanager
async def sweeper(database_url: str) -> AsyncIterator[Sweep]:
    """Every background sweep at a chosen moment, on a pool of its own."""
    settings = make_settings(database_url, **SETTINGS)
    pool = await pool_module.create_pool(database_url, settings)
    publisher = Publisher(SeatCache(None, 10), Broker(None, None))

    async def sweep(now: datetime) -> sweeps.SweepResult:
        return await sweeps.run_all(pool, publisher, settings, now=now)

    try:
        yield sweep
    finally:
        await pool.close()


# POST /waitlist


async def test_joining_a_booked_seat_answers_every_contract_field(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, bob: Student
) -> None:
    await occupy(db, library.a1)
    response = await api.post(
        "/waitlist",
        json={
            "seat_id": library.a1,
            "start_time": "2026-12-01T11:00:00+01:00",
            "end_time": "2026-12-01T12:00:00+01:00",
        },
        headers=bob.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= ENTRY_FIELDS
    assert isinstance(body["id"], int)
    assert {k: body[k] for k in ENTRY_FIELDS - {"id"}} == {
        "user_id": bob.id,
        "seat_id": library.a1,
        "branch": "Main",
        "start_time": "2026-12-01T10:00:00Z",
        "end_time": "2026-12-01T11:00:00Z",
        "status": "WAITING",
        "position": 1,
        "offer_expires_at": None,
        "reservation_id": None,
        "created_at": iso(NOW),
    }
    row = await db.fetchrow("SELECT * FROM waitlist_entries WHERE id = $1", body["id"])
    assert row is not None
    assert (row["user_id"], row["branch_id"], row["seat_id"]) == (bob.id, library.main, library.a1)


async def test_joining_a_fully_booked_branch_creates_a_branch_level_entry(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, bob: Student
) -> None:
    await occupy(db, library.a1)
    await occupy(db, library.a2)
    # B1 is under maintenance: not a free seat.
    body = await joined(api, bob, branch="Main")
    assert set(body) >= ENTRY_FIELDS
    assert {k: body[k] for k in ENTRY_FIELDS - {"id"}} == {
        "user_id": bob.id,
        "seat_id": None,
        "branch": "Main",
        "start_time": iso(T10),
        "end_time": iso(T11),
        "status": "WAITING",
        "position": 1,
        "offer_expires_at": None,
        "reservation_id": None,
        "created_at": iso(NOW),
    }


@pytest.mark.parametrize("target", ["both", "neither"])
async def test_joining_needs_exactly_one_of_seat_id_and_branch(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, bob: Student, target: str
) -> None:
    await occupy(db, library.a1)
    await occupy(db, library.a2)
    body: dict[str, Any] = {"start_time": iso(T10), "end_time": iso(T11)}
    if target == "both":
        body |= {"seat_id": library.a1, "branch": "Main"}
    response = await api.post("/waitlist", json=body, headers=bob.headers)
    assert_validation_error(response)
    assert await db.fetchval("SELECT count(*) FROM waitlist_entries") == 0


@pytest.mark.parametrize("target", [{"seat_id": 999999}, {"branch": "Nowhere"}])
async def test_joining_an_unknown_seat_or_branch_is_not_found(
    api: httpx.AsyncClient, library: Library, bob: Student, target: dict[str, Any]
) -> None:
    response = await join(api, bob, **target)
    assert_error(response, 404, "not_found")


async def test_joining_a_seat_free_for_the_whole_interval_is_slot_available(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, bob: Student
) -> None:
    await occupy(db, library.a1, T10, T11)
    await occupy(db, library.a1, T11, T12, status="CANCELLED")
    # Back to back with the booking (half-open) and over a cancelled one: free.
    response = await join(api, bob, seat_id=library.a1, start=T11, end=T12)
    assert_error(response, 409, "slot_available")
    assert_error(await join(api, bob, seat_id=library.a2), 409, "slot_available")
    assert await db.fetchval("SELECT count(*) FROM waitlist_entries") == 0


async def test_joining_a_branch_with_any_free_active_seat_is_slot_available(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, bob: Student
) -> None:
    await occupy(db, library.a1)
    await occupy(db, library.a2, T10, at(10, 30))  # A2 is free 10:30-11:00
    response = await join(api, bob, branch="Main", start=at(10, 30), end=T11)
    assert_error(response, 409, "slot_available")
    # Over 10:00-11:00 both active seats are partly booked: the branch may be joined.
    assert (await joined(api, bob, branch="Main"))["status"] == "WAITING"


async def test_a_partly_booked_interval_may_be_joined(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, bob: Student
) -> None:
    await occupy(db, library.a1, T10, T11)
    body = await joined(api, bob, seat_id=library.a1, start=at(10, 30), end=at(11, 30))
    assert (body["status"], body["position"]) == ("WAITING", 1)


async def test_a_seat_under_maintenance_may_be_waited_for(
    api: httpx.AsyncClient, library: Library, bob: Student
) -> None:
    body = await joined(api, bob, seat_id=library.broken)
    assert (body["seat_id"], body["status"]) == (library.broken, "WAITING")


async def test_a_second_open_entry_for_the_same_target_and_time_is_already_exists(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    bob: Student,
    carol: Student,
) -> None:
    await occupy(db, library.a1, T10, T12)
    await occupy(db, library.a2, T10, T12)
    first = await joined(api, bob, seat_id=library.a1, start=T10, end=T11)
    overlapping = await join(api, bob, seat_id=library.a1, start=at(10, 59), end=T12)
    assert_error(overlapping, 409, "already_exists")
    # Another interval, another target, another user: all fine.
    await joined(api, bob, seat_id=library.a1, start=T11, end=T12)
    await joined(api, bob, branch="Main", start=T10, end=T11)
    await joined(api, bob, seat_id=library.a2, start=T10, end=T11)
    await joined(api, carol, seat_id=library.a1, start=T10, end=T11)
    # An OFFERED entry blocks a duplicate too (any HELD row of Bob's will do as its offer).
    held = await occupy(db, library.broken, at(13), at(14), user_id=bob.id, status="HELD")
    await db.execute(
        "UPDATE waitlist_entries SET status = 'OFFERED', reservation_id = $2, "
        "offer_expires_at = $3 WHERE id = $1",
        first["id"],
        held,
        NOW + CLAIM,
    )
    assert_error(await join(api, bob, seat_id=library.a1), 409, "already_exists")
    # A closed entry does not.
    await db.execute("UPDATE waitlist_entries SET status = 'EXPIRED' WHERE id = $1", first["id"])
    assert (await joined(api, bob, seat_id=library.a1))["status"] == "WAITING"


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (T11, T11),  # empty
        (T11, T10),  # inverted
        (NOW - 2 * MINUTE, T10),  # in the past
        (T10, T10 + 4 * HOUR + SECOND),  # longer than MAX_RESERVATION_HOURS
        (NOW + 14 * DAY + SECOND, NOW + 14 * DAY + HOUR),  # beyond the horizon
    ],
    ids=["empty", "inverted", "past", "too_long", "too_far_ahead"],
)
async def test_joining_follows_the_booking_interval_rules(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    bob: Student,
    start: datetime,
    end: datetime,
) -> None:
    await occupy(db, library.a1, NOW, NOW + 15 * DAY)  # never free, whatever the interval
    response = await join(api, bob, seat_id=library.a1, start=start, end=end)
    assert_error(response, 422, "invalid_interval")


async def test_joining_with_a_time_without_offset_is_refused(
    api: httpx.AsyncClient, library: Library, bob: Student
) -> None:
    response = await api.post(
        "/waitlist",
        json={
            "seat_id": library.a1,
            "start_time": "2026-12-01T10:00:00",
            "end_time": "2026-12-01T11:00:00Z",
        },
        headers=bob.headers,
    )
    assert_validation_error(response)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/waitlist"),
        ("GET", "/waitlist"),
        ("GET", "/waitlist/user/1"),
        ("DELETE", "/waitlist/1"),
        ("POST", "/waitlist/1/claim"),
        ("GET", "/notifications"),
        ("POST", "/notifications/1/read"),
    ],
)
async def test_waitlist_and_notification_routes_need_a_token(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"seat_id": 1, "start_time": iso(T10), "end_time": iso(T11)}
    response = await api.request(method, path, json=body if method == "POST" else None)
    assert_error(response, 401, "not_authenticated")


# Queue positions


async def test_positions_count_from_one_in_creation_order_within_each_queue(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
    bob: Student,
    carol: Student,
    dave: Student,
) -> None:
    await occupy(db, library.a1, T10, T12)
    await occupy(db, library.a2, T10, T12)
    order: list[tuple[Student, dict[str, Any], int]] = [
        (bob, {"seat_id": library.a1, "start": at(11, 30), "end": T12}, 1),
        (carol, {"seat_id": library.a1, "start": T10, "end": T11}, 2),
        (dave, {"branch": "Main", "start": T11, "end": T12}, 1),
        (alice, {"seat_id": library.a1, "start": at(10, 30), "end": at(11, 30)}, 3),
        (bob, {"seat_id": library.a2, "start": T10, "end": T11}, 1),
        (carol, {"branch": "Main", "start": T10, "end": T11}, 2),
    ]
    created = []
    for student, target, position in order:
        clock.advance(MINUTE)
        body = await joined(api, student, **target)
        assert body["position"] == position, target
        created.append((student, body["id"], position))
    # Listing reads the same positions.
    for student, entry_id, position in created:
        assert (await my_entry(api, student, entry_id))["position"] == position


async def test_leaving_moves_the_rest_of_the_queue_up(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    bob: Student,
    carol: Student,
    dave: Student,
) -> None:
    await occupy(db, library.a1)
    first = await joined(api, bob, seat_id=library.a1)
    second = await joined(api, carol, seat_id=library.a1)
    third = await joined(api, dave, seat_id=library.a1)
    assert [first["position"], second["position"], third["position"]] == [1, 2, 3]

    left = await api.delete(f"/waitlist/{first['id']}", headers=bob.headers)
    assert left.json()["position"] is None

    assert (await my_entry(api, carol, second["id"]))["position"] == 1
    assert (await my_entry(api, dave, third["id"]))["position"] == 2
    assert (await my_entry(api, bob, first["id"]))["position"] is None


# GET /waitlist and the seed alias


async def test_list_shows_only_the_callers_entries_newest_first(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    bob: Student,
    carol: Student,
) -> None:
    await occupy(db, library.a1, T10, T12)
    older = await joined(api, bob, seat_id=library.a1, start=T10, end=T11)
    clock.advance(MINUTE)
    newer = await joined(api, bob, seat_id=library.a1, start=T11, end=T12)
    await joined(api, carol, seat_id=library.a1)

    response = await api.get("/waitlist", headers=bob.headers)
    assert response.status_code == 200
    body = response.json()
    assert body == {"items": [newer, older], "total": 2}
    paged = (await api.get("/waitlist?limit=1&offset=1", headers=bob.headers)).json()
    assert paged == {"items": [older], "total": 2}


async def test_user_alias_lists_ones_own_entries_and_hides_other_students(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    bob: Student,
    carol: Student,
    admin: Student,
) -> None:
    await occupy(db, library.a1)
    entry = await joined(api, bob, seat_id=library.a1)

    own = await api.get(f"/waitlist/user/{bob.id}", headers=bob.headers)
    assert own.status_code == 200
    assert own.json() == {"items": [entry], "total": 1}
    assert_error(await api.get(f"/waitlist/user/{bob.id}", headers=carol.headers), 404, "not_found")
    as_admin = await api.get(f"/waitlist/user/{bob.id}", headers=admin.headers)
    assert as_admin.json() == {"items": [entry], "total": 1}
    assert_error(await api.get("/waitlist/user/999999", headers=admin.headers), 404, "not_found")


# DELETE /waitlist/{id}


async def test_leaving_cancels_the_entry_once(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    bob: Student,
    carol: Student,
) -> None:
    await occupy(db, library.a1)
    entry = await joined(api, bob, seat_id=library.a1)

    foreign = await api.delete(f"/waitlist/{entry['id']}", headers=carol.headers)
    assert_error(foreign, 404, "not_found")
    assert_error(await api.delete("/waitlist/999999", headers=bob.headers), 404, "not_found")

    response = await api.delete(f"/waitlist/{entry['id']}", headers=bob.headers)
    assert response.status_code == 200
    assert response.json() == {**entry, "status": "CANCELLED", "position": None}

    again = await api.delete(f"/waitlist/{entry['id']}", headers=bob.headers)
    assert_error(again, 409, "invalid_state")


# Offers


async def test_cancelling_offers_the_seat_to_the_oldest_seat_entry_before_branch_entries(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    carol: Student,
    dave: Student,
) -> None:
    booked = await occupy(db, library.a1, user_id=alice.id)
    await occupy(db, library.a2)
    branch_entry = await joined(api, carol, branch="Main")  # the oldest, but branch-level
    first = await joined(api, bob, seat_id=library.a1)
    second = await joined(api, dave, seat_id=library.a1)

    await cancel(api, alice, booked)

    offered = await my_entry(api, bob, first["id"])
    assert offered["status"] == "OFFERED"
    assert offered["position"] is None
    assert offered["offer_expires_at"] == iso(NOW + CLAIM)
    held = await reservation_row(db, offered["reservation_id"])
    assert (held["user_id"], held["seat_id"], held["status"]) == (bob.id, library.a1, "HELD")
    assert (held["start_time"], held["end_time"]) == (T10, T11)
    # Dave is now first in the seat's queue; Carol keeps her place in the branch's.
    assert (await my_entry(api, dave, second["id"]))["status"] == "WAITING"
    assert (await my_entry(api, dave, second["id"]))["position"] == 1
    assert (await my_entry(api, carol, branch_entry["id"]))["position"] == 1
    [note] = await my_notifications(api, bob)
    assert (note["type"], note["read_at"], note["created_at"]) == ("waitlist.offer", None, iso(NOW))
    assert note["data"] == {
        "entry_id": first["id"],
        "reservation_id": held["id"],
        "seat_id": library.a1,
        "start_time": iso(T10),
        "end_time": iso(T11),
        "offer_expires_at": iso(NOW + CLAIM),
    }
    assert await my_notifications(api, dave) == []
    assert await my_notifications(api, carol) == []


async def test_an_entry_whose_interval_is_not_wholly_free_is_passed_over(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    dave: Student,
) -> None:
    booked = await occupy(db, library.a1, T10, T11, user_id=alice.id)
    await occupy(db, library.a1, T11, T12)  # still taken after the cancellation
    too_long = await joined(api, bob, seat_id=library.a1, start=at(10, 30), end=at(11, 30))
    fits = await joined(api, dave, seat_id=library.a1, start=T10, end=T11)

    await cancel(api, alice, booked)

    assert (await my_entry(api, bob, too_long["id"]))["status"] == "WAITING"
    assert (await my_entry(api, bob, too_long["id"]))["position"] == 1
    assert (await my_entry(api, dave, fits["id"]))["status"] == "OFFERED"


async def test_a_branch_entry_is_offered_when_no_seat_entry_fits(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    carol: Student,
) -> None:
    booked = await occupy(db, library.a1, T10, T11, user_id=alice.id)
    await occupy(db, library.a1, T11, T12)
    await occupy(db, library.a2, T10, T12)
    seat_entry = await joined(api, bob, seat_id=library.a1, start=at(10, 30), end=at(11, 30))
    branch_entry = await joined(api, carol, branch="Main", start=T10, end=T11)

    await cancel(api, alice, booked)

    assert (await my_entry(api, bob, seat_entry["id"]))["status"] == "WAITING"
    offered = await my_entry(api, carol, branch_entry["id"])
    assert offered["status"] == "OFFERED"
    assert offered["seat_id"] is None  # the entry stays branch-level; the offer names the seat
    held = await reservation_row(db, offered["reservation_id"])
    assert (held["user_id"], held["seat_id"], held["status"]) == (carol.id, library.a1, "HELD")
    [note] = await my_notifications(api, carol)
    assert (note["type"], note["data"]["seat_id"]) == ("waitlist.offer", library.a1)


async def test_an_offer_holds_the_seat_against_everyone_else(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    dave: Student,
) -> None:
    booked = await occupy(db, library.a1, user_id=alice.id)
    await joined(api, bob, seat_id=library.a1)
    await cancel(api, alice, booked)

    response = await api.post(
        "/reservations",
        json={"seat_id": library.a1, "start_time": iso(T10), "end_time": iso(T11)},
        headers=dave.headers,
    )
    assert_error(response, 409, "seat_conflict")
    availability = await api.get(
        f"/seats/{library.a1}/availability",
        params={"start_time": iso(T10), "end_time": iso(T11)},
    )
    assert availability.json()["available"] is False


async def test_an_entrant_holding_an_overlapping_booking_is_passed_over(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    dave: Student,
) -> None:
    booked = await occupy(db, library.a1, user_id=alice.id)
    busy = await joined(api, bob, seat_id=library.a1)
    free = await joined(api, dave, seat_id=library.a1)
    await occupy(db, library.a2, at(10, 30), at(11, 30), user_id=bob.id)  # booked since

    await cancel(api, alice, booked)

    assert (await my_entry(api, bob, busy["id"]))["status"] == "WAITING"
    assert (await my_entry(api, dave, free["id"]))["status"] == "OFFERED"
    assert await my_notifications(api, bob) == []


async def test_leaving_while_offered_withdraws_the_offer_and_offers_the_next(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    dave: Student,
) -> None:
    booked = await occupy(db, library.a1, user_id=alice.id)
    first = await joined(api, bob, seat_id=library.a1)
    second = await joined(api, dave, seat_id=library.a1)
    await cancel(api, alice, booked)
    held_id = (await my_entry(api, bob, first["id"]))["reservation_id"]

    response = await api.delete(f"/waitlist/{first['id']}", headers=bob.headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CANCELLED"
    withdrawn = await api.get(f"/reservations/{held_id}", headers=bob.headers)
    assert withdrawn.json()["status"] == "CANCELLED"
    assert withdrawn.json()["cancel_reason"]
    next_offer = await my_entry(api, dave, second["id"])
    assert next_offer["status"] == "OFFERED"
    assert next_offer["reservation_id"] != held_id
    assert [n["type"] for n in await my_notifications(api, dave)] == ["waitlist.offer"]


# Claiming


async def offered_to(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    owner: Student,
    waiters: list[Student],
) -> list[dict[str, Any]]:
    """``owner``'s 10:00-11:00 booking on A1 is cancelled with ``waiters`` in the queue:
    the first is offered the seat. Their entries as they stand afterwards."""
    booked = await occupy(db, library.a1, user_id=owner.id)
    entries = [await joined(api, w, seat_id=library.a1) for w in waiters]
    await cancel(api, owner, booked)
    return [await my_entry(api, w, e["id"]) for w, e in zip(waiters, entries, strict=True)]


async def test_claiming_an_offer_confirms_its_reservation(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
    bob: Student,
) -> None:
    [offer] = await offered_to(api, db, library, alice, [bob])
    clock.advance(5 * MINUTE)

    response = await api.post(f"/waitlist/{offer['id']}/claim", headers=bob.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"entry", "reservation"}
    assert body["entry"]["status"] == "CLAIMED"
    assert body["entry"]["reservation_id"] == offer["reservation_id"]
    reservation = body["reservation"]
    assert {k: reservation[k] for k in ("id", "user_id", "seat_id", "status")} == {
        "id": offer["reservation_id"],
        "user_id": bob.id,
        "seat_id": library.a1,
        "status": "CONFIRMED",
    }
    assert (reservation["start_time"], reservation["end_time"]) == (iso(T10), iso(T11))
    upcoming = (await api.get("/reservations", headers=bob.headers)).json()
    assert [(r["id"], r["status"]) for r in upcoming["items"]] == [
        (offer["reservation_id"], "CONFIRMED")
    ]


@pytest.mark.parametrize(
    ("after_deadline", "outcome"),
    [(timedelta(0), (200, None)), (SECOND, (409, "offer_expired"))],
    ids=["at_deadline", "one_second_late"],
)
async def test_an_offer_can_be_claimed_up_to_its_deadline(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
    bob: Student,
    after_deadline: timedelta,
    outcome: tuple[int, str | None],
) -> None:
    [offer] = await offered_to(api, db, library, alice, [bob])
    clock.set(NOW + CLAIM + after_deadline)

    response = await api.post(f"/waitlist/{offer['id']}/claim", headers=bob.headers)

    assert (response.status_code, response.json().get("code")) == outcome
    expected = "CONFIRMED" if outcome[0] == 200 else "HELD"
    assert (await reservation_row(db, offer["reservation_id"]))["status"] == expected


async def test_claiming_an_offer_that_the_sweep_expired_is_offer_expired(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    database_url: str,
    clock: FrozenClock,
    library: Library,
    alice: Student,
    bob: Student,
) -> None:
    [offer] = await offered_to(api, db, library, alice, [bob])
    clock.set(NOW + CLAIM + SECOND)
    async with sweeper(database_url) as sweep:
        assert (await sweep(clock.now())).expired_offers == 1

    response = await api.post(f"/waitlist/{offer['id']}/claim", headers=bob.headers)

    assert_error(response, 409, "offer_expired")
    assert (await my_entry(api, bob, offer["id"]))["status"] == "EXPIRED"


async def test_claiming_a_waiting_or_claimed_entry_is_invalid_state(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    dave: Student,
) -> None:
    offer, waiting = await offered_to(api, db, library, alice, [bob, dave])
    assert waiting["status"] == "WAITING"

    assert_error(
        await api.post(f"/waitlist/{waiting['id']}/claim", headers=dave.headers),
        409,
        "invalid_state",
    )
    assert (await api.post(f"/waitlist/{offer['id']}/claim", headers=bob.headers)).is_success
    assert_error(
        await api.post(f"/waitlist/{offer['id']}/claim", headers=bob.headers),
        409,
        "invalid_state",
    )


async def test_claiming_someone_elses_offer_is_not_found(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    dave: Student,
) -> None:
    [offer] = await offered_to(api, db, library, alice, [bob])

    response = await api.post(f"/waitlist/{offer['id']}/claim", headers=dave.headers)

    assert_error(response, 404, "not_found")
    assert_error(await api.post("/waitlist/999999/claim", headers=bob.headers), 404, "not_found")
    assert (await reservation_row(db, offer["reservation_id"]))["status"] == "HELD"


async def test_declining_the_held_reservation_closes_the_entry_and_offers_the_next(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    dave: Student,
) -> None:
    offer, waiting = await offered_to(api, db, library, alice, [bob, dave])

    declined = await cancel(api, bob, offer["reservation_id"])

    assert declined["status"] == "CANCELLED"
    assert (await my_entry(api, bob, offer["id"]))["status"] == "CANCELLED"
    passed_on = await my_entry(api, dave, waiting["id"])
    assert passed_on["status"] == "OFFERED"
    held = await reservation_row(db, passed_on["reservation_id"])
    assert (held["user_id"], held["status"]) == (dave.id, "HELD")


# Released time: check-out and no-shows


async def claim_and_check_in(api: httpx.AsyncClient, student: Student, entry_id: int) -> None:
    """The student claims the offer and checks in to its reservation straight away."""
    claimed = await api.post(f"/waitlist/{entry_id}/claim", headers=student.headers)
    assert claimed.status_code == 200, claimed.text
    reservation_id = claimed.json()["reservation"]["id"]
    checkin = await api.post(f"/reservations/{reservation_id}/checkin", headers=student.headers)
    assert checkin.status_code == 200, checkin.text
    assert checkin.json()["status"] == "CHECKED_IN"


async def test_checkout_releases_the_rest_of_the_slot_to_the_waitlist(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
    bob: Student,
) -> None:
    sitting = await occupy(db, library.a1, T10, T12, user_id=alice.id, status="CHECKED_IN")
    entry = await joined(api, bob, seat_id=library.a1, start=T11, end=T12)
    clock.set(at(10, 30))

    response = await api.post(f"/reservations/{sitting}/checkout", headers=alice.headers)

    assert response.status_code == 200, response.text
    assert response.json()["end_time"] == iso(at(10, 30))
    offered = await my_entry(api, bob, entry["id"])
    assert offered["status"] == "OFFERED"
    assert offered["offer_expires_at"] == iso(at(10, 30) + CLAIM)
    held = await reservation_row(db, offered["reservation_id"])
    assert (held["start_time"], held["end_time"], held["status"]) == (T11, T12, "HELD")


async def test_an_offer_made_when_a_no_show_frees_the_seat_can_be_claimed_and_checked_in(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    database_url: str,
    clock: FrozenClock,
    library: Library,
    alice: Student,
    bob: Student,
) -> None:
    missed = await occupy(db, library.a1, T10, T11, user_id=alice.id)
    entry = await joined(api, bob, seat_id=library.a1, start=T10, end=T11)
    clock.set(T10 + GRACE + SECOND)
    async with sweeper(database_url) as sweep:
        assert (await sweep(clock.now())).no_shows == 1
        assert (await reservation_row(db, missed))["status"] == "NO_SHOW"
        offer = await my_entry(api, bob, entry["id"])
        assert offer["status"] == "OFFERED"

        clock.advance(MINUTE)
        # Bob claims the seat a minute after the offer: he must be able to sit down now...
        await claim_and_check_in(api, bob, entry["id"])
        # ...and the next sweep must not count his claimed seat as a no-show.
        assert (await sweep(clock.now() + MINUTE)).no_shows == 0


async def test_an_offer_made_at_checkout_can_be_claimed_and_checked_in(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
    bob: Student,
) -> None:
    sitting = await occupy(db, library.a1, T10, T11, user_id=alice.id, status="CHECKED_IN")
    entry = await joined(api, bob, seat_id=library.a1, start=T10, end=T11)
    clock.set(at(10, 30))
    checkout = await api.post(f"/reservations/{sitting}/checkout", headers=alice.headers)
    assert checkout.status_code == 200, checkout.text
    assert (await my_entry(api, bob, entry["id"]))["status"] == "OFFERED"

    await claim_and_check_in(api, bob, entry["id"])


# Notifications


async def add_notification(
    db: asyncpg.Connection, user_id: int, kind: str, created_at: datetime, **data: Any
) -> int:
    notification_id: int = await db.fetchval(
        "INSERT INTO notifications (user_id, type, data, created_at) "
        "VALUES ($1, $2, $3::jsonb, $4) RETURNING id",
        user_id,
        kind,
        json.dumps(data),
        created_at,
    )
    return notification_id


async def test_notifications_are_listed_newest_first_and_only_to_their_owner(
    api: httpx.AsyncClient, db: asyncpg.Connection, bob: Student, carol: Student
) -> None:
    first = await add_notification(
        db, bob.id, "reservation.no_show", NOW - HOUR, reservation_id=1, seat_id=2
    )
    second = await add_notification(
        db, bob.id, "waitlist.expired", NOW - MINUTE, entry_id=3, reservation_id=4, seat_id=2
    )
    await add_notification(db, carol.id, "reservation.no_show", NOW, reservation_id=5, seat_id=2)

    response = await api.get("/notifications", headers=bob.headers)

    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {
                "id": second,
                "type": "waitlist.expired",
                "data": {"entry_id": 3, "reservation_id": 4, "seat_id": 2},
                "created_at": iso(NOW - MINUTE),
                "read_at": None,
            },
            {
                "id": first,
                "type": "reservation.no_show",
                "data": {"reservation_id": 1, "seat_id": 2},
                "created_at": iso(NOW - HOUR),
                "read_at": None,
            },
        ],
        "total": 2,
    }


async def test_unread_only_leaves_out_read_notifications(
    api: httpx.AsyncClient, db: asyncpg.Connection, bob: Student
) -> None:
    read = await add_notification(db, bob.id, "reservation.no_show", NOW - HOUR)
    unread = await add_notification(db, bob.id, "reservation.no_show", NOW - MINUTE)
    assert (await api.post(f"/notifications/{read}/read", headers=bob.headers)).is_success

    assert [n["id"] for n in await my_notifications(api, bob, "?unread_only=true")] == [unread]
    assert [n["id"] for n in await my_notifications(api, bob)] == [unread, read]


async def test_reading_a_notification_sets_read_at_once(
    api: httpx.AsyncClient, db: asyncpg.Connection, clock: FrozenClock, bob: Student
) -> None:
    notification = await add_notification(db, bob.id, "reservation.no_show", NOW - HOUR)

    first = await api.post(f"/notifications/{notification}/read", headers=bob.headers)
    assert first.status_code == 200
    assert (first.json()["id"], first.json()["read_at"]) == (notification, iso(NOW))

    clock.advance(HOUR)
    again = await api.post(f"/notifications/{notification}/read", headers=bob.headers)
    assert again.status_code == 200
    assert again.json()["read_at"] == iso(NOW)


async def test_reading_someone_elses_notification_is_not_found(
    api: httpx.AsyncClient, db: asyncpg.Connection, bob: Student, carol: Student
) -> None:
    notification = await add_notification(db, bob.id, "reservation.no_show", NOW - HOUR)

    response = await api.post(f"/notifications/{notification}/read", headers=carol.headers)

    assert_error(response, 404, "not_found")
    assert_error(
        await api.post("/notifications/999999/read", headers=bob.headers), 404, "not_found"
    )
    read_at = await db.fetchval("SELECT read_at FROM notifications WHERE id = $1", notification)
    assert read_at is None


async def test_cancelling_ones_own_booking_sends_no_cancelled_notification(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    booked = await occupy(db, library.a1, user_id=alice.id)

    await cancel(api, alice, booked)

    assert await my_notifications(api, alice) == []
    assert await db.fetchval("SELECT count(*) FROM notifications") == 0


# Fair use


async def add_no_shows(db: asyncpg.Connection, student: Student, starts: list[datetime]) -> None:
    seat = await add_seat(db, await add_branch(db, "Elsewhere"), "N1")
    for start in starts:
        await add_reservation(
            db, user_id=student.id, seat_id=seat, start=start, end=start + HOUR, status="NO_SHOW"
        )


async def me(api: httpx.AsyncClient, student: Student) -> dict[str, Any]:
    response = await api.get("/auth/me", headers=student.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_two_recent_no_shows_do_not_suspend(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, bob: Student
) -> None:
    await add_no_shows(db, bob, [NOW - 2 * DAY, NOW - DAY])

    assert (await reserve(api, bob, library.a1)).status_code == 201
    assert (await me(api, bob))["suspended_until"] is None


async def test_three_no_shows_within_the_window_suspend_booking_and_waitlisting(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, bob: Student
) -> None:
    latest = NOW - DAY
    await add_no_shows(db, bob, [NOW - 20 * DAY, NOW - 10 * DAY, latest])
    await occupy(db, library.a2)
    until = iso(latest + 7 * DAY)

    booking = assert_error(await reserve(api, bob, library.a1), 403, "suspended")
    assert booking["suspended_until"] == until
    waiting = assert_error(await join(api, bob, seat_id=library.a2), 403, "suspended")
    assert waiting["suspended_until"] == until
    assert (await me(api, bob))["suspended_until"] == until
    assert await db.fetchval("SELECT count(*) FROM waitlist_entries") == 0


async def test_three_no_shows_spread_over_more_than_the_window_do_not_suspend(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, bob: Student
) -> None:
    await add_no_shows(db, bob, [NOW - 32 * DAY, NOW - 16 * DAY, NOW - DAY])

    assert (await reserve(api, bob, library.a1)).status_code == 201
    assert (await me(api, bob))["suspended_until"] is None


async def test_booking_is_possible_again_once_the_suspension_ends(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    bob: Student,
) -> None:
    latest = NOW - DAY
    await add_no_shows(db, bob, [NOW - 3 * DAY, NOW - 2 * DAY, latest])
    ends = latest + 7 * DAY
    later_slot = {"seat_id": library.a1, "start_time": iso(ends + HOUR)}
    body = {**later_slot, "end_time": iso(ends + 2 * HOUR)}

    clock.set(ends - SECOND)
    refused = await api.post("/reservations", json=body, headers=bob.headers)
    assert assert_error(refused, 403, "suspended")["suspended_until"] == iso(ends)

    clock.set(ends)
    assert (await me(api, bob))["suspended_until"] is None
    accepted = await api.post("/reservations", json=body, headers=bob.headers)
    assert accepted.status_code == 201, accepted.text


async def test_staff_offer_a_seats_free_time_now(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    admin: Student,
) -> None:
    """POST /admin/seats/{id}/offer (the HTTP twin of gRPC NotifyUsers)."""
    held = await add_reservation(db, user_id=bob.id, seat_id=library.a1, start=T10, end=T11)
    entry = await joined(api, alice, seat_id=library.a1)
    await db.execute("UPDATE reservations SET status = 'CANCELLED' WHERE id = $1", held)
    body = {"start_time": iso(T10), "end_time": iso(T11)}
    refused = await api.post(f"/admin/seats/{library.a1}/offer", json=body, headers=alice.headers)
    assert_error(refused, 403, "forbidden")
    made = await api.post(f"/admin/seats/{library.a1}/offer", json=body, headers=admin.headers)
    assert made.status_code == 200, made.text
    [offered] = made.json()["offered"]
    assert (offered["id"], offered["status"]) == (entry["id"], "OFFERED")
    assert len(await my_notifications(api, alice, kind="waitlist.offer")) == 1
    broken = await api.post(
        f"/admin/seats/{library.broken}/offer", json=body, headers=admin.headers
    )
    assert_error(broken, 409, "seat_unavailable")
    backwards = {"start_time": iso(T11), "end_time": iso(T10)}
    wrong = await api.post(
        f"/admin/seats/{library.a1}/offer", json=backwards, headers=admin.headers
    )
    assert wrong.status_code == 422
