"""Time done right, through the API (issue 13): branches in zones with daylight saving
and odd offsets; busy lists and `date` queries on DST days; a closure on a DST day; and
Seatsurfing's reported time-zone bugs as regression cases:

- seatsurfing/seatsurfing#19 (bookings two hours off in Europe/Berlin summer time) and
  the "whole day shifted by the offset" class: a whole local day booked in
  Pacific/Chatham (+13:45) is that day's busy interval, not its neighbours';
- seatsurfing/seatsurfing#1288 (the cancel cutoff computed in UTC instead of local
  time): here the cutoff is an instant, start + grace, in any zone;
- seatsurfing/seatsurfing#607 and #2204 ("my bookings" / "current" compared in UTC):
  a reservation under way in America/Chicago is upcoming until its end instant;
- the edge conflict of one booking ending exactly when the next starts: half-open
  intervals, back to back is no conflict, even across a DST change.
"""

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from tests.conftest import ClientFactory
from tests.factories import (
    RULES,
    FrozenClock,
    Student,
    add_branch,
    add_seat,
    add_student,
    assert_error,
    iso,
)

SECOND = timedelta(seconds=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(utc(2026, 10, 20))


@pytest.fixture
async def api(make_client: ClientFactory, clock: FrozenClock) -> httpx.AsyncClient:
    return await make_client(
        clock=clock, MAX_RESERVATION_HOURS=25, BOOKING_HORIZON_DAYS=400, **RULES
    )


@pytest.fixture
async def student(db: asyncpg.Connection) -> Student:
    return await add_student(db, "S6000001")


async def seat_in(db: asyncpg.Connection, timezone: str) -> int:
    return await add_seat(db, await add_branch(db, timezone.split("/")[-1], timezone), "T1")


async def book(
    api: httpx.AsyncClient, student: Student, seat: int, start: datetime, end: datetime
) -> httpx.Response:
    body = {"seat_id": seat, "start_time": iso(start), "end_time": iso(end)}
    return await api.post("/reservations", json=body, headers=student.headers)


async def busy_on(api: httpx.AsyncClient, seat: int, day: str) -> list[dict[str, str]]:
    response = await api.get(f"/seats/{seat}", params={"date": day})
    assert response.status_code == 200, response.text
    busy: list[dict[str, str]] = response.json()["busy"]
    return busy


async def test_new_york_fall_back_day_has_25_hours_of_busy_list(
    api: httpx.AsyncClient, db: asyncpg.Connection, student: Student
) -> None:
    # Sunday 1 Nov 2026 in New York: 04:00 UTC to 05:00 UTC the next day (EDT -> EST).
    seat = await seat_in(db, "America/New_York")
    late = (utc(2026, 11, 2, 4, 30), utc(2026, 11, 2, 5))  # 23:30-24:00 EST on Nov 1
    early = (utc(2026, 11, 1, 4), utc(2026, 11, 1, 5))  # 00:00-01:00 EDT on Nov 1
    for start, end in (late, early):
        assert (await book(api, student, seat, start, end)).status_code == 201
    assert await busy_on(api, seat, "2026-11-01") == [
        {"start_time": iso(early[0]), "end_time": iso(early[1])},
        {"start_time": iso(late[0]), "end_time": iso(late[1])},
    ]
    assert await busy_on(api, seat, "2026-10-31") == []
    assert await busy_on(api, seat, "2026-11-02") == []


async def test_the_repeated_hour_takes_two_back_to_back_bookings(
    api: httpx.AsyncClient, db: asyncpg.Connection, student: Student
) -> None:
    # New York 01:00-02:00 happens twice on 1 Nov 2026: 05:00-06:00 and 06:00-07:00 UTC.
    seat = await seat_in(db, "America/New_York")
    other = await add_student(db, "S6000002")
    first = await book(api, student, seat, utc(2026, 11, 1, 5), utc(2026, 11, 1, 6))
    second = await book(api, other, seat, utc(2026, 11, 1, 6), utc(2026, 11, 1, 7))
    assert (first.status_code, second.status_code) == (201, 201)
    third = await add_student(db, "S6000003")
    clash = await book(api, third, seat, utc(2026, 11, 1, 5, 59), utc(2026, 11, 1, 6, 1))
    assert_error(clash, 409, "seat_conflict")


async def test_a_whole_local_day_in_chatham_is_that_days_busy_interval(
    api: httpx.AsyncClient, clock: FrozenClock, db: asyncpg.Connection, student: Student
) -> None:
    # Pacific/Chatham in December is UTC+13:45: 15 Dec local is 10:15 UTC Dec 14 to
    # 10:15 UTC Dec 15.
    clock.set(utc(2026, 12, 1))
    seat = await seat_in(db, "Pacific/Chatham")
    branch = (await api.get(f"/seats/{seat}")).json()["branch"]
    branch_id = await db.fetchval("SELECT id FROM branches WHERE name = $1", branch)
    hours = await api.get(
        f"/branches/{branch_id}/hours", params={"from": "2026-12-15", "to": "2026-12-15"}
    )
    [day] = hours.json()["days"]
    assert day["open"] == [
        {"start_time": iso(utc(2026, 12, 14, 10, 15)), "end_time": iso(utc(2026, 12, 15, 10, 15))}
    ]
    start, end = utc(2026, 12, 14, 10, 15), utc(2026, 12, 15, 10, 15)
    assert (await book(api, student, seat, start, end)).status_code == 201
    assert await busy_on(api, seat, "2026-12-15") == [
        {"start_time": iso(start), "end_time": iso(end)}
    ]
    assert await busy_on(api, seat, "2026-12-14") == []
    assert await busy_on(api, seat, "2026-12-16") == []


async def test_the_cancel_cutoff_is_start_plus_grace_in_kathmandu(
    api: httpx.AsyncClient, clock: FrozenClock, db: asyncpg.Connection, student: Student
) -> None:
    seat = await seat_in(db, "Asia/Kathmandu")  # UTC+05:45, no DST
    start = utc(2026, 10, 21, 3, 15)  # 09:00 local
    first = (await book(api, student, seat, start, start + timedelta(hours=1))).json()
    second = (
        await book(api, student, seat, start + timedelta(hours=2), start + timedelta(hours=3))
    ).json()
    grace = timedelta(minutes=RULES["GRACE_MINUTES"])
    assert first["check_in_deadline"] == iso(start + grace)
    clock.set(start + grace)
    ok = await api.delete(f"/reservations/{first['id']}", headers=student.headers)
    assert ok.status_code == 200, ok.text
    clock.set(start + timedelta(hours=2) + grace + SECOND)
    late = await api.delete(f"/reservations/{second['id']}", headers=student.headers)
    assert_error(late, 409, "invalid_state")


async def test_a_closure_on_a_dst_day_keeps_its_special_hours_in_local_time(
    api: httpx.AsyncClient, clock: FrozenClock, db: asyncpg.Connection, student: Student
) -> None:
    # Berlin, Sunday 28 March 2027 (02:00 -> 03:00); the closure opens 01:00-04:00: two
    # real hours, 00:00-02:00 UTC.
    clock.set(utc(2027, 3, 1))
    seat = await seat_in(db, "Europe/Berlin")
    branch_id = await db.fetchval("SELECT branch_id FROM seats WHERE id = $1", seat)
    await db.execute(
        "INSERT INTO branch_closures (branch_id, date_from, date_to, reason, open) "
        "VALUES ($1, '2027-03-28', '2027-03-28', 'Short Sunday', "
        """'[{"opens": "01:00", "closes": "04:00"}]')""",
        branch_id,
    )
    [day] = (
        await api.get(
            f"/branches/{branch_id}/hours", params={"from": "2027-03-28", "to": "2027-03-28"}
        )
    ).json()["days"]
    assert day["open"] == [
        {"start_time": iso(utc(2027, 3, 28, 0)), "end_time": iso(utc(2027, 3, 28, 2))}
    ]
    assert day["closure"] == {"reason": "Short Sunday"}
    assert (
        await book(api, student, seat, utc(2027, 3, 28, 0), utc(2027, 3, 28, 2))
    ).status_code == 201
    refused = await book(api, student, seat, utc(2027, 3, 28, 2), utc(2027, 3, 28, 3))
    detail = assert_error(refused, 422, "outside_opening_hours")["detail"]
    assert "open 01:00-04:00 on Sunday 2027-03-28" in detail
    assert "Short Sunday" in detail


async def test_lord_howe_half_hour_shift_keeps_back_to_back_bookings_apart(
    api: httpx.AsyncClient, clock: FrozenClock, db: asyncpg.Connection, student: Student
) -> None:
    # Australia/Lord_Howe, Sunday 4 April 2027: 02:00 (+11) falls back to 01:30 (+10:30),
    # i.e. at 15:00 UTC Apr 3. Bookings that meet at the change do not conflict.
    clock.set(utc(2027, 3, 1))
    seat = await seat_in(db, "Australia/Lord_Howe")
    other = await add_student(db, "S6000002")
    change = utc(2027, 4, 3, 15)
    before = await book(api, student, seat, change - timedelta(hours=1), change)
    after = await book(api, other, seat, change, change + timedelta(hours=1))
    assert (before.status_code, after.status_code) == (201, 201)
    busy = await busy_on(api, seat, "2027-04-04")
    assert [b["start_time"] for b in busy] == [
        iso(change - timedelta(hours=1)),
        iso(change),
    ]


async def test_a_reservation_under_way_in_chicago_is_upcoming_until_it_ends(
    api: httpx.AsyncClient, clock: FrozenClock, db: asyncpg.Connection, student: Student
) -> None:
    seat = await seat_in(db, "America/Chicago")  # UTC-05:00 in October
    start = utc(2026, 10, 20, 14)  # 09:00 local
    made = (await book(api, student, seat, start, start + timedelta(hours=3))).json()
    for moment, listed in (
        (start + timedelta(hours=2, minutes=59), True),
        (start + timedelta(hours=3), False),
    ):
        clock.set(moment)
        upcoming = await api.get(
            "/reservations", params={"scope": "upcoming"}, headers=student.headers
        )
        assert (made["id"] in [r["id"] for r in upcoming.json()["items"]]) is listed
