"""Seat discovery: GET /seats, /seats/{id}, /seats/{id}/availability, /branches."""

from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import ClientFactory
from tests.factories import FrozenClock, add_branch, add_seat, add_user, iso

# Dec 1, 09:30 UTC: between the 09:00-10:00 bookings the tests make.
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


@pytest.fixture
async def seats_client(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(clock=FrozenClock(NOW))


async def book(
    db: asyncpg.Connection,
    seat_id: int,
    start: datetime,
    end: datetime,
    status: str = "CONFIRMED",
    student_id: str | None = None,
) -> int:
    user_id = await add_user(db, student_id or f"U{seat_id}-{start.timestamp():.0f}-{status}")
    reservation_id: int = await db.fetchval(
        "INSERT INTO reservations (user_id, seat_id, start_time, end_time, status) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id",
        user_id,
        seat_id,
        start,
        end,
        status,
    )
    return reservation_id


@pytest.fixture
async def library(db: asyncpg.Connection) -> dict[str, Any]:
    main = await add_branch(db, "Main")
    science = await add_branch(db, "Science", "Europe/Berlin")
    seats = {
        "quiet": await add_seat(db, main, "M1", area="Quiet"),
        "power": await add_seat(db, main, "M2", area="Quiet", power=True),
        "desk": await add_seat(db, main, "M3", area="Computers", power=True, monitor=True),
        "broken": await add_seat(db, main, "M4", area="Computers", status="MAINTENANCE"),
        "lab": await add_seat(db, science, "S1", area="Lab", power=True, monitor=True),
    }
    return {"main": main, "science": science, "seats": seats}


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [seat["id"] for seat in response.json()["items"]]


async def test_list_seats_returns_contract_fields_and_total(
    seats_client: httpx.AsyncClient, library: dict[str, Any]
) -> None:
    response = await seats_client.get("/seats")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 5
    assert set(body["items"][0]) == {
        "id",
        "branch",
        "area",
        "label",
        "has_power",
        "has_monitor",
        "status",
        "available",
        "state",
    }
    assert body["items"][0]["branch"] == "Main"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("branch=Science", ["lab"]),
        ("area=Computers", ["desk", "broken"]),
        ("has_power=true", ["power", "desk", "lab"]),
        ("has_monitor=true&branch=Main", ["desk"]),
        ("has_power=false", ["quiet", "broken"]),
        ("status=MAINTENANCE", ["broken"]),
        ("branch=Nowhere", []),
    ],
)
async def test_list_seats_filters(
    seats_client: httpx.AsyncClient, library: dict[str, Any], query: str, expected: list[str]
) -> None:
    response = await seats_client.get(f"/seats?{query}")
    assert ids(response) == [library["seats"][name] for name in expected]
    assert response.json()["total"] == len(expected)


async def test_list_seats_pages_with_limit_and_offset(
    seats_client: httpx.AsyncClient, library: dict[str, Any]
) -> None:
    first = await seats_client.get("/seats?limit=2")
    second = await seats_client.get("/seats?limit=2&offset=2")
    beyond = await seats_client.get("/seats?limit=2&offset=50")
    assert len(ids(first)) == 2 and len(ids(second)) == 2
    assert set(ids(first)).isdisjoint(ids(second))
    assert beyond.json() == {"items": [], "total": 5}


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "offset=-1", "has_power=maybe", "status=BROKEN"]
)
async def test_list_seats_rejects_bad_paging_and_filters(
    seats_client: httpx.AsyncClient, query: str
) -> None:
    response = await seats_client.get(f"/seats?{query}")
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


async def test_seat_booked_now_is_unavailable_and_dropped_by_available_only(
    seats_client: httpx.AsyncClient, db: asyncpg.Connection, library: dict[str, Any]
) -> None:
    quiet = library["seats"]["quiet"]
    await book(db, quiet, at(9), at(10))
    listing = (await seats_client.get("/seats?branch=Main")).json()["items"]
    availability = {seat["id"]: seat["available"] for seat in listing}
    assert availability[quiet] is False
    assert availability[library["seats"]["power"]] is True
    assert availability[library["seats"]["broken"]] is False  # not ACTIVE
    free = await seats_client.get("/seats?branch=Main&available_only=true")
    assert ids(free) == [library["seats"]["power"], library["seats"]["desk"]]
    assert free.json()["total"] == 2


