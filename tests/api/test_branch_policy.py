"""Per-branch policy (api.md, "Policy per branch"): PUT /admin/branches/{id}/policy, and
the check-in window, grace, cancellation deadline, no-show sweep and offers' claim time
following the reservation's branch, with the global settings as defaults."""

from dataclasses import dataclass
from datetime import timedelta
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
    RULES,
    FrozenClock,
    Student,
    add_branch,
    add_reservation,
    add_seat,
    add_student,
    assert_error,
    assert_validation_error,
    at,
    iso,
    my_entries,
    reservation_status,
)

NOW = at(9)
START = at(10)
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Branches:
    strict: int  # staff set its policy in the tests
    plain: int  # global settings
    strict_seat: int
    plain_seat: int


@pytest.fixture
async def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def api(make_client: ClientFactory, clock: FrozenClock) -> httpx.AsyncClient:
    return await make_client(clock=clock, **RULES)


@pytest.fixture
async def branches(db: asyncpg.Connection) -> Branches:
    strict = await add_branch(db, "Strict")
    plain = await add_branch(db, "Plain")
    return Branches(
        strict, plain, await add_seat(db, strict, "S1"), await add_seat(db, plain, "P1")
    )


async def put_policy(
    api: httpx.AsyncClient, admin: Student, branch: int, body: dict[str, Any]
) -> httpx.Response:
    return await api.put(f"/admin/branches/{branch}/policy", json=body, headers=admin.headers)


async def test_policy_changes_only_the_named_fields_and_null_restores_the_default(
    api: httpx.AsyncClient, db: asyncpg.Connection, branches: Branches, admin: Student
) -> None:
    first = await put_policy(
        api, admin, branches.strict, {"grace_minutes": 5, "max_bookings_per_day": 2}
    )
    assert first.status_code == 200, first.text
    assert first.json() == {
        "max_reservation_hours": 4,
        "booking_horizon_days": 14,
        "checkin_early_minutes": RULES["CHECKIN_EARLY_MINUTES"],
        "grace_minutes": 5,
        "claim_minutes": RULES["CLAIM_MINUTES"],
        "max_bookings_per_day": 2,
        "max_hours_per_week": None,
    }
    second = await put_policy(api, admin, branches.strict, {"checkin_early_minutes": 60})
    assert second.json()["grace_minutes"] == 5  # left as it was
    assert second.json()["checkin_early_minutes"] == 60
    back = await put_policy(api, admin, branches.strict, {"grace_minutes": None})
    assert back.json()["grace_minutes"] == RULES["GRACE_MINUTES"]
    assert back.json()["max_bookings_per_day"] == 2
    detail = (await api.get(f"/branches/{branches.strict}")).json()
    assert detail["policy"] == back.json()
    other = (await api.get(f"/branches/{branches.plain}")).json()
    assert other["policy"]["checkin_early_minutes"] == RULES["CHECKIN_EARLY_MINUTES"]
    audit = await db.fetch(
        "SELECT action, after FROM audit_log WHERE entity = 'branch' ORDER BY id"
    )
    assert [row["action"] for row in audit] == ["branch.policy"] * 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"grace_minutes": -1}, "grace_minutes"),
        ({"claim_minutes": 0}, "claim_minutes"),
        ({"max_reservation_hours": 0}, "max_reservation_hours"),
        ({"max_bookings_per_day": 1.5}, "max_bookings_per_day"),
        ({"max_hours_per_week": "many"}, "max_hours_per_week"),
        ({"grace_minutes": False}, "grace_minutes"),
        ({"claim_minutes": "10"}, "claim_minutes"),
        ({"booking_horizon_days": 10_000}, "booking_horizon_days"),
        ({"quota": 3}, "quota"),
    ],
)
async def test_a_bad_policy_value_is_422_naming_the_field(
    api: httpx.AsyncClient, branches: Branches, admin: Student, body: dict[str, Any], field: str
) -> None:
    response = await put_policy(api, admin, branches.strict, body)
    assert_validation_error(response, "body", field)


async def test_only_staff_change_policy_and_an_unknown_branch_is_404(
    api: httpx.AsyncClient, db: asyncpg.Connection, branches: Branches, admin: Student
) -> None:
    student = await add_student(db, "S1000001")
    refused = await put_policy(api, student, branches.strict, {"grace_minutes": 1})
    assert_error(refused, 403, "forbidden")
    assert_error(await put_policy(api, admin, 999_999, {"grace_minutes": 1}), 404, "not_found")


