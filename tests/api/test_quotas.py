"""Branch quotas (api.md, "Policy per branch"): max_bookings_per_day (local days) and
max_hours_per_week (ISO weeks, local time), 409 quota_exceeded {quota, limit, used},
what counts, offers skipping over-quota entrants, GET /branches/{id}/quota, and the
calendar edges: days of 23 and 25 hours, ISO weeks across a year end."""

from datetime import UTC, datetime, timedelta
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
)

HOUR = timedelta(hours=1)
NOW = datetime(2026, 12, 1, 6, tzinfo=UTC)  # Tuesday


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def api(make_client: ClientFactory, clock: FrozenClock) -> httpx.AsyncClient:
    return await make_client(clock=clock, BOOKING_HORIZON_DAYS=60, **RULES)


@pytest.fixture
async def student(db: asyncpg.Connection) -> Student:
    return await add_student(db, "S4000001")


async def branch_with(
    db: asyncpg.Connection, timezone: str = "UTC", seats: int = 3, **quota: Any
) -> tuple[int, list[int]]:
    branch = await add_branch(db, f"Q-{timezone}", timezone)
    await db.execute(
        "UPDATE branches SET max_bookings_per_day = $2, max_hours_per_week = $3 WHERE id = $1",
        branch,
        quota.get("max_bookings_per_day"),
        quota.get("max_hours_per_week"),
    )
    return branch, [await add_seat(db, branch, f"Q{n}") for n in range(seats)]


async def book(
    api: httpx.AsyncClient, student: Student, seat: int, start: datetime, end: datetime
) -> httpx.Response:
    body = {"seat_id": seat, "start_time": iso(start), "end_time": iso(end)}
    return await api.post("/reservations", json=body, headers=student.headers)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


async def test_the_daily_quota_refuses_the_next_booking_with_limit_and_used(
    api: httpx.AsyncClient, db: asyncpg.Connection, student: Student
) -> None:
    _, seats = await branch_with(db, max_bookings_per_day=2)
    assert (await book(api, student, seats[0], utc(2026, 12, 1, 8), utc(2026, 12, 1, 9))).is_success
    assert (
        await book(api, student, seats[1], utc(2026, 12, 1, 10), utc(2026, 12, 1, 11))
    ).is_success
    refused = await book(api, student, seats[2], utc(2026, 12, 1, 12), utc(2026, 12, 1, 13))
    body = assert_error(refused, 409, "quota_exceeded")
    assert (body["quota"], body["limit"], body["used"]) == ("max_bookings_per_day", 2, 2)
    # Another day is another count.
    assert (
        await book(api, student, seats[2], utc(2026, 12, 2, 12), utc(2026, 12, 2, 13))
    ).is_success


async def test_a_cancellation_gives_the_booking_back_and_a_no_show_does_not(
    api: httpx.AsyncClient, db: asyncpg.Connection, student: Student
) -> None:
    _, seats = await branch_with(db, max_bookings_per_day=1)
    first = await book(api, student, seats[0], utc(2026, 12, 1, 8), utc(2026, 12, 1, 9))
    cancelled = await api.delete(f"/reservations/{first.json()['id']}", headers=student.headers)
    assert cancelled.status_code == 200
    assert (
        await book(api, student, seats[1], utc(2026, 12, 1, 10), utc(2026, 12, 1, 11))
    ).is_success

    no_show = (utc(2026, 12, 2, 7), utc(2026, 12, 2, 8))
    await add_reservation(
        db, user_id=student.id, seat_id=seats[0], start=no_show[0], end=no_show[1], status="NO_SHOW"
    )
    refused = await book(api, student, seats[1], utc(2026, 12, 2, 10), utc(2026, 12, 2, 11))
    assert assert_error(refused, 409, "quota_exceeded")["used"] == 1


async def test_the_weekly_hours_count_the_iso_week_and_only_this_branch(
    api: httpx.AsyncClient, db: asyncpg.Connection, student: Student
) -> None:
    _, seats = await branch_with(db, max_hours_per_week=5)
    other = await add_seat(db, await add_branch(db, "Elsewhere"), "E1")
    assert (await book(api, student, other, utc(2026, 12, 1, 8), utc(2026, 12, 1, 12))).is_success
    assert (
        await book(api, student, seats[0], utc(2026, 12, 1, 13), utc(2026, 12, 1, 16))
    ).is_success
    # Sunday Dec 6 is the same ISO week (2026-W49): 3 + 3 > 5.
    refused = await book(api, student, seats[1], utc(2026, 12, 6, 10), utc(2026, 12, 6, 13))
    body = assert_error(refused, 409, "quota_exceeded")
    assert (body["quota"], body["limit"], body["used"]) == ("max_hours_per_week", 5, 3)
    assert (
        await book(api, student, seats[1], utc(2026, 12, 6, 10), utc(2026, 12, 6, 12))
    ).is_success
    # Monday Dec 7 starts 2026-W50.
    assert (
        await book(api, student, seats[1], utc(2026, 12, 7, 10), utc(2026, 12, 7, 14))
    ).is_success


