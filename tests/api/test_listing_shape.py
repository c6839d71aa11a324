"""The hottest listings are built as JSON by PostgreSQL (``json_build_object``) and
sent without pydantic; these tests hold those bytes to the wire schema the OpenAPI
document declares (SeatList, list[BranchOut]), so the SQL cannot drift from it unseen."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import BaseModel, TypeAdapter

from app.schemas.seats import BranchOut, ListedSeatOut, SeatList
from tests.conftest import ClientFactory
from tests.factories import FrozenClock, add_branch, add_reservation, add_seat, add_user, iso

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def field_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def assert_follows(model: type[BaseModel], item: dict[str, Any]) -> None:
    """Every field of the schema and nothing else, each of the right type (strict: no
    "true" for true, no "3" for 3)."""
    assert set(item) == field_names(model), f"{model.__name__}: {sorted(item)}"
    model.model_validate_json(json.dumps(item), strict=True)


@pytest.fixture
async def listing(db: asyncpg.Connection, make_client: ClientFactory) -> httpx.AsyncClient:
    main = await add_branch(db, "Main")
    science = await add_branch(db, "Science", "Europe/Berlin")
    taken = await add_seat(db, main, "A1", power=True, monitor=True)
    await add_seat(db, main, "A2", area="Group")
    await add_seat(db, science, "S1", status="MAINTENANCE")
    student = await add_user(db, "S0000001")
    await add_reservation(
        db,
        user_id=student,
        seat_id=taken,
        start=NOW - timedelta(minutes=30),
        end=NOW + timedelta(hours=1),
    )
    return await make_client(clock=FrozenClock(NOW))  # no Redis: every answer is computed


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({}, id="now"),
        pytest.param({"branch": "Main", "available_only": "true"}, id="filtered"),
        pytest.param(
            {"start_time": "2026-12-01T12:00:00Z", "end_time": "2026-12-01T13:00:00Z"},
            id="interval",
        ),
        pytest.param({"offset": 50}, id="past-the-last-page"),
    ],
)
async def test_seat_listing_bytes_follow_the_seat_list_schema(
    listing: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await listing.get("/seats", params=params)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == field_names(SeatList)
    assert isinstance(body["total"], int)
    for item in body["items"]:
        assert_follows(ListedSeatOut, item)
    # And the schema reads them back to the same document.
    assert SeatList.model_validate_json(response.content).model_dump(mode="json") == body


async def test_seat_listing_reports_each_field_as_the_schema_means_it(
    listing: httpx.AsyncClient,
) -> None:
    items = {i["label"]: i for i in (await listing.get("/seats")).json()["items"]}
    assert items["A1"] == {
        "id": items["A1"]["id"],
        "branch": "Main",
        "area": "Quiet",
        "label": "A1",
        "has_power": True,
        "has_monitor": True,
        "status": "ACTIVE",
        "available": False,
        "state": "booked",
    }
    assert items["A2"]["available"] is True
    assert items["A2"]["state"] == "free"
    assert items["S1"]["status"] == "MAINTENANCE"
    assert items["S1"]["available"] is False
    assert items["S1"]["state"] == "maintenance"


async def test_seat_state_words_tell_held_booked_occupied_and_closed_apart(
    db: asyncpg.Connection, make_client: ClientFactory
) -> None:
    branch = await add_branch(db, "Main")
    student = await add_user(db, "S0000001")
    other = await add_user(db, "S0000002")
    third = await add_user(db, "S0000003")
    seats = {
        label: await add_seat(db, branch, label, status=status)
        for label, status in [("H", "ACTIVE"), ("B", "ACTIVE"), ("O", "ACTIVE"), ("C", "CLOSED")]
    }
    now_start, now_end = NOW - timedelta(minutes=30), NOW + timedelta(hours=1)
    await add_reservation(
        db,
        user_id=student,
        seat_id=seats["H"],
        status="HELD",
        start=now_start,
        end=now_end,
        offer_expires_at=NOW + timedelta(minutes=5),
    )
    await add_reservation(db, user_id=other, seat_id=seats["B"], start=now_start, end=now_end)
    later_start, later_end = NOW + timedelta(hours=2), NOW + timedelta(hours=3)
    await add_reservation(db, user_id=student, seat_id=seats["O"], start=later_start, end=later_end)
    await add_reservation(
        db, user_id=third, seat_id=seats["O"], status="CHECKED_IN", start=now_start, end=now_end
    )
    client = await make_client(clock=FrozenClock(NOW))

    now = {i["label"]: i["state"] for i in (await client.get("/seats")).json()["items"]}
    assert now == {"H": "held", "B": "booked", "O": "occupied", "C": "closed"}
    # For an interval: the strongest reservation overlapping it decides.
    span = {"start_time": iso(NOW), "end_time": iso(NOW + timedelta(hours=3))}
    during = {
        i["label"]: i["state"] for i in (await client.get("/seats", params=span)).json()["items"]
    }
    assert during == {"H": "held", "B": "booked", "O": "occupied", "C": "closed"}
    later_span = {"start_time": iso(later_start), "end_time": iso(later_end)}
    later_states = {
        i["label"]: i["state"]
        for i in (await client.get("/seats", params=later_span)).json()["items"]
    }
    assert later_states == {"H": "free", "B": "free", "O": "booked", "C": "closed"}
    # One seat's day answers the same word.
    detail = (await client.get(f"/seats/{seats['O']}")).json()
    assert detail["state"] == "occupied"


async def test_branch_listing_bytes_follow_the_branch_schema(listing: httpx.AsyncClient) -> None:
    response = await listing.get("/branches")
    assert response.status_code == 200
    branches = response.json()
    assert [b["name"] for b in branches] == ["Main", "Science"]
    for branch in branches:
        assert_follows(BranchOut, branch)
    parsed = TypeAdapter(list[BranchOut]).validate_json(response.content)
    assert [b.model_dump(mode="json") for b in parsed] == branches
