"""GET /admin/stats (api.md, "Administration") on a data set built by hand in SQL, with the
right answers worked out by hand in the comments."""

from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import ClientFactory
from tests.factories import Student, add_branch, add_reservation, add_seat, add_student, add_user

STATS_FIELDS = {
    "branch",
    "reservations",
    "checked_in",
    "no_shows",
    "no_show_rate",
    "cancelled",
    "utilization",
}


def at(hour: int, minute: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


# The window: Nov 10, 08:00-20:00 UTC, 12 hours.
WINDOW = {"start_time": "2026-11-10T08:00:00Z", "end_time": "2026-11-10T20:00:00Z"}

ZERO = {
    "reservations": 0,
    "checked_in": 0,
    "no_shows": 0,
    "no_show_rate": 0.0,
    "cancelled": 0,
    "utilization": 0.0,
}


@pytest.fixture
async def api(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client()


@pytest.fixture
async def data_set(db: asyncpg.Connection) -> None:
    """Four branches. Every reservation has a user of its own (no overlap constraints)."""
    made = 0

    async def reserve(seat: int, start: datetime, end: datetime, status: str, **extra: Any) -> None:
        nonlocal made
        made += 1
        user_id = await add_user(db, f"U{made:03d}")
        await add_reservation(
            db, user_id=user_id, seat_id=seat, start=start, end=end, status=status, **extra
        )

    # Main: M1, M2, M3 ACTIVE; M4 MAINTENANCE and M5 CLOSED (not open seat-hours).
    main = await add_branch(db, "Main")
    m1, m2, m3 = [await add_seat(db, main, label) for label in ("M1", "M2", "M3")]
    m4 = await add_seat(db, main, "M4", status="MAINTENANCE")
    await add_seat(db, main, "M5", status="CLOSED")
    # Counted (start in [08:00, 20:00)):
    await reserve(m1, at(9), at(11), "COMPLETED", checked_in_at=at(9, 5))  # in, 2 h
    await reserve(m1, at(12), at(13, 30), "COMPLETED", checked_in_at=at(12))  # in, 1.5 h
    await reserve(m2, at(10), at(12), "NO_SHOW")  # no-show
    await reserve(m2, at(13), at(14), "CANCELLED")  # cancelled
    await reserve(m3, at(19), at(22), "CHECKED_IN", checked_in_at=at(19))  # in, clipped: 1 h
    await reserve(m4, at(10), at(11), "COMPLETED", checked_in_at=at(10))  # in, 1 h (now closed)
    await reserve(m2, at(8), at(9), "CONFIRMED")  # starts at the window's start: counted
    await reserve(m3, at(15), at(16), "NO_SHOW")  # no-show
    # Not counted:
    await reserve(m3, at(6), at(9), "COMPLETED", checked_in_at=at(6))  # starts before
    await reserve(m2, at(20), at(21), "CONFIRMED")  # starts at the window's end
    await reserve(m1, at(9, day=11), at(10, day=11), "NO_SHOW")  # the next day
    # Main: reservations 8; checked_in 4; no_shows 2; cancelled 1;
    # no_show_rate = 2 / (4 + 2) = 1/3;
    # utilization = (2 + 1.5 + 1 + 1) h / (3 ACTIVE seats x 12 h) = 5.5 / 36.

    # Science: S1, S2 ACTIVE; S3 MAINTENANCE.
    science = await add_branch(db, "Science", "Europe/Berlin")
    s1, s2 = [await add_seat(db, science, label) for label in ("S1", "S2")]
    s3 = await add_seat(db, science, "S3", status="MAINTENANCE")
    await reserve(s1, at(8), at(12), "COMPLETED", checked_in_at=at(7, 50))  # in, 4 h
    await reserve(s2, at(9), at(10), "NO_SHOW")
    await reserve(s2, at(11), at(12), "NO_SHOW")
    await reserve(s2, at(14), at(15), "NO_SHOW")
    await reserve(s1, at(14), at(15, 30), "CANCELLED")
    await reserve(s3, at(16), at(17), "CANCELLED")
    await reserve(s1, at(19, 30), at(23), "COMPLETED", checked_in_at=at(19, 30))  # in, 0.5 h
    await reserve(s1, at(7), at(8), "COMPLETED", checked_in_at=at(7))  # starts before
    await reserve(s2, at(7, 30), at(8, 30), "NO_SHOW")  # starts before
    # Science: reservations 7; checked_in 2; no_shows 3; cancelled 2;
    # no_show_rate = 3 / (2 + 3) = 0.6; utilization = (4 + 0.5) h / (2 x 12 h) = 0.1875.

    # Arts: one ACTIVE seat, nothing booked inside the window.
    arts = await add_branch(db, "Arts")
    a1 = await add_seat(db, arts, "A1")
    await reserve(a1, at(21), at(22), "COMPLETED", checked_in_at=at(21))
    # Zoo Annex: no seats at all (no open seat-hours: utilization 0, not a division by 0).
    await add_branch(db, "Zoo Annex")


MAIN = {
    "branch": "Main",
    "reservations": 8,
    "checked_in": 4,
    "no_shows": 2,
    "no_show_rate": pytest.approx(1 / 3),
    "cancelled": 1,
    "utilization": pytest.approx(5.5 / 36),
}
SCIENCE = {
    "branch": "Science",
    "reservations": 7,
    "checked_in": 2,
    "no_shows": 3,
    "no_show_rate": pytest.approx(0.6),
    "cancelled": 2,
    "utilization": pytest.approx(0.1875),
}


async def stats(
    api: httpx.AsyncClient, admin: Student, params: dict[str, str]
) -> list[dict[str, Any]]:
    response = await api.get("/admin/stats", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"start_time", "end_time", "branches"}
    branches: list[dict[str, Any]] = body["branches"]
    for row in branches:
        # by_hour has tests of its own (below); here, only its shape.
        assert [h["hour"] for h in row.pop("by_hour")] == list(range(24))
        assert set(row) == STATS_FIELDS
        assert 0 <= row["no_show_rate"] <= 1
        assert 0 <= row["utilization"] <= 1
    return branches


async def test_stats_per_branch_match_the_hand_computed_answers(
    api: httpx.AsyncClient, admin: Student, data_set: None
) -> None:
    branches = await stats(api, admin, WINDOW)

    assert branches == [
        {"branch": "Arts", **ZERO},
        MAIN,
        SCIENCE,
        {"branch": "Zoo Annex", **ZERO},
    ]


async def test_stats_echo_the_window_in_utc(
    api: httpx.AsyncClient, admin: Student, data_set: None
) -> None:
    # The same window written at +01:00.
    response = await api.get(
        "/admin/stats",
        params={"start_time": "2026-11-10T09:00:00+01:00", "end_time": "2026-11-10T21:00:00+01:00"},
        headers=admin.headers,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["start_time"], body["end_time"]) == (WINDOW["start_time"], WINDOW["end_time"])
    assert {k: v for k, v in body["branches"][1].items() if k != "by_hour"} == MAIN


@pytest.mark.parametrize(("branch", "expected"), [("Main", MAIN), ("Science", SCIENCE)])
async def test_stats_for_one_branch_answer_one_row(
    api: httpx.AsyncClient, admin: Student, data_set: None, branch: str, expected: dict[str, Any]
) -> None:
    assert await stats(api, admin, {**WINDOW, "branch": branch}) == [expected]


async def test_stats_for_a_branch_without_reservations_are_zeros(
    api: httpx.AsyncClient, admin: Student, data_set: None
) -> None:
    assert await stats(api, admin, {**WINDOW, "branch": "Arts"}) == [{"branch": "Arts", **ZERO}]
    assert await stats(api, admin, {**WINDOW, "branch": "Zoo Annex"}) == [
        {"branch": "Zoo Annex", **ZERO}
    ]


async def test_stats_count_only_reservations_starting_in_a_narrower_window(
    api: httpx.AsyncClient, admin: Student, data_set: None
) -> None:
    # Main over [10:00, 12:00), 2 hours: the M2 10-12 no-show and the M4 10-11 check-in start
    # in it; M1 9-11 (running through it) does not. reservations 2, checked_in 1, no_shows 1,
    # no_show_rate 1/2, utilization 1 h / (3 seats x 2 h) = 1/6.
    # Science: S2 11-12 no-show only (S1 8-12 started before): rate 1/(0+1) = 1, use 0.
    window = {"start_time": "2026-11-10T10:00:00Z", "end_time": "2026-11-10T12:00:00Z"}

    branches = await stats(api, admin, window)

    by_name = {row.pop("branch"): row for row in branches}
    assert by_name["Main"] == {
        "reservations": 2,
        "checked_in": 1,
        "no_shows": 1,
        "no_show_rate": pytest.approx(0.5),
        "cancelled": 0,
        "utilization": pytest.approx(1 / 6),
    }
    assert by_name["Science"] == {
        "reservations": 1,
        "checked_in": 0,
        "no_shows": 1,
        "no_show_rate": pytest.approx(1.0),
        "cancelled": 0,
        "utilization": 0.0,
    }
    assert by_name["Arts"] == by_name["Zoo Annex"] == ZERO


async def test_stats_utilization_never_exceeds_one(
    api: httpx.AsyncClient, db: asyncpg.Connection, admin: Student
) -> None:
    # One ACTIVE seat used for the whole 2-hour window, and a seat since closed that was
    # used for it too: 4 h of use over 2 open seat-hours would be 2.0.
    branch = await add_branch(db, "Tiny")
    open_seat = await add_seat(db, branch, "T1")
    closed_seat = await add_seat(db, branch, "T2", status="CLOSED")
    for n, seat in enumerate((open_seat, closed_seat)):
        user_id = await add_user(db, f"T{n}")
        await add_reservation(
            db, user_id=user_id, seat_id=seat, start=at(8), end=at(10), status="COMPLETED"
        )

    rows = await stats(
        api, admin, {"start_time": "2026-11-10T08:00:00Z", "end_time": "2026-11-10T10:00:00Z"}
    )

    assert rows == [
        {
            "branch": "Tiny",
            "reservations": 2,
            "checked_in": 2,
            "no_shows": 0,
            "no_show_rate": 0.0,
            "cancelled": 0,
            "utilization": 1.0,
        }
    ]


async def test_stats_for_an_unknown_branch_is_not_found(
    api: httpx.AsyncClient, admin: Student, data_set: None
) -> None:
    response = await api.get(
        "/admin/stats", params={**WINDOW, "branch": "Nowhere"}, headers=admin.headers
    )

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"end_time": WINDOW["end_time"]}, "start_time"),
        ({"start_time": WINDOW["start_time"]}, "end_time"),
        ({"start_time": "2026-11-10T08:00:00", "end_time": WINDOW["end_time"]}, "start_time"),
        ({"start_time": "yesterday", "end_time": WINDOW["end_time"]}, "start_time"),
        ({**WINDOW, "branch": "B" * 201}, "branch"),
    ],
    ids=["no-start", "no-end", "no-offset", "not-a-time", "long-branch"],
)
async def test_stats_with_a_missing_or_malformed_parameter_is_a_validation_error(
    api: httpx.AsyncClient, admin: Student, params: dict[str, str], field: str
) -> None:
    response = await api.get("/admin/stats", params=params, headers=admin.headers)

    assert response.status_code == 422, response.text
    body = response.json()
    assert "code" not in body
    assert [error["loc"] for error in body["detail"]] == [["query", field]]