async def test_iso_weeks_across_the_year_end(
    api: httpx.AsyncClient, db: asyncpg.Connection, student: Student
) -> None:
    # ISO 2026-W53 runs Mon Dec 28 2026 to Sun Jan 3 2027; 2027-W01 starts Mon Jan 4.
    branch, seats = await branch_with(db, max_hours_per_week=4)
    assert (
        await book(api, student, seats[0], utc(2026, 12, 29, 8), utc(2026, 12, 29, 11))
    ).is_success
    refused = await book(api, student, seats[1], utc(2027, 1, 2, 8), utc(2027, 1, 2, 10))
    assert assert_error(refused, 409, "quota_exceeded")["used"] == 3
    assert (await book(api, student, seats[1], utc(2027, 1, 4, 8), utc(2027, 1, 4, 12))).is_success
    use = await api.get(
        f"/branches/{branch}/quota", params={"date": "2027-01-01"}, headers=student.headers
    )
    assert use.json()["iso_week"] == "2026-W53"
    assert use.json()["hours_per_week"] == {"limit": 4, "used": 3}


async def test_an_interval_across_sunday_midnight_counts_in_each_week(
    api: httpx.AsyncClient, db: asyncpg.Connection, student: Student
) -> None:
    _, seats = await branch_with(db, max_hours_per_week=2)
    assert (
        await book(api, student, seats[0], utc(2026, 12, 6, 20), utc(2026, 12, 6, 22))
    ).is_success
    # 23:00 Sunday to 01:00 Monday: one more hour in W49 (full) is refused.
    refused = await book(api, student, seats[1], utc(2026, 12, 6, 23), utc(2026, 12, 7, 1))
    assert assert_error(refused, 409, "quota_exceeded")["quota"] == "max_hours_per_week"


async def test_local_days_of_23_and_25_hours_bound_the_daily_count(
    api: httpx.AsyncClient, clock: FrozenClock, db: asyncpg.Connection, student: Student
) -> None:
    # Berlin, Sunday 25 October 2026 is 25 hours long: 22:00 UTC Oct 24 to 23:00 UTC Oct 25.
    clock.set(utc(2026, 10, 20, 0))
    _, seats = await branch_with(db, "Europe/Berlin", max_bookings_per_day=1)
    first = await book(api, student, seats[0], utc(2026, 10, 24, 22, 30), utc(2026, 10, 24, 23))
    assert first.status_code == 201, first.text  # 00:30 local on the 25th
    late = await book(api, student, seats[1], utc(2026, 10, 25, 22, 30), utc(2026, 10, 25, 23))
    assert assert_error(late, 409, "quota_exceeded")["used"] == 1  # 23:30 local, same day
    next_day = await book(api, student, seats[1], utc(2026, 10, 25, 23), utc(2026, 10, 26, 0))
    assert next_day.status_code == 201, next_day.text  # 00:00 local on the 26th
    # Sunday 28 March 2027 is 23 hours long: 23:00 UTC Mar 27 to 22:00 UTC Mar 28.
    clock.set(utc(2027, 3, 20, 0))
    spring = await book(api, student, seats[0], utc(2027, 3, 28, 21), utc(2027, 3, 28, 22))
    assert spring.status_code == 201, spring.text  # 23:00 local, the 28th
    monday = await book(api, student, seats[1], utc(2027, 3, 28, 22), utc(2027, 3, 28, 23))
    assert monday.status_code == 201, monday.text  # already the 29th in Berlin


async def test_an_offer_skips_an_entrant_over_a_quota(
    api: httpx.AsyncClient, db: asyncpg.Connection, student: Student
) -> None:
    _, seats = await branch_with(db, max_bookings_per_day=1)
    holder = await add_student(db, "S4000002")
    second = await add_student(db, "S4000003")
    held = await book(api, holder, seats[0], utc(2026, 12, 1, 10), utc(2026, 12, 1, 12))
    slot = {
        "seat_id": seats[0],
        "start_time": iso(utc(2026, 12, 1, 10)),
        "end_time": iso(utc(2026, 12, 1, 12)),
    }
    first_in_line = await api.post("/waitlist", json=slot, headers=student.headers)
    next_in_line = await api.post("/waitlist", json=slot, headers=second.headers)
    assert first_in_line.status_code == next_in_line.status_code == 201
    # The first in line has used up today's quota meanwhile.
    assert (
        await book(api, student, seats[1], utc(2026, 12, 1, 14), utc(2026, 12, 1, 15))
    ).is_success
    await api.delete(f"/reservations/{held.json()['id']}", headers=holder.headers)
    assert (await my_entries(api, student))[first_in_line.json()["id"]]["status"] == "WAITING"
    assert (await my_entries(api, second))[next_in_line.json()["id"]]["status"] == "OFFERED"


async def test_quota_use_reads_the_callers_day_and_week(
    api: httpx.AsyncClient, db: asyncpg.Connection, student: Student
) -> None:
    branch, seats = await branch_with(db, max_bookings_per_day=3)
    await book(api, student, seats[0], utc(2026, 12, 1, 8), utc(2026, 12, 1, 10))
    use = await api.get(f"/branches/{branch}/quota", headers=student.headers)
    assert use.json() == {
        "branch_id": branch,
        "date": "2026-12-01",
        "iso_week": "2026-W49",
        "bookings_per_day": {"limit": 3, "used": 1},
        "hours_per_week": {"limit": None, "used": 2},
    }
    assert_error(await api.get(f"/branches/{branch}/quota"), 401, "not_authenticated")
    missing = await api.get("/branches/999999/quota", headers=student.headers)
    assert_error(missing, 404, "not_found")
