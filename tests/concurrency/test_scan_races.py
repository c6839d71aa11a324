"""Seat-code scans racing on committed data, on the real clock: the exclusion constraints
decide who gets a free seat, whoever else scans or books it at the same moment."""

import asyncio
import base64
import hashlib
import hmac
from datetime import timedelta

import asyncpg
import httpx

from app.timeutil import iso_z, utcnow
from tests.conftest import ClientFactory
from tests.factories import Student, add_branch, add_seat, add_student, add_students, booking

SECRET = "seat-code-secret-for-races-" + "z" * 20
# Every request holds its own connection: all of them really are in flight together.
SETTINGS = {"DB_POOL_MAX_SIZE": 60, "SEAT_CODE_SECRET": SECRET}
ACTIVE = "('HELD', 'CONFIRMED', 'CHECKED_IN')"


def k_of(seat_id: int) -> str:
    mac = hmac.new(SECRET.encode(), f"seat:{seat_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode()[:10]


async def scan(api: httpx.AsyncClient, student: Student, seat_id: int) -> httpx.Response:
    return await api.post(
        f"/seats/{seat_id}/scan", json={"k": k_of(seat_id)}, headers=student.headers
    )


def outcome(response: httpx.Response) -> tuple[int, str | None]:
    body = response.json()
    return response.status_code, body.get("code") or body.get("action")


async def active_rows(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch(f"SELECT * FROM reservations WHERE status IN {ACTIVE} ORDER BY id")


async def test_twenty_students_scanning_one_free_seat_at_once_make_one_walk_in(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    api = await make_client(**SETTINGS)
    seat = await add_seat(db, await add_branch(db), "W1")
    students = await add_students(db, "SCAN", 20)
    responses = await asyncio.gather(*(scan(api, s, seat) for s in students))
    assert (
        sorted(outcome(r) for r in responses) == [(201, "walk_in")] + [(409, "seat_conflict")] * 19
    )
    [winner] = [r.json()["reservation"] for r in responses if r.status_code == 201]
    assert winner["status"] == "CHECKED_IN"
    # Every loser is told when the seat frees up: the walk-in's end (or null past midnight).
    assert {r.json()["free_at"] for r in responses if r.status_code == 409} <= {
        winner["end_time"],
        None,
    }
    rows = await active_rows(db)
    assert [(row["id"], row["seat_id"], row["status"]) for row in rows] == [
        (winner["id"], seat, "CHECKED_IN")
    ]


async def test_scans_and_bookings_of_one_seat_at_once_leave_one_reservation(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    api = await make_client(**SETTINGS)
    seat = await add_seat(db, await add_branch(db), "W1")
    scanners = await add_students(db, "SCAN", 10)
    bookers = await add_students(db, "BOOK", 10)
    start = utcnow() + timedelta(seconds=30)  # inside every walk-in from now
    body = booking(seat, start, start + timedelta(hours=1))
    responses = await asyncio.gather(
        *(scan(api, s, seat) for s in scanners),
        *(api.post("/reservations", json=body, headers=b.headers) for b in bookers),
    )
    winners = [r for r in responses if r.status_code in (200, 201)]
    assert len(winners) == 1, [outcome(r) for r in responses]
    assert {outcome(r) for r in responses if r not in winners} == {(409, "seat_conflict")}
    assert len(await active_rows(db)) == 1


async def test_one_student_scanning_twice_at_once_gets_one_walk_in(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    api = await make_client(**SETTINGS)
    seat = await add_seat(db, await add_branch(db), "W1")
    student = await add_student(db, "S0000001")
    responses = await asyncio.gather(*(scan(api, student, seat) for _ in range(5)))
    # The walk-in of the tap that won is the others' answer too: they find it checked in.
    assert sorted(outcome(r) for r in responses) == [(200, "checked_in")] * 4 + [(201, "walk_in")]
    assert len({r.json()["reservation"]["id"] for r in responses}) == 1
    rows = await active_rows(db)
    assert len(rows) == 1 and rows[0]["status"] == "CHECKED_IN"
    assert iso_z(rows[0]["start_time"]) == responses[0].json()["reservation"]["start_time"]
