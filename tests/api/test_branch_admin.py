"""Staff changes to branch hours and closures (api.md, "Branches: ids, hours, closures,
policy"): PUT /admin/branches/{id}/hours, POST/GET /admin/branches/{id}/closures,
DELETE /admin/closures/{id}, through the HTTP API on a frozen clock."""

from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from app.models import Role
from tests.conftest import ClientFactory
from tests.factories import (
    FrozenClock,
    Student,
    add_branch,
    add_reservation,
    add_seat,
    add_student,
    assert_error,
    assert_validation_error,
    at,
    my_notifications,
    reservation_row,
    reservation_status,
)

# Tuesday, Dec 1 2026, 09:30 UTC; the branch is in UTC, so wall clock = UTC.
NOW = at(9, 30)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")


def weekdays(opens: str, closes: str) -> dict[str, Any]:
    return {day: [{"opens": opens, "closes": closes}] for day in WEEKDAYS}


@dataclass(frozen=True)
class Scene:
    branch: int
    seat: int
    student: Student
    morning: int  # Dec 1, 09:00-11:00, under way
    evening: int  # Dec 1, 20:00-23:00
    saturday: int  # Dec 5, 10:00-12:00
    ended: int  # Dec 1, 07:00-08:00


@pytest.fixture
async def api(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(clock=FrozenClock(NOW))


@pytest.fixture
async def admin(db: asyncpg.Connection) -> Student:
    return await add_student(db, "ADMIN001", role=Role.ADMIN)


@pytest.fixture
async def scene(db: asyncpg.Connection) -> Scene:
    branch = await add_branch(db, "Main")
    seat = await add_seat(db, branch, "A1")
    student = await add_student(db, "S3000001")

    async def book(start: Any, end: Any, status: str = "CONFIRMED") -> int:
        return await add_reservation(
            db, user_id=student.id, seat_id=seat, start=start, end=end, status=status
        )

    return Scene(
        branch=branch,
        seat=seat,
        student=student,
        morning=await book(at(9), at(11), "CHECKED_IN"),
        evening=await book(at(20), at(23)),
        saturday=await book(at(10, day=5), at(12, day=5)),
        ended=await book(at(7), at(8), "COMPLETED"),
    )


async def put_hours(
    api: httpx.AsyncClient, admin: Student, branch: int, body: dict[str, Any]
) -> httpx.Response:
    return await api.put(f"/admin/branches/{branch}/hours", json=body, headers=admin.headers)


async def test_new_hours_list_what_no_longer_fits_and_cancel_nothing_by_default(
    api: httpx.AsyncClient, db: asyncpg.Connection, scene: Scene, admin: Student
) -> None:
    response = await put_hours(api, admin, scene.branch, {"weekly": weekdays("08:00", "22:00")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["branch_id"] == scene.branch
    assert body["hours"]["monday"] == [{"opens": "08:00", "closes": "22:00"}]
    assert body["hours"]["saturday"] == []
    # The evening runs past 22:00 and Saturday is closed; the morning fits from now on.
    assert body["conflicts"] == [scene.evening, scene.saturday]
    evening = body["conflicting"][0]
    assert [c["id"] for c in body["conflicting"]] == body["conflicts"]
    assert (evening["seat"]["label"], evening["start_time"], evening["end_time"]) == (
        "A1",
        "2026-12-01T20:00:00Z",
        "2026-12-01T23:00:00Z",
    )
    assert (evening["user_id"], evening["status"]) == (scene.student.id, "CONFIRMED")
    for reservation in (scene.morning, scene.evening, scene.saturday):
        assert await reservation_status(db, reservation) in ("CONFIRMED", "CHECKED_IN")
    branch = (await api.get(f"/branches/{scene.branch}")).json()
    assert branch["hours"] == body["hours"]
    assert branch["next_change_at"] == "2026-12-01T22:00:00Z"


async def test_new_hours_with_cancel_conflicting_cancel_and_tell_the_owner(
    api: httpx.AsyncClient, db: asyncpg.Connection, scene: Scene, admin: Student
) -> None:
    response = await put_hours(
        api,
        admin,
        scene.branch,
        {"weekly": weekdays("08:00", "22:00"), "cancel_conflicting": True},
    )
    assert response.json()["conflicts"] == [scene.evening, scene.saturday]
    assert await reservation_status(db, scene.evening) == "CANCELLED"
    assert await reservation_status(db, scene.saturday) == "CANCELLED"
    assert await reservation_status(db, scene.morning) == "CHECKED_IN"
    told = await my_notifications(api, scene.student, kind="reservation.cancelled")
    assert sorted(n["data"]["reservation_id"] for n in told) == [scene.evening, scene.saturday]
    assert {n["data"]["reason"] for n in told} == {"opening hours changed"}


@pytest.mark.parametrize(
    "weekly",
    [
        {"monday": [{"opens": "10:00", "closes": "09:00"}]},
        {"monday": [{"opens": "08:00", "closes": "12:00"}, {"opens": "11:00", "closes": "13:00"}]},
        {"monday": [{"opens": "24:00", "closes": "24:00"}]},
        {"funday": []},
    ],
)
async def test_malformed_hours_are_422_and_change_nothing(
    api: httpx.AsyncClient, scene: Scene, admin: Student, weekly: dict[str, Any]
) -> None:
    assert_validation_error(await put_hours(api, admin, scene.branch, {"weekly": weekly}))
    hours = (await api.get(f"/branches/{scene.branch}")).json()["hours"]
    assert hours["monday"] == [{"opens": "00:00", "closes": "24:00"}]


async def test_hours_of_an_unknown_branch_are_404_and_students_are_refused(
    api: httpx.AsyncClient, db: asyncpg.Connection, scene: Scene, admin: Student
) -> None:
    body = {"weekly": weekdays("08:00", "22:00")}
    assert_error(await put_hours(api, admin, 999, body), 404, "not_found")
    assert_error(await put_hours(api, scene.student, scene.branch, body), 403, "forbidden")


async def test_a_closure_cancels_what_it_covers_with_its_reason(
    api: httpx.AsyncClient, db: asyncpg.Connection, scene: Scene, admin: Student
) -> None:
    response = await api.post(
        f"/admin/branches/{scene.branch}/closures",
        json={"date_from": "2026-12-05", "date_to": "2026-12-06", "reason": "Inventory"},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    closure = response.json()
    assert closure == {
        "id": closure["id"],
        "branch_id": scene.branch,
        "date_from": "2026-12-05",
        "date_to": "2026-12-06",
        "reason": "Inventory",
        "open": None,
        "cancelled": [scene.saturday],
    }
    assert (await reservation_row(db, scene.saturday))["cancel_reason"] == "Inventory"
    told = await my_notifications(api, scene.student, kind="reservation.cancelled")
    assert [n["data"] for n in told] == [
        {"reservation_id": scene.saturday, "seat_id": scene.seat, "reason": "Inventory"}
    ]
    day = (
        await api.get(
            f"/branches/{scene.branch}/hours", params={"from": "2026-12-05", "to": "2026-12-05"}
        )
    ).json()["days"]
    assert day == [{"date": "2026-12-05", "open": [], "closure": {"reason": "Inventory"}}]


async def test_special_hours_keep_what_fits_them(
    api: httpx.AsyncClient, db: asyncpg.Connection, scene: Scene, admin: Student
) -> None:
    response = await api.post(
        f"/admin/branches/{scene.branch}/closures",
        json={
            "date_from": "2026-12-01",
            "date_to": "2026-12-01",
            "reason": "Staff party",
            "open": [{"opens": "08:00", "closes": "18:00"}],
        },
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["cancelled"] == [scene.evening]
    assert response.json()["open"] == [{"opens": "08:00", "closes": "18:00"}]
    assert await reservation_status(db, scene.morning) == "CHECKED_IN"


async def test_closures_are_listed_overlapping_a_range_and_may_not_overlap_each_other(
    api: httpx.AsyncClient, scene: Scene, admin: Student
) -> None:
    path = f"/admin/branches/{scene.branch}/closures"
    for first, last in (("2026-12-24", "2026-12-26"), ("2026-12-31", "2026-12-31")):
        created = await api.post(
            path,
            json={"date_from": first, "date_to": last, "reason": "Holiday"},
            headers=admin.headers,
        )
        assert created.status_code == 201, created.text
    overlapping = await api.post(
        path,
        json={"date_from": "2026-12-26", "date_to": "2026-12-27", "reason": "More"},
        headers=admin.headers,
    )
    assert_error(overlapping, 409, "already_exists")
    backwards = await api.post(
        path,
        json={"date_from": "2026-12-27", "date_to": "2026-12-26", "reason": "Oops"},
        headers=admin.headers,
    )
    assert_error(backwards, 422, "invalid_interval")
    listed = await api.get(path, params={"from": "2026-12-27"}, headers=admin.headers)
    assert [c["date_from"] for c in listed.json()] == ["2026-12-31"]
    everything = await api.get(path, headers=admin.headers)
    assert [c["date_from"] for c in everything.json()] == ["2026-12-24", "2026-12-31"]
    assert_error(
        await api.get("/admin/branches/999/closures", headers=admin.headers), 404, "not_found"
    )


async def test_deleting_a_closure_gives_the_dates_back_to_the_weekly_hours(
    api: httpx.AsyncClient, scene: Scene, admin: Student
) -> None:
    created = await api.post(
        f"/admin/branches/{scene.branch}/closures",
        json={"date_from": "2026-12-24", "date_to": "2026-12-24", "reason": "Christmas Eve"},
        headers=admin.headers,
    )
    closure = created.json()
    before = (await api.get("/branches")).json()[0]
    assert before["next_change_at"] == "2026-12-24T00:00:00Z"
    deleted = await api.delete(f"/admin/closures/{closure['id']}", headers=admin.headers)
    assert deleted.status_code == 200
    assert deleted.json() == {**closure, "cancelled": []}
    after = (await api.get("/branches")).json()[0]
    assert after["next_change_at"] is None
    again = await api.delete(f"/admin/closures/{closure['id']}", headers=admin.headers)
    assert_error(again, 404, "not_found")


async def test_deleting_a_closure_offers_the_reopened_time_to_the_waitlist(
    api: httpx.AsyncClient, db: asyncpg.Connection, scene: Scene, admin: Student
) -> None:
    created = await api.post(
        f"/admin/branches/{scene.branch}/closures",
        json={"date_from": "2026-12-24", "date_to": "2026-12-24", "reason": "Christmas Eve"},
        headers=admin.headers,
    )
    # An entry made before the closure, kept in place while the branch was closed.
    waiting = await add_student(db, "S3000009")
    entry = await db.fetchval(
        "INSERT INTO waitlist_entries (user_id, branch_id, seat_id, start_time, end_time, "
        "status, created_at, updated_at) VALUES ($1, $2, NULL, $3, $4, 'WAITING', $5, $5) "
        "RETURNING id",
        waiting.id, scene.branch, at(10, day=24), at(12, day=24), NOW,
    )  # fmt: skip
    deleted = await api.delete(f"/admin/closures/{created.json()['id']}", headers=admin.headers)
    assert deleted.status_code == 200, deleted.text
    row = await db.fetchrow(
        "SELECT status, reservation_id FROM waitlist_entries WHERE id = $1", entry
    )
    assert row is not None and row["status"] == "OFFERED"
    assert await reservation_status(db, row["reservation_id"]) == "HELD"
    offers = await my_notifications(api, waiting, kind="waitlist.offer")
    assert len(offers) == 1


@pytest.mark.redis
async def test_new_hours_show_in_the_very_next_cached_branch_list(
    make_client: ClientFactory, redis_url: str, scene: Scene, admin: Student
) -> None:
    cached = await make_client(clock=FrozenClock(NOW), REDIS_URL=redis_url, SEAT_CACHE_SECONDS=120)
    assert (await cached.get("/branches")).json()[0]["next_change_at"] is None
    assert (await cached.get("/branches")).json()[0]["next_change_at"] is None  # from Redis
    response = await put_hours(cached, admin, scene.branch, {"weekly": weekdays("08:00", "09:00")})
    assert response.status_code == 200
    branch = (await cached.get("/branches")).json()[0]
    assert branch["open_now"] is False
    assert branch["next_change_at"] == "2026-12-02T08:00:00Z"
