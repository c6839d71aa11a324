"""Branch hours over HTTP: GET /branches (id, timezone, open_now, next_change_at),
GET /branches/{id} (hours and effective policy) and GET /branches/{id}/hours."""

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import ClientFactory
from tests.factories import FrozenClock, add_branch, add_seat

# Tuesday, Dec 1 2026, 09:30 UTC (10:30 in Berlin).
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
ALL_DAYS = (*WEEKDAYS, "saturday", "sunday")
AROUND_THE_CLOCK = {day: [{"opens": "00:00", "closes": "24:00"}] for day in ALL_DAYS}


def utc(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def set_hours(db: asyncpg.Connection, branch_id: int, hours: dict[str, Any]) -> None:
    await db.execute(
        "UPDATE branches SET hours = $2::jsonb WHERE id = $1", branch_id, json.dumps(hours)
    )


async def add_closure(
    db: asyncpg.Connection,
    branch_id: int,
    first: date,
    last: date,
    reason: str,
    special: list[dict[str, str]] | None = None,
) -> None:
    await db.execute(
        "INSERT INTO branch_closures (branch_id, date_from, date_to, reason, open) "
        "VALUES ($1, $2, $3, $4, $5::jsonb)",
        branch_id,
        first,
        last,
        reason,
        None if special is None else json.dumps(special),
    )


def weekdays(opens: str, closes: str) -> dict[str, Any]:
    return {day: [{"opens": opens, "closes": closes}] for day in WEEKDAYS}


@pytest.fixture
async def api(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(clock=FrozenClock(NOW))


# --- GET /branches


async def test_branches_tell_whether_each_is_open_now_and_when_that_changes(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    main = await add_branch(db, "Main")
    berlin = await add_branch(db, "Berlin", "Europe/Berlin")
    night = await add_branch(db, "Night", "America/New_York")
    await set_hours(db, berlin, weekdays("08:00", "10:00"))
    await set_hours(db, night, weekdays("20:00", "24:00"))
    listed = {b["name"]: b for b in (await api.get("/branches")).json()}
    assert {k: listed["Main"][k] for k in ("id", "timezone", "open_now", "next_change_at")} == {
        "id": main,
        "timezone": "UTC",
        "open_now": True,
        "next_change_at": None,
    }
    # 10:30 in Berlin: closed since 10:00, opens tomorrow at 08:00 (07:00 UTC).
    assert listed["Berlin"]["open_now"] is False
    assert listed["Berlin"]["next_change_at"] == "2026-12-02T07:00:00Z"
    # 04:30 in New York: opens tonight at 20:00 EST (01:00 UTC the next day).
    assert listed["Night"]["open_now"] is False
    assert listed["Night"]["next_change_at"] == "2026-12-02T01:00:00Z"


async def test_a_closure_ahead_is_the_next_change_of_a_branch_open_around_the_clock(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    main = await add_branch(db, "Main", "Europe/Berlin")
    await add_closure(db, main, date(2026, 12, 24), date(2026, 12, 26), "Christmas")
    [branch] = (await api.get("/branches")).json()
    assert branch["open_now"] is True
    assert branch["next_change_at"] == "2026-12-23T23:00:00Z"  # Berlin midnight


@pytest.mark.redis
async def test_a_cached_branch_list_is_not_served_past_the_next_opening_or_closing(
    make_client: ClientFactory, redis_url: str, db: asyncpg.Connection
) -> None:
    clock = FrozenClock(utc(12, 1, 21, 59))
    cached = await make_client(clock=clock, REDIS_URL=redis_url, SEAT_CACHE_SECONDS=120)
    main = await add_branch(db, "Main")
    await set_hours(db, main, weekdays("08:00", "22:00"))
    first = (await cached.get("/branches")).json()[0]
    assert first["open_now"] is True and first["next_change_at"] == "2026-12-01T22:00:00Z"
    # A marker only the database knows: shown once the answer is recomputed.
    await add_seat(db, main, "M1")
    clock.set(utc(12, 1, 21, 59) + timedelta(seconds=59))
    assert (await cached.get("/branches")).json()[0]["total_seats"] == 0  # still cached
    clock.set(utc(12, 1, 22))
    after = (await cached.get("/branches")).json()[0]
    assert after["total_seats"] == 1
    assert after["open_now"] is False and after["next_change_at"] == "2026-12-02T08:00:00Z"


# --- GET /branches/{id}


async def test_one_branch_has_its_listing_hours_and_the_global_policy_by_default(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    main = await add_branch(db, "Main", "Europe/Berlin")
    await add_seat(db, main, "M1", power=True)
    response = await api.get(f"/branches/{main}")
    assert response.status_code == 200, response.text
    body = response.json()
    [listed] = (await api.get("/branches")).json()
    assert {k: v for k, v in body.items() if k not in ("hours", "policy")} == listed
    assert body["hours"] == AROUND_THE_CLOCK
    assert body["policy"] == {
        "max_reservation_hours": 4,
        "booking_horizon_days": 14,
        "checkin_early_minutes": 15,
        "grace_minutes": 15,
        "claim_minutes": 10,
        "max_bookings_per_day": None,
        "max_hours_per_week": None,
    }


async def test_a_branch_policy_column_overrides_only_its_own_setting(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    main = await add_branch(db, "Main")
    await db.execute(
        "UPDATE branches SET grace_minutes = 5, max_bookings_per_day = 2 WHERE id = $1", main
    )
    await set_hours(db, main, {"monday": [{"opens": "08:00", "closes": "12:00"}]})
    body = (await api.get(f"/branches/{main}")).json()
    assert body["policy"]["grace_minutes"] == 5
    assert body["policy"]["max_bookings_per_day"] == 2
    assert body["policy"]["checkin_early_minutes"] == 15
    # Every weekday is named; the ones without hours are closed.
    assert body["hours"] == {day: [] for day in ALL_DAYS} | {
        "monday": [{"opens": "08:00", "closes": "12:00"}]
    }
    assert body["open_now"] is False  # a Tuesday


async def test_an_unknown_branch_is_404(api: httpx.AsyncClient) -> None:
    for path in ("/branches/999", "/branches/999/hours"):
        response = await api.get(path)
        assert response.status_code == 404 and response.json()["code"] == "not_found"


# --- GET /branches/{id}/hours


async def test_hours_default_to_today_and_the_six_days_after_on_the_branch_clock(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    # 23:30 UTC on Dec 1 is already Dec 2 in Berlin.
    api = await make_client(clock=FrozenClock(utc(12, 1, 23, 30)))
    main = await add_branch(db, "Main", "Europe/Berlin")
    await set_hours(db, main, weekdays("08:00", "20:00"))
    response = await api.get(f"/branches/{main}/hours")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["branch_id"] == main and body["timezone"] == "Europe/Berlin"
    assert [d["date"] for d in body["days"]] == [f"2026-12-{n:02d}" for n in range(2, 9)]
    assert body["days"][0] == {
        "date": "2026-12-02",
        "open": [{"start_time": "2026-12-02T07:00:00Z", "end_time": "2026-12-02T19:00:00Z"}],
        "closure": None,
    }
    saturday = body["days"][3]
    assert saturday == {"date": "2026-12-05", "open": [], "closure": None}


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        pytest.param("2026-03-29", 23, id="spring-forward"),
        pytest.param("2026-10-25", 25, id="fall"),
    ],
)
async def test_a_berlin_day_around_the_clock_lasts_23_or_25_hours_on_dst_days(
    api: httpx.AsyncClient, db: asyncpg.Connection, day: str, hours: int
) -> None:
    main = await add_branch(db, "Main", "Europe/Berlin")
    response = await api.get(f"/branches/{main}/hours", params={"from": day, "to": day})
    [only] = response.json()["days"]
    [opening] = only["open"]
    start = datetime.fromisoformat(opening["start_time"])
    end = datetime.fromisoformat(opening["end_time"])
    assert end - start == timedelta(hours=hours)


async def test_a_closure_names_its_reason_and_special_hours_replace_the_day(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    main = await add_branch(db, "Main", "Europe/Berlin")
    await add_closure(
        db,
        main,
        date(2026, 12, 24),
        date(2026, 12, 24),
        "Christmas Eve",
        [{"opens": "08:00", "closes": "12:00"}],
    )
    await add_closure(db, main, date(2026, 12, 25), date(2026, 12, 26), "Christmas")
    response = await api.get(
        f"/branches/{main}/hours", params={"from": "2026-12-24", "to": "2026-12-27"}
    )
    assert response.json()["days"] == [
        {
            "date": "2026-12-24",
            "open": [{"start_time": "2026-12-24T07:00:00Z", "end_time": "2026-12-24T11:00:00Z"}],
            "closure": {"reason": "Christmas Eve"},
        },
        {"date": "2026-12-25", "open": [], "closure": {"reason": "Christmas"}},
        {"date": "2026-12-26", "open": [], "closure": {"reason": "Christmas"}},
        {
            "date": "2026-12-27",
            "open": [{"start_time": "2026-12-26T23:00:00Z", "end_time": "2026-12-27T23:00:00Z"}],
            "closure": None,
        },
    ]


async def test_hours_answer_at_most_62_days_and_never_backwards(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    main = await add_branch(db, "Main")
    longest = await api.get(
        f"/branches/{main}/hours", params={"from": "2026-12-01", "to": "2027-01-31"}
    )
    assert longest.status_code == 200 and len(longest.json()["days"]) == 62
    for params in (
        {"from": "2026-12-01", "to": "2027-02-01"},
        {"from": "2026-12-02", "to": "2026-12-01"},
        {"to": "2026-11-30"},  # before today, the default `from`
    ):
        response = await api.get(f"/branches/{main}/hours", params=params)
        assert response.status_code == 422, params
        assert response.json()["code"] == "invalid_interval"
    malformed = await api.get(f"/branches/{main}/hours", params={"from": "December"})
    assert malformed.status_code == 422 and isinstance(malformed.json()["detail"], list)