async def test_the_check_in_window_follows_the_reservations_branch(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    branches: Branches,
    admin: Student,
) -> None:
    await put_policy(api, admin, branches.strict, {"checkin_early_minutes": 60, "grace_minutes": 5})
    student = await add_student(db, "S1000001")
    other = await add_student(db, "S1000002")
    strict = await add_reservation(
        db, user_id=student.id, seat_id=branches.strict_seat, start=START, end=at(11)
    )
    plain = await add_reservation(
        db, user_id=other.id, seat_id=branches.plain_seat, start=START, end=at(11)
    )
    shown = (await api.get(f"/reservations/{strict}", headers=student.headers)).json()
    assert shown["check_in_opens_at"] == iso(START - 60 * MINUTE)
    assert shown["check_in_deadline"] == iso(START + 5 * MINUTE)

    clock.set(START - 50 * MINUTE)  # inside the strict branch's window, not the global one
    ok = await api.post(f"/reservations/{strict}/checkin", headers=student.headers)
    assert ok.status_code == 200, ok.text
    early = await api.post(f"/reservations/{plain}/checkin", headers=other.headers)
    body = assert_error(early, 409, "checkin_window")
    assert body["check_in_opens_at"] == iso(START - 15 * MINUTE)


async def test_a_short_grace_ends_cancelling_and_check_in_sooner(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    branches: Branches,
    admin: Student,
) -> None:
    await put_policy(api, admin, branches.strict, {"grace_minutes": 5})
    student = await add_student(db, "S1000001")
    first = await add_reservation(
        db, user_id=student.id, seat_id=branches.strict_seat, start=START, end=at(11)
    )
    clock.set(START + 6 * MINUTE)
    late = await api.post(f"/reservations/{first}/checkin", headers=student.headers)
    assert_error(late, 409, "checkin_window")
    cancel = await api.delete(f"/reservations/{first}", headers=student.headers)
    assert_error(cancel, 409, "invalid_state")


async def test_the_no_show_sweep_uses_each_branchs_grace(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    database_url: str,
    branches: Branches,
    admin: Student,
) -> None:
    await put_policy(api, admin, branches.strict, {"grace_minutes": 5})
    student = await add_student(db, "S1000001")
    strict = await add_reservation(
        db, user_id=student.id, seat_id=branches.strict_seat, start=START, end=at(11)
    )
    plain = await add_reservation(
        db, user_id=student.id, seat_id=branches.plain_seat, start=at(12), end=at(13)
    )
    plain_early = await add_reservation(
        db,
        user_id=(await add_student(db, "S1000002")).id,
        seat_id=branches.plain_seat,
        start=START,
        end=at(11),
    )
    settings = make_settings(database_url, **RULES)
    publisher = Publisher(SeatCache(None, 10), Broker(None, None))
    pool = await pool_module.create_pool(database_url, settings)
    try:
        swept = await sweeps.mark_no_shows(pool, publisher, settings, now=START + 6 * MINUTE)
    finally:
        await pool.close()
    assert swept == 1
    assert await reservation_status(db, strict) == "NO_SHOW"
    assert await reservation_status(db, plain_early) == "CONFIRMED"  # 15 min grace there
    assert await reservation_status(db, plain) == "CONFIRMED"


async def test_a_waitlist_offer_is_held_for_the_branchs_claim_time(
    api: httpx.AsyncClient, db: asyncpg.Connection, branches: Branches, admin: Student
) -> None:
    await put_policy(api, admin, branches.strict, {"claim_minutes": 3})
    holder = await add_student(db, "S1000001")
    waiting = await add_student(db, "S1000002")
    held = await add_reservation(
        db, user_id=holder.id, seat_id=branches.strict_seat, start=START, end=at(11)
    )
    joined = await api.post(
        "/waitlist",
        json={"seat_id": branches.strict_seat, "start_time": iso(START), "end_time": iso(at(11))},
        headers=waiting.headers,
    )
    assert joined.status_code == 201, joined.text
    cancelled = await api.delete(f"/reservations/{held}", headers=holder.headers)
    assert cancelled.status_code == 200, cancelled.text
    entry = (await my_entries(api, waiting))[joined.json()["id"]]
    assert entry["status"] == "OFFERED"
    assert entry["offer_expires_at"] == iso(NOW + 3 * MINUTE)
