"""GET /seats/suggest: "find me a seat now", over HTTP on a real PostgreSQL."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import ClientFactory
from tests.factories import (
    FrozenClock,
    Student,
    add_branch,
    add_reservation,
    add_seat,
    add_student,
    add_user,
    assert_error,
    bearer,
    iso,
)

# Tuesday, Dec 1 2026, 09:30 UTC.
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
WEEK = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def every_day(opens: str, closes: str) -> dict[str, Any]:
    return {day: [{"opens": opens, "closes": closes}] for day in WEEK}


async def set_hours(db: asyncpg.Connection, branch_id: int, hours: dict[str, Any]) -> None:
    await db.execute(
        "UPDATE branches SET hours = $2::jsonb WHERE id = $1", branch_id, json.dumps(hours)
    )


async def taken(
    db: asyncpg.Connection, seat_id: int, start: datetime, end: datetime, status: str = "CONFIRMED"
) -> int:
    """The seat booked by somebody else for [start, end)."""
    user_id = await add_user(db, f"U{seat_id}-{start:%d%H%M}-{end:%d%H%M}-{status}")
    return await add_reservation(
        db, user_id=user_id, seat_id=seat_id, start=start, end=end, status=status
    )


@pytest.fixture
async def api(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(clock=FrozenClock(NOW))


async def suggest(
    api: httpx.AsyncClient, headers: dict[str, str] | None = None, **query: Any
) -> list[dict[str, Any]]:
    params = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in query.items()}
    response = await api.get("/seats/suggest", params=params, headers=headers or {})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def labels(items: list[dict[str, Any]]) -> list[str]:
    return [item["seat"]["label"] for item in items]


async def test_requested_amenities_rank_first_and_are_preferences_not_filters(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    main = await add_branch(db, "Main")
    await add_seat(db, main, "plain", area="Quiet")
    await add_seat(db, main, "power", area="Quiet", power=True)
    await add_seat(db, main, "both", area="Quiet", power=True, monitor=True)
    await add_seat(db, main, "window", area="Window")

    items = await suggest(api, has_power=True, has_monitor=True)
    assert labels(items) == ["both", "power", "plain", "window"]
    first = items[0]
    assert first["seat"] == {
        "id": first["seat"]["id"],
        "branch": "Main",
        "area": "Quiet",
        "label": "both",
        "has_power": True,
        "has_monitor": True,
        "status": "ACTIVE",
        "available": True,
        "state": "free",
    }
    assert first["start_time"] == iso(NOW)
    assert first["end_time"] == iso(NOW + timedelta(minutes=120))
    assert "Has a power socket" in first["reasons"]
    assert "Has a monitor" in first["reasons"]
    assert "Has a monitor" not in items[1]["reasons"]
    assert items[0]["score"] > items[1]["score"] > items[2]["score"]

    by_area = await suggest(api, area="Window")
    assert labels(by_area)[0] == "window"
    assert "In Window, as asked" in by_area[0]["reasons"]
    without_power = await suggest(api, has_power=False)
    assert set(labels(without_power)[:2]) == {"plain", "window"}
    assert "No power socket, as asked" in without_power[0]["reasons"]


async def test_a_seat_free_longer_after_the_interval_ranks_higher(
    api: httpx.AsyncClient, db: asyncpg.Connection, alice: Student
) -> None:
    berlin = await add_branch(db, "Berlin", "Europe/Berlin")
    soon = await add_seat(db, berlin, "soon", area="Window")
    later = await add_seat(db, berlin, "later")
    await add_seat(db, berlin, "open-ended")
    # The interval is 09:30-11:30 UTC; "soon" is booked again at 12:00, "later" at 14:00.
    await taken(db, soon, at(12), at(13))
    await taken(db, later, at(14), at(15))
    await taken(db, later, at(8), at(9, 30))  # ended right at the start: no conflict

    items = await suggest(api)
    assert labels(items) == ["open-ended", "later", "soon"]
    assert [item["free_until"] for item in items] == [None, iso(at(14)), iso(at(12))]
    assert "Free for at least 24 hours after" in items[0]["reasons"]
    # In the branch's local time (CET, UTC+1).
    assert "Free until 15:00" in items[1]["reasons"]
    assert "Free until 13:00" in items[2]["reasons"]
    assert items[0]["score"] > items[1]["score"] > items[2]["score"]
    # Free time outweighs habits: Alice usually sits in the Window area, where "soon" is.
    await add_reservation(
        db,
        user_id=alice.id,
        seat_id=soon,
        start=NOW - timedelta(days=2),
        end=NOW - timedelta(days=2) + timedelta(hours=1),
        status="COMPLETED",
    )
    mine = await suggest(api, headers=alice.headers)
    assert labels(mine) == ["open-ended", "later", "soon"]
    assert "In Window, where you usually sit" in mine[2]["reasons"]


async def test_habits_of_the_last_90_days_reorder_equal_seats_only_with_a_token(
    api: httpx.AsyncClient, db: asyncpg.Connection, alice: Student
) -> None:
    main = await add_branch(db, "Main")
    science = await add_branch(db, "Science")
    main_quiet = await add_seat(db, main, "M-quiet", area="Quiet")
    await add_seat(db, main, "M-window", area="Window")
    science_window = await add_seat(db, science, "S-window", area="Window")
    await add_seat(db, science, "S-quiet", area="Quiet")
    # Alice sat in Science's Window area lately; long ago, she always sat in Main's Quiet.
    for days in (3, 10, 20):
        start = NOW - timedelta(days=days)
        await add_reservation(
            db,
            user_id=alice.id,
            seat_id=science_window,
            start=start,
            end=start + timedelta(hours=1),
            status="COMPLETED",
        )
    for days in range(100, 106):
        start = NOW - timedelta(days=days)
        await add_reservation(
            db,
            user_id=alice.id,
            seat_id=main_quiet,
            start=start,
            end=start + timedelta(hours=1),
            status="COMPLETED",
        )

    anonymous = await suggest(api)
    assert labels(anonymous) == ["M-quiet", "M-window", "S-window", "S-quiet"]
    assert len({item["score"] for item in anonymous}) == 1
    assert not any("usually" in r or "most often" in r for i in anonymous for r in i["reasons"])

    mine = await suggest(api, headers=alice.headers)
    assert labels(mine) == ["S-window", "S-quiet", "M-window", "M-quiet"]
    assert "In Window, where you usually sit" in mine[0]["reasons"]
    assert "At Science, where you book most often" in mine[0]["reasons"]
    assert mine[0]["score"] > mine[1]["score"] > mine[2]["score"] > mine[3]["score"]
    # Habits only break ties: an asked amenity still comes first.
    powered = await add_seat(db, main, "M-power", area="Quiet", power=True)
    assert (await suggest(api, headers=alice.headers, has_power=True))[0]["seat"]["id"] == powered


async def test_an_invalid_token_is_refused_not_ignored(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await add_seat(db, await add_branch(db, "Main"), "A1")
    response = await api.get("/seats/suggest", headers=bearer("not-a-token"))
    assert_error(response, 401, "invalid_token")


async def test_seats_not_active_or_taken_are_never_suggested(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    main = await add_branch(db, "Main")
    await add_seat(db, main, "fixing", power=True, monitor=True, status="MAINTENANCE")
    await add_seat(db, main, "gone", power=True, monitor=True, status="CLOSED")
    held = await add_seat(db, main, "held", power=True, monitor=True)
    occupied = await add_seat(db, main, "occupied", power=True, monitor=True)
    cancelled = await add_seat(db, main, "cancelled-booking")
    await add_seat(db, main, "plain")
    await taken(db, held, at(11), at(12), status="HELD")
    await taken(db, occupied, at(9), at(10), status="CHECKED_IN")
    await taken(db, cancelled, at(10), at(11), status="CANCELLED")
    await taken(db, cancelled, at(8), at(9), status="COMPLETED")

    items = await suggest(api, has_power=True, has_monitor=True, limit=20)
    assert labels(items) == ["cancelled-booking", "plain"]


async def test_a_branch_closed_now_or_closing_before_the_end_is_not_suggested(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    open_branch = await add_branch(db, "Open")
    closed = await add_branch(db, "Closed")
    closing = await add_branch(db, "Closing", "Europe/Berlin")
    await set_hours(db, closed, every_day("12:00", "18:00"))
    await set_hours(db, closing, every_day("08:00", "11:00"))  # 10:00 UTC
    await add_seat(db, open_branch, "O1")
    await add_seat(db, closed, "C1", power=True)
    await add_seat(db, closing, "X1", power=True)

    assert labels(await suggest(api, has_power=True)) == ["O1"]
    # Closing in 30 minutes: fine for 15 minutes, and it says until when.
    short = await suggest(api, has_power=True, duration_minutes=15)
    assert labels(short) == ["X1", "O1"]
    assert short[0]["free_until"] == iso(at(10))
    assert "Free until 11:00, when the branch closes" in short[0]["reasons"]
    # Nor at a time in the future when the branch is closed (Berlin 20:00-22:00).
    assert labels(await suggest(api, start_time=iso(at(19)), has_power=True)) == ["O1"]


async def test_when_nothing_is_free_the_earliest_times_today_are_suggested(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    main = await add_branch(db, "Main")
    await set_hours(db, main, every_day("08:00", "20:00"))
    first = await add_seat(db, main, "first")
    second = await add_seat(db, main, "second")
    third = await add_seat(db, main, "third")
    await add_seat(db, main, "broken", status="MAINTENANCE")
    await taken(db, first, at(9), at(11, 15))
    await taken(db, second, at(8), at(10, 30), status="CHECKED_IN")
    await taken(db, second, at(12), at(13))  # 10:30-12:00 is too short for two hours
    await taken(db, third, at(9), at(19))  # no two hours left before closing

    items = await suggest(api)
    assert [(i["seat"]["label"], i["start_time"], i["end_time"]) for i in items] == [
        ("first", iso(at(11, 15)), iso(at(13, 15))),
        ("second", iso(at(13)), iso(at(15))),
    ]
    assert items[0]["free_until"] == iso(at(20))
    assert "Nothing is free sooner: this seat is free from 11:15" in items[0]["reasons"]
    assert labels(await suggest(api, duration_minutes=90)) == ["second", "first"]
    assert (await suggest(api, duration_minutes=90))[0]["start_time"] == iso(at(10, 30))

    # Later today only: the day after is not offered.
    await taken(db, first, at(11, 15), at(20))
    await taken(db, second, at(13), at(20))
    assert await suggest(api) == []


async def test_a_branch_closed_all_day_gives_no_fallback_but_one_opening_later_does(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    late = await add_branch(db, "Late")
    await set_hours(db, late, every_day("14:00", "22:00"))
    await add_seat(db, late, "L1")
    items = await suggest(api)
    assert [(i["start_time"], i["free_until"]) for i in items] == [(iso(at(14)), iso(at(22)))]
    await set_hours(db, late, {})
    assert await suggest(api) == []


async def test_branch_restricts_and_an_unknown_branch_has_no_items(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    main = await add_branch(db, "Main")
    science = await add_branch(db, "Science")
    await add_seat(db, main, "M1")
    await add_seat(db, science, "S1", power=True)
    assert labels(await suggest(api, branch="Main", has_power=True)) == ["M1"]
    assert await suggest(api, branch="Nowhere") == []


async def test_limit_caps_the_items(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    main = await add_branch(db, "Main")
    for n in range(8):
        await add_seat(db, main, f"A{n}")
    assert len(await suggest(api)) == 5
    assert len(await suggest(api, limit=3)) == 3
    assert len(await suggest(api, limit=20)) == 8


@pytest.mark.parametrize(
    "query",
    [
        {"duration_minutes": "14"},
        {"duration_minutes": "241"},  # MAX_RESERVATION_HOURS is 4
        {"duration_minutes": str(10**30)},
        {"start_time": iso(NOW - timedelta(minutes=2))},
        {"start_time": iso(NOW + timedelta(days=15))},
    ],
)
async def test_bad_durations_and_starts_are_invalid_intervals(
    api: httpx.AsyncClient, db: asyncpg.Connection, query: dict[str, str]
) -> None:
    await add_seat(db, await add_branch(db, "Main"), "A1")
    assert_error(await api.get("/seats/suggest", params=query), 422, "invalid_interval")


async def test_edges_of_the_rules_are_accepted(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await add_seat(db, await add_branch(db, "Main"), "A1")
    skewed = await suggest(api, start_time=iso(NOW - timedelta(seconds=30)), duration_minutes=15)
    assert skewed[0]["end_time"] == iso(NOW - timedelta(seconds=30) + timedelta(minutes=15))
    assert len(await suggest(api, duration_minutes=240)) == 1


@pytest.mark.parametrize("query", [{"limit": "21"}, {"limit": "0"}, {"has_power": "maybe"}])
async def test_malformed_queries_are_validation_errors(
    api: httpx.AsyncClient, query: dict[str, str]
) -> None:
    response = await api.get("/seats/suggest", params=query)
    assert response.status_code == 422
    (issue,) = response.json()["detail"]
    assert issue["loc"] == ["query", next(iter(query))]


async def test_a_smaller_branch_maximum_keeps_its_seats_out_of_longer_suggestions(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    short = await add_branch(db, "Short")
    await db.execute("UPDATE branches SET max_reservation_hours = 1 WHERE id = $1", short)
    await add_seat(db, short, "S1")
    assert await suggest(api, duration_minutes=120) == []
    assert labels(await suggest(api, duration_minutes=60)) == ["S1"]


async def test_openapi_describes_the_suggestions(api: httpx.AsyncClient) -> None:
    operation = (await api.get("/openapi.json")).json()["paths"]["/seats/suggest"]["get"]
    assert operation["description"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"branch", "area", "has_power", "has_monitor", "start_time"} <= names
    assert {"duration_minutes", "limit"} <= names
    assert {"200", "401", "422"} <= set(operation["responses"])


async def test_suggestions_are_bookable_as_given(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    main = await add_branch(db, "Main")
    seat = await add_seat(db, main, "A1")
    await taken(db, seat, at(9), at(10))
    student = await add_student(db, "S7000001")
    (item,) = await suggest(api, headers=student.headers, duration_minutes=60)
    response = await api.post(
        "/reservations",
        json={"seat_id": seat, "start_time": item["start_time"], "end_time": item["end_time"]},
        headers=student.headers,
    )
    assert response.status_code == 201, response.text
