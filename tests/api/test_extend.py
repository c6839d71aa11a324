"""Extending a reservation (api.md v2, "Reservations: extend, scan, suggestions"):
`POST /reservations/{id}/extend` on a frozen clock, each refusal with its code, and the
seat listing (through the Redis cache) and the seat stream learning of the added time."""

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request

from app.deps import app_state
from app.realtime.broker import Broker
from tests.conftest import ClientFactory
from tests.factories import (
    GRACE,
    HOUR,
    MINUTE,
    RESERVATION_FIELDS,
    SECOND,
    T10,
    T11,
    T12,
    FrozenClock,
    Student,
    add_branch,
    add_reservation,
    add_seat,
    assert_error,
    assert_validation_error,
    at,
    booked,
    iso,
    reservation_row,
)

NOW = at(8)  # Dec 1, 08:00 UTC; the reservations are for 10:00-11:00 the same day


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def api(make_client: ClientFactory, clock: FrozenClock) -> httpx.AsyncClient:
    return await make_client(clock=clock)


@pytest.fixture
async def seats(db: asyncpg.Connection) -> tuple[int, int]:
    main = await add_branch(db, "Main")
    return await add_seat(db, main, "A1"), await add_seat(db, main, "A2")


async def extend(
    client: httpx.AsyncClient,
    student: Student,
    reservation_id: int,
    end: datetime | str,
    *,
    key: str | None = None,
) -> httpx.Response:
    headers = dict(student.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post(
        f"/reservations/{reservation_id}/extend",
        json={"end_time": end if isinstance(end, str) else iso(end)},
        headers=headers,
    )


async def end_of(db: asyncpg.Connection, reservation_id: int) -> datetime:
    end: datetime = (await reservation_row(db, reservation_id))["end_time"]
    return end


async def test_extending_moves_the_end_and_get_shows_the_new_end(
    api: httpx.AsyncClient, alice: Student, seats: tuple[int, int]
) -> None:
    mine = await booked(api, alice, seats[0], T10, T11)

    response = await extend(api, alice, mine["id"], T12)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= RESERVATION_FIELDS
    assert {k: body[k] for k in ("id", "start_time", "end_time", "status")} == {
        "id": mine["id"],
        "start_time": iso(T10),
        "end_time": iso(T12),
        "status": "CONFIRMED",
    }
    fetched = await api.get(f"/reservations/{mine['id']}", headers=alice.headers)
    assert fetched.status_code == 200
    assert fetched.json() == body  # the same ReservationOut as GET


async def test_a_checked_in_reservation_can_be_extended_while_it_runs(
    api: httpx.AsyncClient,
    clock: FrozenClock,
    alice: Student,
    seats: tuple[int, int],
    db: asyncpg.Connection,
) -> None:
    mine = await add_reservation(
        db, user_id=alice.id, seat_id=seats[0], start=T10, end=T11, status="CHECKED_IN"
    )
    clock.set(at(10, 50))

    response = await extend(api, alice, mine, at(11, 30))

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["end_time"]) == (
        "CHECKED_IN",
        iso(at(11, 30)),
    )
    assert await end_of(db, mine) == at(11, 30)


async def test_an_end_given_with_an_offset_is_the_same_instant(
    api: httpx.AsyncClient, alice: Student, seats: tuple[int, int]
) -> None:
    mine = await booked(api, alice, seats[0], T10, T11)
    response = await extend(api, alice, mine["id"], "2026-12-01T13:00:00+01:00")
    assert response.status_code == 200, response.text
    assert response.json()["end_time"] == iso(T12)


@pytest.mark.parametrize("end", [T11, at(10, 30)], ids=["same-end", "earlier-end"])
async def test_an_end_not_later_than_the_current_one_is_invalid_interval(
    api: httpx.AsyncClient,
    alice: Student,
    seats: tuple[int, int],
    db: asyncpg.Connection,
    end: datetime,
) -> None:
    mine = await booked(api, alice, seats[0], T10, T11)
    body = assert_error(await extend(api, alice, mine["id"], end), 422, "invalid_interval")
    assert iso(T11) in body["detail"]
    assert await end_of(db, mine["id"]) == T11


