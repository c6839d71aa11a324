"""Everything respects the opening hours (api.md, "Booking within hours"): bookings,
waitlist joins, offers, walk-in scans, seat availability and branch counts, with 422
``outside_opening_hours`` naming the day's openings in the branch's local time."""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import ClientFactory
from tests.factories import (
    RULES,
    FrozenClock,
    Student,
    add_branch,
    add_reservation,
    add_seat,
    add_student,
    assert_error,
    iso,
    my_entries,
    reservation_row,
)

SECRET = "seat-code-secret-for-tests-" + "z" * 20
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    """December 2026 in Berlin is UTC+1: local ``hour`` is ``hour - 1`` in UTC."""
    return datetime(2026, 12, day, hour - 1, minute, tzinfo=UTC)


# Tuesday, Dec 1 2026, 10:30 in Berlin.
NOW = berlin(1, 10, 30)


def k_of(seat_id: int) -> str:
    mac = hmac.new(SECRET.encode(), f"seat:{seat_id}".encode(), hashlib.sha256)
    return base64.b32encode(mac.digest()).decode("ascii").rstrip("=")[:10]


@dataclass(frozen=True)
class Library:
    branch: int
    seat: int
    other_seat: int


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def api(make_client: ClientFactory, clock: FrozenClock) -> httpx.AsyncClient:
    return await make_client(clock=clock, SEAT_CODE_SECRET=SECRET, **RULES)


async def set_hours(db: asyncpg.Connection, branch: int, hours: dict[str, Any]) -> None:
    await db.execute(
        "UPDATE branches SET hours = $2::jsonb WHERE id = $1", branch, json.dumps(hours)
    )


@pytest.fixture
async def library(db: asyncpg.Connection) -> Library:
    """Main, Berlin: weekdays 08:00-22:00, closed at weekends."""
    branch = await add_branch(db, "Main", "Europe/Berlin")
    await set_hours(db, branch, {d: [{"opens": "08:00", "closes": "22:00"}] for d in WEEKDAYS})
    return Library(branch, await add_seat(db, branch, "A1"), await add_seat(db, branch, "A2"))


@pytest.fixture
async def student(db: asyncpg.Connection) -> Student:
    return await add_student(db, "S2000001")


async def book(
    api: httpx.AsyncClient, student: Student, seat: int, start: datetime, end: datetime
) -> httpx.Response:
    body = {"seat_id": seat, "start_time": iso(start), "end_time": iso(end)}
    return await api.post("/reservations", json=body, headers=student.headers)


async def test_a_booking_inside_the_hours_is_made(
    api: httpx.AsyncClient, library: Library, student: Student
) -> None:
    response = await book(api, student, library.seat, berlin(1, 19), berlin(1, 22))
    assert response.status_code == 201, response.text


async def test_a_booking_past_closing_names_the_days_hours_in_local_time(
    api: httpx.AsyncClient, library: Library, student: Student
) -> None:
    response = await book(api, student, library.seat, berlin(1, 21), berlin(1, 23))
    body = assert_error(response, 422, "outside_opening_hours")
    assert "Main is open 08:00-22:00 on Tuesday 2026-12-01 (Europe/Berlin time)" in body["detail"]


async def test_a_booking_on_a_closed_day_says_the_branch_is_closed(
    api: httpx.AsyncClient, library: Library, student: Student
) -> None:
    response = await book(api, student, library.seat, berlin(5, 10), berlin(5, 12))
    body = assert_error(response, 422, "outside_opening_hours")
    assert "Main is closed on Saturday 2026-12-05" in body["detail"]


async def test_a_closure_names_its_reason_when_it_refuses_a_booking(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, student: Student
) -> None:
    await db.execute(
        "INSERT INTO branch_closures (branch_id, date_from, date_to, reason) "
        "VALUES ($1, '2026-12-03', '2026-12-03', 'Staff training')",
        library.branch,
    )
    response = await book(api, student, library.seat, berlin(3, 10), berlin(3, 12))
    body = assert_error(response, 422, "outside_opening_hours")
    assert "closed on Thursday 2026-12-03" in body["detail"]
    assert "Staff training" in body["detail"]


async def test_a_night_opening_across_midnight_takes_one_booking(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, student: Student
) -> None:
    await set_hours(
        db,
        library.branch,
        {
            "tuesday": [{"opens": "08:00", "closes": "24:00"}],
            "wednesday": [{"opens": "00:00", "closes": "02:00"}],
        },
    )
    across = await book(api, student, library.seat, berlin(1, 23), berlin(2, 1, 30))
    assert across.status_code == 201, across.text
    too_late = await book(api, student, library.other_seat, berlin(2, 1), berlin(2, 3))
    assert_error(too_late, 422, "outside_opening_hours")


