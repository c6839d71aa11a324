"""Branch rules remembered by the process (app/services/rules.py RulesCache, issue 17):
a booking reads them once, and every later change by staff is honoured by the next
booking in the same process, whichever way it goes."""

import json
from typing import Any

import asyncpg
import httpx
import pytest

from app.db import branches as branches_db
from tests.conftest import ClientFactory
from tests.factories import (
    RULES,
    FrozenClock,
    Student,
    add_branch,
    add_seat,
    add_student,
    assert_error,
    at,
    every_day,
    reserve,
)


@pytest.fixture
async def api(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(clock=FrozenClock(at(9)), **RULES)


@pytest.fixture
async def seat(db: asyncpg.Connection) -> int:
    return await add_seat(db, await add_branch(db, "Main"), "A1")


@pytest.fixture
async def student(db: asyncpg.Connection) -> Student:
    return await add_student(db, "S1000001")


async def staff_sets_hours(
    api: httpx.AsyncClient,
    admin: Student,
    db: asyncpg.Connection,
    seat: int,
    opens: str,
    closes: str,
) -> None:
    branch = await db.fetchval("SELECT branch_id FROM seats WHERE id = $1", seat)
    response = await api.put(
        f"/admin/branches/{branch}/hours",
        json={"weekly": every_day(opens, closes), "cancel_conflicting": False},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text


async def staff_sets_policy(
    api: httpx.AsyncClient, admin: Student, db: asyncpg.Connection, seat: int, body: dict[str, Any]
) -> None:
    branch = await db.fetchval("SELECT branch_id FROM seats WHERE id = $1", seat)
    response = await api.put(f"/admin/branches/{branch}/policy", json=body, headers=admin.headers)
    assert response.status_code == 200, response.text


async def test_the_rules_are_read_once_for_many_bookings_of_the_branch(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    seat: int,
    student: Student,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    branch = await db.fetchval("SELECT branch_id FROM seats WHERE id = $1", seat)
    neighbour = await add_seat(db, branch, "A2")
    reads = 0
    read = branches_db.rules

    async def counted(*args: Any, **kwargs: Any) -> dict[str, Any] | None:
        nonlocal reads
        reads += 1
        return await read(*args, **kwargs)

    monkeypatch.setattr(branches_db, "rules", counted)
    for booked_seat, hour in ((seat, 10), (seat, 11), (neighbour, 12)):
        assert (await reserve(api, student, booked_seat, at(hour), at(hour + 1))).status_code == 201
    assert reads == 1


async def test_hours_shortened_by_staff_refuse_the_next_booking(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int, student: Student, admin: Student
) -> None:
    assert (await reserve(api, student, seat, at(10), at(11))).status_code == 201
    await staff_sets_hours(api, admin, db, seat, "08:00", "12:00")
    refused = await reserve(api, student, seat, at(12), at(13))
    assert "open 08:00-12:00" in assert_error(refused, 422, "outside_opening_hours")["detail"]
    assert await db.fetchval("SELECT count(*) FROM reservations") == 1


async def test_hours_lengthened_by_staff_accept_the_next_booking(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int, student: Student, admin: Student
) -> None:
    await staff_sets_hours(api, admin, db, seat, "08:00", "12:00")
    assert (await reserve(api, student, seat, at(10), at(11))).status_code == 201
    await staff_sets_hours(api, admin, db, seat, "08:00", "20:00")
    accepted = await reserve(api, student, seat, at(12), at(13))
    assert accepted.status_code == 201, accepted.text


async def test_a_closure_added_by_staff_refuses_the_next_booking(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int, student: Student, admin: Student
) -> None:
    assert (await reserve(api, student, seat, at(10), at(11))).status_code == 201
    branch = await db.fetchval("SELECT branch_id FROM seats WHERE id = $1", seat)
    closed = await api.post(
        f"/admin/branches/{branch}/closures",
        json={"date_from": "2026-12-02", "date_to": "2026-12-02", "reason": "Inventory"},
        headers=admin.headers,
    )
    assert closed.status_code == 201, closed.text
    refused = await reserve(api, student, seat, at(10, day=2), at(11, day=2))
    assert "Inventory" in assert_error(refused, 422, "outside_opening_hours")["detail"]


async def test_a_quota_added_by_staff_is_enforced_on_the_next_booking(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int, student: Student, admin: Student
) -> None:
    assert (await reserve(api, student, seat, at(10), at(11))).status_code == 201
    await staff_sets_policy(api, admin, db, seat, {"max_bookings_per_day": 1})
    refused = await reserve(api, student, seat, at(12), at(13))
    assert assert_error(refused, 409, "quota_exceeded")["quota"] == "max_bookings_per_day"
    assert await db.fetchval("SELECT count(*) FROM reservations") == 1


async def test_a_quota_raised_by_staff_accepts_the_next_booking(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int, student: Student, admin: Student
) -> None:
    await staff_sets_policy(api, admin, db, seat, {"max_bookings_per_day": 1})
    assert (await reserve(api, student, seat, at(10), at(11))).status_code == 201
    await staff_sets_policy(api, admin, db, seat, {"max_bookings_per_day": 2})
    accepted = await reserve(api, student, seat, at(12), at(13))
    assert accepted.status_code == 201, accepted.text


async def test_a_longer_maximum_set_by_staff_accepts_the_next_booking(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int, student: Student, admin: Student
) -> None:
    await staff_sets_policy(api, admin, db, seat, {"max_reservation_hours": 1})
    assert (await reserve(api, student, seat, at(10), at(11))).status_code == 201
    await staff_sets_policy(api, admin, db, seat, {"max_reservation_hours": 3})
    accepted = await reserve(api, student, seat, at(12), at(15))
    assert accepted.status_code == 201, accepted.text


async def test_a_seat_moved_to_another_branch_is_judged_by_that_branch(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int, student: Student
) -> None:
    # No API moves a seat; should a database edit do it, both branches here have the
    # same rules version, so only the branch id tells the remembered rules stale.
    short = await add_branch(db, "Short")
    version = await db.fetchval(
        "UPDATE branches SET hours = $2::jsonb WHERE id = $1 RETURNING rules_version",
        short,
        json.dumps(every_day("08:00", "12:00")),
    )
    main = await db.fetchval("SELECT branch_id FROM seats WHERE id = $1", seat)
    await db.execute("UPDATE branches SET rules_version = $2 WHERE id = $1", main, version)
    assert (await reserve(api, student, seat, at(10), at(11))).status_code == 201
    await db.execute("UPDATE seats SET branch_id = $2 WHERE id = $1", seat, short)
    refused = await reserve(api, student, seat, at(13), at(14))
    assert (
        "Short is open 08:00-12:00" in assert_error(refused, 422, "outside_opening_hours")["detail"]
    )
    assert await db.fetchval("SELECT count(*) FROM reservations") == 1


async def test_an_idempotent_booking_is_judged_by_the_current_rules(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int, student: Student, admin: Student
) -> None:
    await staff_sets_hours(api, admin, db, seat, "08:00", "12:00")
    assert (await reserve(api, student, seat, at(10), at(11), key="k-1")).status_code == 201
    await staff_sets_hours(api, admin, db, seat, "08:00", "20:00")
    accepted = await reserve(api, student, seat, at(12), at(13), key="k-2")
    assert accepted.status_code == 201, accepted.text
    await staff_sets_policy(api, admin, db, seat, {"max_bookings_per_day": 2})
    refused = await reserve(api, student, seat, at(14), at(15), key="k-3")
    assert_error(refused, 409, "quota_exceeded")


async def test_hours_changed_in_sql_refuse_the_next_booking(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int, student: Student
) -> None:
    # Not through the API: migration 0010's trigger moves the version all the same.
    assert (await reserve(api, student, seat, at(10), at(11))).status_code == 201
    await db.execute(
        "UPDATE branches SET hours = $2::jsonb"
        " WHERE id = (SELECT branch_id FROM seats WHERE id = $1)",
        seat,
        json.dumps(every_day("08:00", "12:00")),
    )
    refused = await reserve(api, student, seat, at(12), at(13))
    assert "open 08:00-12:00" in assert_error(refused, 422, "outside_opening_hours")["detail"]


async def test_a_closure_inserted_in_sql_refuses_the_next_booking(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int, student: Student
) -> None:
    assert (await reserve(api, student, seat, at(10), at(11))).status_code == 201
    await db.execute(
        "INSERT INTO branch_closures (branch_id, date_from, date_to, reason, created_at)"
        " SELECT branch_id, '2026-12-02', '2026-12-02', 'Flood', now()"
        " FROM seats WHERE id = $1",
        seat,
    )
    refused = await reserve(api, student, seat, at(10, day=2), at(11, day=2))
    assert "Flood" in assert_error(refused, 422, "outside_opening_hours")["detail"]


async def test_tables_emptied_and_refilled_with_the_same_ids_are_judged_afresh(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int, student: Student
) -> None:
    # What a shared test server (or a restore under a running process) does: the same
    # branch and seat ids again, each changed as often, other rules. The process
    # remembered the first ones; a version that counted changes would match.
    async def set_hours(opens: str, closes: str) -> None:
        await db.execute(
            "UPDATE branches SET hours = $1::jsonb", json.dumps(every_day(opens, closes))
        )

    await set_hours("08:00", "20:00")
    assert (await reserve(api, student, seat, at(10), at(11))).status_code == 201
    await db.execute("TRUNCATE reservations, seats, branches RESTART IDENTITY CASCADE")
    branch = await add_branch(db, "Main")
    assert await add_seat(db, branch, "A1") == seat
    await set_hours("08:00", "12:00")
    refused = await reserve(api, student, seat, at(13), at(14))
    assert "open 08:00-12:00" in assert_error(refused, 422, "outside_opening_hours")["detail"]