@pytest.mark.parametrize(
    "end_time", ["2026-11-10T08:00:00Z", "2026-11-10T07:59:59Z", "2026-11-10T09:00:00+01:00"]
)
async def test_stats_with_end_not_after_start_is_invalid_interval(
    api: httpx.AsyncClient, admin: Student, end_time: str
) -> None:
    response = await api.get(
        "/admin/stats",
        params={"start_time": WINDOW["start_time"], "end_time": end_time},
        headers=admin.headers,
    )

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_interval"


async def test_stats_are_for_admins_only(
    api: httpx.AsyncClient, db: asyncpg.Connection, data_set: None
) -> None:
    student = await add_student(db, "S0000001")

    forbidden = await api.get("/admin/stats", params=WINDOW, headers=student.headers)
    anonymous = await api.get("/admin/stats", params=WINDOW)

    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "forbidden"
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"


def hours(row: dict[str, Any]) -> dict[int, int]:
    """The non-zero hours of a branch's by_hour."""
    return {h["hour"]: h["reservations"] for h in row["by_hour"] if h["reservations"]}


async def test_stats_count_bookings_by_hour_of_day_on_the_branch_clock(
    api: httpx.AsyncClient, admin: Student, data_set: None
) -> None:
    response = await api.get("/admin/stats", params=WINDOW, headers=admin.headers)

    assert response.status_code == 200, response.text
    by_name = {row["branch"]: row for row in response.json()["branches"]}
    for row in by_name.values():
        assert [h["hour"] for h in row["by_hour"]] == list(range(24))
        assert sum(h["reservations"] for h in row["by_hour"]) == row["reservations"]
    # Main (UTC): the 8 counted starts at 09, 12, 10, 13, 19, 10, 08, 15.
    assert hours(by_name["Main"]) == {8: 1, 9: 1, 10: 2, 12: 1, 13: 1, 15: 1, 19: 1}
    # Science (Europe/Berlin, UTC+1 in November): starts 08, 09, 11, 14, 14, 16, 19:30 UTC
    # are 09, 10, 12, 15, 15, 17, 20 local.
    assert hours(by_name["Science"]) == {9: 1, 10: 1, 12: 1, 15: 2, 17: 1, 20: 1}
    # Arts' only reservation starts after the window; Zoo Annex has no seats.
    assert hours(by_name["Arts"]) == hours(by_name["Zoo Annex"]) == {}


async def test_stats_by_hour_for_one_branch_in_a_narrower_window(
    api: httpx.AsyncClient, admin: Student, data_set: None
) -> None:
    # Science over [10:00, 15:00) UTC: S2 11-12 and S2 14-15, S1 14-15:30: 12 and 15 local.
    window = {"start_time": "2026-11-10T10:00:00Z", "end_time": "2026-11-10T15:00:00Z"}
    response = await api.get(
        "/admin/stats", params={**window, "branch": "Science"}, headers=admin.headers
    )

    assert response.status_code == 200, response.text
    [science] = response.json()["branches"]
    assert hours(science) == {12: 1, 15: 2}
