"""Booking races on committed data: one app, many requests at once, and PostgreSQL's
exclusion constraints deciding who wins. Real times a day ahead; no frozen clock."""

import asyncio
import random
from datetime import datetime, timedelta

import asyncpg
import httpx

from app.timeutil import utcnow
from tests.conftest import ClientFactory
from tests.factories import Student, add_branch, add_seat, add_student, add_students, booking

HOUR = timedelta(hours=1)
ACTIVE = "('HELD', 'CONFIRMED', 'CHECKED_IN')"
# Every request holds its own connection: all of them really are in flight together.
POOL = {"DB_POOL_MAX_SIZE": 60}


def tomorrow_at(hour: int, minute: int = 0) -> datetime:
    midnight = (utcnow() + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(hours=hour, minutes=minute)


def outcome(response: httpx.Response) -> tuple[int, str | None]:
    return response.status_code, response.json().get("code")


async def active_rows(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch(f"SELECT * FROM reservations WHERE status IN {ACTIVE} ORDER BY id")


async def test_fifty_users_booking_one_seat_at_once_get_exactly_one_reservation(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    api = await make_client(**POOL)
    seat = await add_seat(db, await add_branch(db), "R1")
    students = await add_students(db, "RACE", 50)
    start = tomorrow_at(10)
    responses = await asyncio.gather(
        *(
            api.post("/reservations", json=booking(seat, start, start + HOUR), headers=s.headers)
            for s in students
        )
    )
    assert sorted(outcome(r) for r in responses) == [(201, None)] + [(409, "seat_conflict")] * 49
    [winner] = [r.json() for r in responses if r.status_code == 201]
    rows = await active_rows(db)
    assert [(row["id"], row["user_id"], row["seat_id"]) for row in rows] == [
        (winner["id"], winner["user_id"], seat)
    ]


async def test_one_user_booking_twenty_seats_at_once_gets_exactly_one(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    api = await make_client(**POOL)
    branch = await add_branch(db)
    seats = [await add_seat(db, branch, f"R{n}") for n in range(20)]
    student = await add_student(db, "S0000001")
    start = tomorrow_at(10)
    responses = await asyncio.gather(
        *(
            api.post(
                "/reservations", json=booking(seat, start, start + HOUR), headers=student.headers
            )
            for seat in seats
        )
    )
    assert sorted(outcome(r) for r in responses) == [(201, None)] + [(409, "user_overlap")] * 19
    [winner] = [r.json() for r in responses if r.status_code == 201]
    rows = await active_rows(db)
    assert [(row["id"], row["user_id"]) for row in rows] == [(winner["id"], student.id)]


async def test_twenty_concurrent_repeats_of_one_idempotency_key_make_one_reservation(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    api = await make_client(**POOL)
    seat = await add_seat(db, await add_branch(db), "R1")
    student = await add_student(db, "S0000001")
    start = tomorrow_at(10)
    headers = {**student.headers, "Idempotency-Key": "one-booking-please"}
    responses = await asyncio.gather(
        *(
            api.post("/reservations", json=booking(seat, start, start + HOUR), headers=headers)
            for _ in range(20)
        )
    )
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
    assert sorted(replayed, key=str) == [None] + ["true"] * 19  # one booked, the rest replayed
    assert await db.fetchval("SELECT count(*) FROM reservations") == 1
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 1


# Any two active reservations sharing a seat or a user whose intervals overlap.
_OVERLAPS = f"""
    SELECT a.id, b.id FROM reservations a JOIN reservations b
      ON a.id < b.id AND ({{same}})
     AND tstzrange(a.start_time, a.end_time, '[)') && tstzrange(b.start_time, b.end_time, '[)')
    WHERE a.status IN {ACTIVE} AND b.status IN {ACTIVE}
"""

# Whether a refused interval really meets an active reservation of that seat / user.
_BLOCKED_BY = f"""
    SELECT EXISTS (SELECT 1 FROM reservations WHERE {{column}} = $1 AND status IN {ACTIVE}
                   AND tstzrange(start_time, end_time, '[)') && tstzrange($2, $3, '[)'))
"""


async def test_random_overlapping_bookings_leave_no_overlap_per_seat_or_user(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    api = await make_client(**POOL)
    branch = await add_branch(db)
    seats = [await add_seat(db, branch, f"R{n}") for n in range(3)]
    students = await add_students(db, "MIX", 30)
    rng = random.Random(20261201)  # noqa: S311 - reproducible test data, not secrets
    requests: list[tuple[Student, int, datetime, datetime]] = []
    for student in students:
        for _ in range(3):
            start = tomorrow_at(9, 15 * rng.randrange(0, 24))
            requests.append(
                (
                    student,
                    rng.choice(seats),
                    start,
                    start + 15 * rng.randint(2, 8) * timedelta(minutes=1),
                )
            )
    responses = await asyncio.gather(
        *(
            api.post("/reservations", json=booking(seat, start, end), headers=student.headers)
            for student, seat, start, end in requests
        )
    )

    outcomes = [outcome(r) for r in responses]
    expected = {(201, None), (409, "seat_conflict"), (409, "user_overlap")}
    assert set(outcomes) <= expected, [r.text for r in responses if outcome(r) not in expected]
    assert (409, "seat_conflict") in outcomes  # the race was real
    won = {r.json()["id"] for r in responses if r.status_code == 201}
    assert won == {row["id"] for row in await active_rows(db)}
    assert await db.fetch(_OVERLAPS.format(same="a.seat_id = b.seat_id")) == []
    assert await db.fetch(_OVERLAPS.format(same="a.user_id = b.user_id")) == []
    # Every refusal is explained by what was committed: no false conflicts.
    for (student, seat, start, end), (status, code) in zip(requests, outcomes, strict=True):
        if code == "seat_conflict":
            assert await db.fetchval(_BLOCKED_BY.format(column="seat_id"), seat, start, end)
        elif code == "user_overlap":
            assert await db.fetchval(_BLOCKED_BY.format(column="user_id"), student.id, start, end)
        else:
            assert status == 201


async def test_a_grid_of_users_and_seats_racing_for_one_interval_books_one_per_seat(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    # Each request collides with its row (same user) and its column (same seat): the two
    # exclusion constraints are waited on in opposite orders by different transactions.
    api = await make_client(**POOL)
    branch = await add_branch(db)
    seats = [await add_seat(db, branch, f"R{n}") for n in range(6)]
    students = await add_students(db, "GRID", 15)
    start = tomorrow_at(10)
    requests = [(student, seat) for student in students for seat in seats]
    responses = await asyncio.gather(
        *(
            api.post("/reservations", json=booking(seat, start, start + HOUR), headers=s.headers)
            for s, seat in requests
        )
    )
    outcomes = [outcome(r) for r in responses]
    expected = {(201, None), (409, "seat_conflict"), (409, "user_overlap")}
    assert set(outcomes) <= expected, [r.text for r in responses if outcome(r) not in expected]
    # Every refusal names a committed winner, so every seat ends up with one booking.
    assert outcomes.count((201, None)) == len(seats)
    rows = await active_rows(db)
    assert sorted(row["seat_id"] for row in rows) == seats
    assert len({row["user_id"] for row in rows}) == len(seats)