async def test_the_whole_reservation_may_last_max_reservation_hours_and_no_longer(
    api: httpx.AsyncClient, alice: Student, seats: tuple[int, int], db: asyncpg.Connection
) -> None:
    mine = await booked(api, alice, seats[0], T10, T11)

    body = assert_error(
        await extend(api, alice, mine["id"], T10 + 4 * HOUR + MINUTE), 422, "invalid_interval"
    )
    assert "4 hours" in body["detail"]
    assert await end_of(db, mine["id"]) == T11

    response = await extend(api, alice, mine["id"], T10 + 4 * HOUR)  # exactly the limit
    assert response.status_code == 200, response.text


async def test_the_limit_is_the_configured_max_reservation_hours(
    make_client: ClientFactory, clock: FrozenClock, alice: Student, seats: tuple[int, int]
) -> None:
    api = await make_client(clock=clock, MAX_RESERVATION_HOURS=1.5)
    mine = await booked(api, alice, seats[0], T10, T11)
    body = assert_error(await extend(api, alice, mine["id"], T12), 422, "invalid_interval")
    assert "1.5 hours" in body["detail"]


async def test_the_branch_policy_sets_the_limit_over_the_global_setting(
    api: httpx.AsyncClient, alice: Student, seats: tuple[int, int], db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE branches SET max_reservation_hours = 1.5 WHERE name = 'Main'")
    mine = await booked(api, alice, seats[0], T10, T11)
    body = assert_error(await extend(api, alice, mine["id"], T12), 422, "invalid_interval")
    assert "1.5 hours" in body["detail"]
    assert (await extend(api, alice, mine["id"], at(11, 30))).status_code == 200


async def test_an_end_past_closing_is_outside_opening_hours(
    api: httpx.AsyncClient, alice: Student, seats: tuple[int, int], db: asyncpg.Connection
) -> None:
    # Tuesday, Dec 1 2026; the branch is in UTC.
    tuesday = [{"opens": "08:00", "closes": "12:00"}, {"opens": "13:00", "closes": "24:00"}]
    hours = {"tuesday": tuesday}
    await db.execute("UPDATE branches SET hours = $1::jsonb WHERE name = 'Main'", json.dumps(hours))
    mine = await booked(api, alice, seats[0], T10, T11)

    # Into the next opening: not one opening for the whole reservation.
    body = assert_error(
        await extend(api, alice, mine["id"], at(13, 30)), 422, "outside_opening_hours"
    )
    day = "Main is open 08:00-12:00, 13:00-24:00 on Tuesday 2026-12-01 (UTC time)"
    assert day in body["detail"]
    assert_error(await extend(api, alice, mine["id"], at(12, 1)), 422, "outside_opening_hours")
    assert await end_of(db, mine["id"]) == T11
    response = await extend(api, alice, mine["id"], T12)  # up to the closing time
    assert response.status_code == 200, response.text


async def test_the_weekly_hours_quota_counts_the_whole_lengthened_reservation(
    api: httpx.AsyncClient, alice: Student, seats: tuple[int, int], db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE branches SET max_hours_per_week = 2.5 WHERE name = 'Main'")
    await booked(api, alice, seats[1], at(10, day=2), at(11, day=2))  # same ISO week
    mine = await booked(api, alice, seats[0], T10, T11)

    response = await extend(api, alice, mine["id"], T12)  # 1 + 2 hours > 2.5

    body = assert_error(response, 409, "quota_exceeded")
    assert {k: body[k] for k in ("quota", "limit", "used")} == {
        "quota": "max_hours_per_week",
        "limit": 2.5,
        "used": 1,  # before the request: the other reservation; this one is being replaced
    }
    assert await end_of(db, mine["id"]) == T11
    assert (await extend(api, alice, mine["id"], at(11, 30))).status_code == 200  # 1 + 1.5


async def test_a_daily_bookings_quota_at_its_limit_does_not_refuse_an_extension(
    api: httpx.AsyncClient, alice: Student, seats: tuple[int, int], db: asyncpg.Connection
) -> None:
    await db.execute("UPDATE branches SET max_bookings_per_day = 1 WHERE name = 'Main'")
    mine = await booked(api, alice, seats[0], T10, T11)
    response = await extend(api, alice, mine["id"], T12)  # still one booking that day
    assert response.status_code == 200, response.text


async def test_the_next_booking_of_the_seat_in_the_way_is_seat_conflict(
    api: httpx.AsyncClient,
    alice: Student,
    bob: Student,
    seats: tuple[int, int],
    db: asyncpg.Connection,
) -> None:
    mine = await booked(api, alice, seats[0], T10, T11)
    await booked(api, bob, seats[0], at(11, 30), T12)

    assert_error(await extend(api, alice, mine["id"], at(11, 31)), 409, "seat_conflict")
    assert await end_of(db, mine["id"]) == T11
    # Half-open intervals: up to the next start is free.
    response = await extend(api, alice, mine["id"], at(11, 30))
    assert response.status_code == 200, response.text


async def test_another_reservation_of_the_owner_then_is_user_overlap(
    api: httpx.AsyncClient, alice: Student, seats: tuple[int, int], db: asyncpg.Connection
) -> None:
    mine = await booked(api, alice, seats[0], T10, T11)
    await booked(api, alice, seats[1], at(11, 15), T12)

    assert_error(await extend(api, alice, mine["id"], at(11, 30)), 409, "user_overlap")
    assert await end_of(db, mine["id"]) == T11


async def test_inactive_reservations_of_the_seat_do_not_stand_in_the_way(
    api: httpx.AsyncClient,
    alice: Student,
    bob: Student,
    seats: tuple[int, int],
    db: asyncpg.Connection,
) -> None:
    mine = await booked(api, alice, seats[0], T10, T11)
    await add_reservation(
        db, user_id=bob.id, seat_id=seats[0], start=T11, end=T12, status="CANCELLED"
    )
    response = await extend(api, alice, mine["id"], T12)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("status", ["CANCELLED", "COMPLETED", "NO_SHOW", "HELD"])
async def test_a_reservation_that_is_not_confirmed_or_checked_in_is_invalid_state(
    api: httpx.AsyncClient,
    alice: Student,
    seats: tuple[int, int],
    db: asyncpg.Connection,
    status: str,
) -> None:
    mine = await add_reservation(
        db, user_id=alice.id, seat_id=seats[0], start=T10, end=T11, status=status
    )
    body = assert_error(await extend(api, alice, mine, T12), 409, "invalid_state")
    assert status in body["detail"]
    assert await end_of(db, mine) == T11


@pytest.mark.parametrize("status", ["CONFIRMED", "CHECKED_IN"])
async def test_a_reservation_that_has_ended_is_invalid_state(
    api: httpx.AsyncClient,
    clock: FrozenClock,
    alice: Student,
    seats: tuple[int, int],
    db: asyncpg.Connection,
    status: str,
) -> None:
    mine = await add_reservation(
        db, user_id=alice.id, seat_id=seats[0], start=T10, end=T11, status=status
    )
    clock.set(T11)  # half-open: at its end it has ended
    body = assert_error(await extend(api, alice, mine, T12), 409, "invalid_state")
    assert "ended" in body["detail"]
    assert await end_of(db, mine) == T11


async def test_a_confirmed_reservation_past_its_check_in_deadline_is_invalid_state(
    api: httpx.AsyncClient,
    clock: FrozenClock,
    alice: Student,
    seats: tuple[int, int],
    db: asyncpg.Connection,
) -> None:
    mine = await add_reservation(db, user_id=alice.id, seat_id=seats[0], start=T10, end=T11)
    clock.set(T10 + GRACE)  # the last instant of its check-in window: still extendable
    assert (await extend(api, alice, mine, T11 + 30 * MINUTE)).status_code == 200
    clock.set(T10 + GRACE + SECOND)
    body = assert_error(await extend(api, alice, mine, T12), 409, "invalid_state")
    assert "no-show" in body["detail"]


async def test_someone_elses_reservation_is_not_found_like_a_missing_one(
    api: httpx.AsyncClient,
    alice: Student,
    bob: Student,
    seats: tuple[int, int],
    db: asyncpg.Connection,
) -> None:
    bobs = await booked(api, bob, seats[0], T10, T11)
    assert_error(await extend(api, alice, bobs["id"], T12), 404, "not_found")
    assert_error(await extend(api, alice, bobs["id"] + 1000, T12), 404, "not_found")
    assert await end_of(db, bobs["id"]) == T11


async def test_malformed_requests_are_refused_before_anything_changes(
    api: httpx.AsyncClient, alice: Student, seats: tuple[int, int], db: asyncpg.Connection
) -> None:
    mine = await booked(api, alice, seats[0], T10, T11)
    path = f"/reservations/{mine['id']}/extend"
    no_offset = await api.post(
        path, json={"end_time": "2026-12-01T12:00:00"}, headers=alice.headers
    )
    assert_validation_error(no_offset, "body", "end_time")
    assert_validation_error(
        await api.post(path, json={}, headers=alice.headers), "body", "end_time"
    )
    assert_validation_error(
        await api.post(
            "/reservations/0/extend", json={"end_time": iso(T12)}, headers=alice.headers
        ),
        "path",
        "reservation_id",
    )
    assert_error(await api.post(path, json={"end_time": iso(T12)}), 401, "not_authenticated")
    assert await end_of(db, mine["id"]) == T11


async def test_an_idempotency_key_extends_once_and_replays_the_answer(
    api: httpx.AsyncClient, alice: Student, seats: tuple[int, int], db: asyncpg.Connection
) -> None:
    mine = await booked(api, alice, seats[0], T10, T11)

    first = await extend(api, alice, mine["id"], T12, key="extend-once")
    again = await extend(api, alice, mine["id"], T12, key="extend-once")

    assert (first.status_code, again.status_code) == (200, 200), again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    other = await extend(api, alice, mine["id"], at(12, 30), key="extend-once")
    assert_error(other, 422, "idempotency_mismatch")
    assert await end_of(db, mine["id"]) == T12


async def test_an_idempotent_refusal_is_replayed_too(
    api: httpx.AsyncClient,
    alice: Student,
    bob: Student,
    seats: tuple[int, int],
    db: asyncpg.Connection,
) -> None:
    mine = await booked(api, alice, seats[0], T10, T11)
    bobs = await booked(api, bob, seats[0], T11, T12)
    assert_error(await extend(api, alice, mine["id"], T12, key="k1"), 409, "seat_conflict")
    await api.delete(f"/reservations/{bobs['id']}", headers=bob.headers)
    # The stored answer, not a new attempt (the time is free now).
    replay = await extend(api, alice, mine["id"], T12, key="k1")
    assert_error(replay, 409, "seat_conflict")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (await extend(api, alice, mine["id"], T12, key="k2")).status_code == 200


async def listed_available(
    client: httpx.AsyncClient, seat_id: int, start: datetime, end: datetime
) -> Any:
    response = await client.get(
        "/seats", params={"branch": "Main", "start_time": iso(start), "end_time": iso(end)}
    )
    assert response.status_code == 200, response.text
    [seat] = [s for s in response.json()["items"] if s["id"] == seat_id]
    return seat["available"]


@pytest.mark.redis
async def test_the_cached_seat_listing_shows_the_seat_busy_in_the_added_time(
    make_client: ClientFactory,
    redis_url: str,
    clock: FrozenClock,
    alice: Student,
    seats: tuple[int, int],
) -> None:
    cached = await make_client(clock=clock, REDIS_URL=redis_url, SEAT_CACHE_SECONDS=120)
    mine = await booked(cached, alice, seats[0], T10, T11)
    assert await listed_available(cached, seats[0], at(11, 15), at(11, 45)) is True  # cached

    assert (await extend(cached, alice, mine["id"], T12)).status_code == 200

    assert await listed_available(cached, seats[0], at(11, 15), at(11, 45)) is False
    assert await listed_available(cached, seats[1], at(11, 15), at(11, 45)) is True
    availability = await cached.get(
        f"/seats/{seats[0]}/availability",
        params={"start_time": iso(at(11, 15)), "end_time": iso(at(11, 45))},
    )
    assert availability.json()["conflicts"] == [{"start_time": iso(T10), "end_time": iso(T12)}]


def capturing_broker(into: dict[str, Broker]) -> Callable[[FastAPI], None]:
    """GET /_test/broker remembers the app's broker, to listen as a seat stream does."""

    def hook(app: FastAPI) -> None:
        @app.get("/_test/broker")
        async def broker(request: Request) -> dict[str, str]:
            into["broker"] = app_state(request)["broker"]
            return {}

    return hook


async def test_the_seat_stream_hears_that_the_branch_changed(
    make_client: ClientFactory, clock: FrozenClock, alice: Student, seats: tuple[int, int]
) -> None:
    captured: dict[str, Broker] = {}
    api = await make_client(clock=clock, app_hook=capturing_broker(captured))
    await api.get("/_test/broker")
    mine = await booked(api, alice, seats[0], T10, T11)

    with captured["broker"].hub.branch("Main") as stream:
        assert (await extend(api, alice, mine["id"], T12)).status_code == 200
        heard = [stream.queue.get_nowait() for _ in range(stream.queue.qsize())]
        assert heard == [{"kind": "branch", "branch": "Main"}]

        # A refusal changes nothing and says nothing.
        assert (await extend(api, alice, mine["id"], T12)).status_code == 422
        assert stream.queue.empty()