@pytest.mark.parametrize("status", ["CANCELLED", "NO_SHOW", "COMPLETED"])
async def test_ended_reservations_do_not_make_a_seat_busy(
    seats_client: httpx.AsyncClient, db: asyncpg.Connection, library: dict[str, Any], status: str
) -> None:
    await book(db, library["seats"]["quiet"], at(9), at(10), status=status)
    seat = (await seats_client.get(f"/seats/{library['seats']['quiet']}")).json()
    assert seat["available"] is True
    assert seat["busy"] == []


async def test_availability_for_an_interval_is_half_open(
    seats_client: httpx.AsyncClient, db: asyncpg.Connection, library: dict[str, Any]
) -> None:
    quiet = library["seats"]["quiet"]
    await book(db, quiet, at(10), at(11))
    overlapping = await seats_client.get(
        "/seats", params={"start_time": iso(at(10, 30)), "end_time": iso(at(12))}
    )
    back_to_back = await seats_client.get(
        "/seats", params={"start_time": iso(at(11)), "end_time": iso(at(12))}
    )
    assert {s["id"]: s["available"] for s in overlapping.json()["items"]}[quiet] is False
    assert {s["id"]: s["available"] for s in back_to_back.json()["items"]}[quiet] is True


@pytest.mark.parametrize(
    "params",
    [
        {"start_time": "2026-12-01T10:00:00Z"},
        {"end_time": "2026-12-01T10:00:00Z"},
        {"start_time": "2026-12-01T10:00:00Z", "end_time": "2026-12-01T10:00:00Z"},
        {"start_time": "2026-12-01T11:00:00Z", "end_time": "2026-12-01T10:00:00Z"},
    ],
)
async def test_list_seats_rejects_half_or_inverted_intervals(
    seats_client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await seats_client.get("/seats", params=params)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_interval"


async def test_times_without_offset_are_rejected(seats_client: httpx.AsyncClient) -> None:
    response = await seats_client.get(
        "/seats", params={"start_time": "2026-12-01T10:00:00", "end_time": "2026-12-01T11:00:00Z"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "start_time"]


async def test_seat_detail_lists_the_branch_days_busy_intervals_without_identities(
    seats_client: httpx.AsyncClient, db: asyncpg.Connection, library: dict[str, Any]
) -> None:
    lab = library["seats"]["lab"]  # Europe/Berlin: UTC+1 in December
    await book(db, lab, at(8), at(9))  # 09:00-10:00 in Berlin on Dec 1
    await book(db, lab, at(23, 30), at(23, 45))  # 00:30 Berlin on Dec 2
    await book(db, lab, at(12), at(13), status="CANCELLED")
    response = await seats_client.get(f"/seats/{lab}", params={"date": "2026-12-01"})
    assert response.status_code == 200
    body = response.json()
    assert body["busy"] == [
        {"start_time": "2026-12-01T08:00:00Z", "end_time": "2026-12-01T09:00:00Z"}
    ]
    assert "user_id" not in str(body)
    next_day = (await seats_client.get(f"/seats/{lab}", params={"date": "2026-12-02"})).json()
    assert next_day["busy"] == [
        {"start_time": "2026-12-01T23:30:00Z", "end_time": "2026-12-01T23:45:00Z"}
    ]


async def test_seat_detail_defaults_to_today_in_the_branch_time_zone(
    seats_client: httpx.AsyncClient, db: asyncpg.Connection, library: dict[str, Any]
) -> None:
    quiet = library["seats"]["quiet"]
    await book(db, quiet, at(15), at(16))
    await book(db, quiet, at(15, day=2), at(16, day=2))
    body = (await seats_client.get(f"/seats/{quiet}")).json()
    assert [b["start_time"] for b in body["busy"]] == ["2026-12-01T15:00:00Z"]
    assert body["available"] is True  # nothing at 09:30


@pytest.mark.parametrize(
    ("seat_id", "status"),
    [("999999", 404), ("0", 422), ("-3", 422), (str(2**63), 422), ("abc", 422)],
)
async def test_seat_detail_unknown_or_malformed_id(
    seats_client: httpx.AsyncClient, seat_id: str, status: int
) -> None:
    response = await seats_client.get(f"/seats/{seat_id}")
    assert response.status_code == status
    if status == 404:
        assert response.json()["code"] == "not_found"


async def test_availability_reports_conflicts_in_utc(
    seats_client: httpx.AsyncClient, db: asyncpg.Connection, library: dict[str, Any]
) -> None:
    quiet = library["seats"]["quiet"]
    await book(db, quiet, at(10), at(11))
    await book(db, quiet, at(12), at(13))
    response = await seats_client.get(
        f"/seats/{quiet}/availability",
        params={"start_time": "2026-12-01T11:30:00+01:00", "end_time": "2026-12-01T14:00:00Z"},
    )
    assert response.status_code == 200
    assert response.json() == {
        "seat_id": quiet,
        "start_time": "2026-12-01T10:30:00Z",
        "end_time": "2026-12-01T14:00:00Z",
        "available": False,
        "conflicts": [
            {"start_time": "2026-12-01T10:00:00Z", "end_time": "2026-12-01T11:00:00Z"},
            {"start_time": "2026-12-01T12:00:00Z", "end_time": "2026-12-01T13:00:00Z"},
        ],
    }
    free = await seats_client.get(
        f"/seats/{quiet}/availability", params={"start_time": iso(at(11)), "end_time": iso(at(12))}
    )
    assert free.json()["available"] is True and free.json()["conflicts"] == []


async def test_availability_of_a_seat_under_maintenance_is_false_without_conflicts(
    seats_client: httpx.AsyncClient, library: dict[str, Any]
) -> None:
    response = await seats_client.get(
        f"/seats/{library['seats']['broken']}/availability",
        params={"start_time": iso(at(11)), "end_time": iso(at(12))},
    )
    assert response.json()["available"] is False and response.json()["conflicts"] == []


async def test_availability_needs_both_times_and_a_known_seat(
    seats_client: httpx.AsyncClient, library: dict[str, Any]
) -> None:
    quiet = library["seats"]["quiet"]
    missing = await seats_client.get(
        f"/seats/{quiet}/availability", params={"start_time": iso(at(11))}
    )
    assert missing.status_code == 422
    inverted = await seats_client.get(
        f"/seats/{quiet}/availability", params={"start_time": iso(at(12)), "end_time": iso(at(11))}
    )
    assert inverted.status_code == 422 and inverted.json()["code"] == "invalid_interval"
    unknown = await seats_client.get(
        "/seats/424242/availability", params={"start_time": iso(at(11)), "end_time": iso(at(12))}
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


async def test_branches_count_seats_by_their_state_now(
    seats_client: httpx.AsyncClient, db: asyncpg.Connection, library: dict[str, Any]
) -> None:
    seats = library["seats"]
    await book(db, seats["quiet"], at(9), at(10), status="CONFIRMED")
    await book(db, seats["power"], at(9), at(11), status="CHECKED_IN")
    await book(db, seats["desk"], at(10), at(11), status="CONFIRMED")  # later: still free now
    response = await seats_client.get("/branches")
    assert response.status_code == 200
    assert response.json() == [
        {
            "id": library["main"],
            "name": "Main",
            "timezone": "UTC",
            "total_seats": 4,
            "available_now": 1,
            "reserved_now": 1,
            "occupied_now": 1,
            "with_power": 2,
            "with_monitor": 1,
            "areas": ["Computers", "Quiet"],
            "open_now": True,  # a new branch is open around the clock
            "next_change_at": None,
        },
        {
            "id": library["science"],
            "name": "Science",
            "timezone": "Europe/Berlin",
            "total_seats": 1,
            "available_now": 1,
            "reserved_now": 0,
            "occupied_now": 0,
            "with_power": 1,
            "with_monitor": 1,
            "areas": ["Lab"],
            "open_now": True,
            "next_change_at": None,
        },
    ]


async def test_a_branch_without_seats_is_listed_with_zero_counts(
    seats_client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    annex = await add_branch(db, "Annex")
    assert (await seats_client.get("/branches")).json() == [
        {
            "id": annex,
            "name": "Annex",
            "timezone": "UTC",
            "total_seats": 0,
            "available_now": 0,
            "reserved_now": 0,
            "occupied_now": 0,
            "with_power": 0,
            "with_monitor": 0,
            "areas": [],
            "open_now": True,
            "next_change_at": None,
        }
    ]