async def test_a_waitlist_entry_must_lie_within_the_hours(
    api: httpx.AsyncClient, library: Library, student: Student
) -> None:
    body = {
        "seat_id": library.seat,
        "start_time": iso(berlin(1, 21)),
        "end_time": iso(berlin(1, 23)),
    }
    response = await api.post("/waitlist", json=body, headers=student.headers)
    assert_error(response, 422, "outside_opening_hours")


async def test_seats_are_not_available_outside_the_hours_nor_now_while_closed(
    api: httpx.AsyncClient, clock: FrozenClock, library: Library
) -> None:
    evening = {"start_time": iso(berlin(1, 21)), "end_time": iso(berlin(1, 23))}
    listed = (await api.get("/seats", params=evening)).json()["items"]
    assert {(s["available"], s["state"]) for s in listed} == {(False, "outside_hours")}
    inside = {"start_time": iso(berlin(1, 19)), "end_time": iso(berlin(1, 21))}
    assert all(s["available"] for s in (await api.get("/seats", params=inside)).json()["items"])
    availability = await api.get(f"/seats/{library.seat}/availability", params=evening)
    assert availability.json()["available"] is False

    clock.set(berlin(1, 23))  # closed now
    now_listed = (await api.get("/seats")).json()["items"]
    assert {s["state"] for s in now_listed} == {"outside_hours"}
    assert (await api.get(f"/seats/{library.seat}")).json()["available"] is False
    [branch] = (await api.get("/branches")).json()
    assert branch["open_now"] is False
    assert branch["available_now"] == 0
    clock.set(berlin(2, 8))  # opened again: the cached "now" answer is not served
    assert all(s["available"] for s in (await api.get("/seats")).json()["items"])
    [branch] = (await api.get("/branches")).json()
    assert branch["available_now"] == 2


async def test_an_offer_never_crosses_a_closing(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    student: Student,
) -> None:
    holder = await add_student(db, "S2000002")
    held = await add_reservation(
        db, user_id=holder.id, seat_id=library.seat, start=berlin(1, 18), end=berlin(1, 21)
    )
    body = {
        "seat_id": library.seat,
        "start_time": iso(berlin(1, 18)),
        "end_time": iso(berlin(1, 21)),
    }
    joined = await api.post("/waitlist", json=body, headers=student.headers)
    assert joined.status_code == 201, joined.text
    # Staff shorten the day; the entry keeps its place but no longer fits the hours.
    await set_hours(
        db, library.branch, {d: [{"opens": "08:00", "closes": "20:00"}] for d in WEEKDAYS}
    )
    cancelled = await api.delete(f"/reservations/{held}", headers=holder.headers)
    assert cancelled.status_code == 200, cancelled.text
    entry = (await my_entries(api, student))[joined.json()["id"]]
    assert entry["status"] == "WAITING"


async def test_a_walk_in_ends_at_closing_time_and_none_while_closed(
    api: httpx.AsyncClient, clock: FrozenClock, db: asyncpg.Connection, library: Library,
    student: Student,
) -> None:  # fmt: skip
    clock.set(berlin(1, 20, 30))
    scanned = await api.post(
        f"/seats/{library.seat}/scan", json={"k": k_of(library.seat)}, headers=student.headers
    )
    assert scanned.status_code == 201, scanned.text
    row = await reservation_row(db, scanned.json()["reservation"]["id"])
    assert row["end_time"] == berlin(1, 22)

    clock.set(berlin(1, 22, 30))
    other = await add_student(db, "S2000002")
    refused = await api.post(
        f"/seats/{library.other_seat}/scan",
        json={"k": k_of(library.other_seat)},
        headers=other.headers,
    )
    body = assert_error(refused, 422, "outside_opening_hours")
    assert "08:00-22:00" in body["detail"]


async def test_a_booking_across_the_spring_forward_hour_counts_real_time(
    api: httpx.AsyncClient, clock: FrozenClock, db: asyncpg.Connection, student: Student
) -> None:
    # Berlin, Sunday 28 March 2027: 02:00 becomes 03:00. Open 00:00-24:00 (23 hours).
    branch = await add_branch(db, "Night", "Europe/Berlin")
    seat = await add_seat(db, branch, "N1")
    clock.set(datetime(2027, 3, 27, 12, tzinfo=UTC))
    # 01:00 to 05:00 local is three real hours: within a four-hour maximum.
    start, end = datetime(2027, 3, 28, 0, tzinfo=UTC), datetime(2027, 3, 28, 3, tzinfo=UTC)
    response = await book(api, student, seat, start, end)
    assert response.status_code == 201, response.text
    day = (await api.get(f"/seats/{seat}", params={"date": "2027-03-28"})).json()
    assert day["busy"] == [{"start_time": iso(start), "end_time": iso(end)}]
