"""Staff changing a branch's hours while students book (migration 0006): a booking that
read the old rules and inserted just after the change never stays outside the new hours."""

import asyncio
import json
from datetime import timedelta

import asyncpg
import httpx

from app.db import branches as branches_db
from app.models import Role
from tests.concurrency.test_booking_races import POOL, outcome, tomorrow_at
from tests.conftest import ClientFactory
from tests.factories import (
    add_branch,
    add_seat,
    add_student,
    add_students,
    booking,
    eventually,
    every_day,
)

HOUR = timedelta(hours=1)
UNTIL_20 = every_day("00:00", "20:00")


async def waiting_for_a_lock(db: asyncpg.Connection) -> bool:
    return bool(
        await db.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
    )


async def test_a_booking_that_waited_for_an_hours_change_is_judged_by_the_new_hours(
    make_client: ClientFactory, db: asyncpg.Connection, database_url: str
) -> None:
    api = await make_client()
    branch = await add_branch(db, "Main")
    seat = await add_seat(db, branch, "A1")
    student = await add_student(db, "S7000001")
    start = tomorrow_at(21)

    staff = await asyncpg.connect(database_url)
    try:
        change = staff.transaction()
        await change.start()
        # What a staff change does first: every seat's booking lock, a new rules version.
        await branches_db.new_rules_version(staff, branch)
        await staff.execute(
            "UPDATE branches SET hours = $2::jsonb WHERE id = $1", branch, json.dumps(UNTIL_20)
        )
        # The booking reads the old hours (open at 21:00) and then waits for the lock.
        request = asyncio.create_task(
            api.post(
                "/reservations", json=booking(seat, start, start + HOUR), headers=student.headers
            )
        )
        await eventually(
            lambda: waiting_for_a_lock(db),
            bool,
            within=10,
            interval=0.02,
            what="the booking waiting for the seat's lock",
        )
        await change.commit()
        response: httpx.Response = await request
    finally:
        await staff.close()

    assert outcome(response) == (422, "outside_opening_hours")
    assert "open 00:00-20:00" in response.json()["detail"]
    assert await db.fetchval("SELECT count(*) FROM reservations") == 0


async def test_bookings_racing_a_shorter_day_leave_nothing_outside_the_new_hours(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    api = await make_client(**POOL)
    branch = await add_branch(db, "Main")
    seats = [await add_seat(db, branch, f"R{n:02d}") for n in range(20)]
    students = await add_students(db, "RULE", 20)
    admin = await add_student(db, "ADMIN077", role=Role.ADMIN)
    start = tomorrow_at(21)

    async def book(seat: int, index: int) -> httpx.Response:
        await asyncio.sleep(0.002 * index)  # spread over the change
        return await api.post(
            "/reservations",
            json=booking(seat, start, start + HOUR),
            headers=students[index].headers,
        )

    change = api.put(
        f"/admin/branches/{branch}/hours",
        json={"weekly": UNTIL_20, "cancel_conflicting": True},
        headers=admin.headers,
    )
    *bookings, changed = await asyncio.gather(
        *(book(seat, n) for n, seat in enumerate(seats)), change
    )
    assert changed.status_code == 200, changed.text
    assert {outcome(r) for r in bookings} <= {(201, None), (422, "outside_opening_hours")}
    still_active = await db.fetchval(
        "SELECT count(*) FROM reservations WHERE status IN ('HELD', 'CONFIRMED', 'CHECKED_IN')"
    )
    assert still_active == 0  # made before the change: cancelled by it; after: refused
    cancelled = await db.fetchval("SELECT count(*) FROM reservations WHERE status = 'CANCELLED'")
    assert cancelled == sum(1 for r in bookings if r.status_code == 201)
    assert sorted(changed.json()["conflicts"]) == sorted(
        r.json()["id"] for r in bookings if r.status_code == 201
    )
