"""Reservations (api.md, "Reservations"): booking rules to the second on a frozen clock,
Idempotency-Key, listings, check-in, check-out, cancellation, calendar export."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from icalendar import Calendar

from app.models import Role
from app.security import encode_token
from app.timeutil import utcnow
from tests.conftest import TEST_JWT_SECRET, ClientFactory
from tests.factories import (
    DAY,
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
    booking,
    iso,
    registered_student,
    reservation_status,
    reserve,
)

# Dec 1, 08:00 UTC; most bookings are for 10:00-11:00 the same day.
NOW = at(8)


@dataclass(frozen=True)
class Library:
    branch: int
    a1: int
    a2: int
    maintenance: int
    closed: int


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def api(make_client: ClientFactory, clock: FrozenClock) -> httpx.AsyncClient:
    return await make_client(clock=clock)


@pytest.fixture
async def library(db: asyncpg.Connection) -> Library:
    main = await add_branch(db, "Main")
    return Library(
        branch=main,
        a1=await add_seat(db, main, "A1", area="Quiet"),
        a2=await add_seat(db, main, "A2", area="Quiet"),
        maintenance=await add_seat(db, main, "B1", status="MAINTENANCE"),
        closed=await add_seat(db, main, "B2", status="CLOSED"),
    )


def outcome(response: httpx.Response) -> tuple[int, str | None]:
    """Status and ``code`` (None for FastAPI's validation shape), for tables of cases."""
    body = response.json()
    assert isinstance(body["detail"], str if "code" in body else list), body
    return response.status_code, body.get("code")


async def count_reservations(db: asyncpg.Connection, user_id: int | None = None) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM reservations WHERE $1::bigint IS NULL OR user_id = $1", user_id
    )
    return count


# POST /reservations: the answer


async def test_booking_answers_every_contract_field_in_utc(
    api: httpx.AsyncClient, make_client: ClientFactory, db: asyncpg.Connection, library: Library
) -> None:
    # A token from /auth/login, minted on a real clock (PyJWT checks iat and exp on one).
    student = await registered_student(await make_client(), "S2000001")
    response = await api.post(
        "/reservations",
        json={
            "seat_id": library.a1,
            "start_time": "2026-12-01T11:00:00+01:00",
            "end_time": "2026-12-01T12:30:00+01:00",
        },
        headers=student.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= RESERVATION_FIELDS
    assert isinstance(body["id"], int)
    assert {field: body[field] for field in RESERVATION_FIELDS - {"id"}} == {
        "user_id": student.id,
        "seat_id": library.a1,
        "seat": {"id": library.a1, "branch": "Main", "area": "Quiet", "label": "A1"},
        "start_time": "2026-12-01T10:00:00Z",
        "end_time": "2026-12-01T11:30:00Z",
        "status": "CONFIRMED",
        "created_at": "2026-12-01T08:00:00Z",
        "checked_in_at": None,
        "cancelled_at": None,
        "cancel_reason": None,
        "check_in_opens_at": "2026-12-01T09:45:00Z",
        "check_in_deadline": "2026-12-01T10:15:00Z",
    }
    row = await db.fetchrow("SELECT * FROM reservations WHERE id = $1", body["id"])
    assert row is not None
    assert (row["user_id"], row["seat_id"], row["status"]) == (student.id, library.a1, "CONFIRMED")
    assert (row["start_time"], row["end_time"]) == (T10, at(11, 30))


async def test_booking_without_a_token_is_not_authenticated(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library
) -> None:
    response = await api.post("/reservations", json=booking(library.a1, T10, T11))
    assert_error(response, 401, "not_authenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await count_reservations(db) == 0


def _foreign_token(user_id: int) -> str:
    token, _ = encode_token(
        secret="another-secret-" + "y" * 40,
        user_id=user_id,
        student_id="S0000001",
        role=Role.STUDENT,
        now=utcnow(),
        ttl=HOUR,
    )
    return token


def _expired_token(user_id: int) -> str:
    token, _ = encode_token(
        secret=TEST_JWT_SECRET,
        user_id=user_id,
        student_id="S0000001",
        role=Role.STUDENT,
        now=utcnow() - 2 * DAY,
        ttl=HOUR,
    )
    return token


async def test_booking_with_a_bad_token_is_invalid_token(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    tokens = {
        "garbage": "not-a-jwt",
        "foreign_secret": _foreign_token(alice.id),
        "expired": _expired_token(alice.id),
    }
    outcomes = {}
    for kind, token in tokens.items():
        response = await api.post(
            "/reservations",
            json=booking(library.a1, T10, T11),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.headers["WWW-Authenticate"] == "Bearer"
        outcomes[kind] = outcome(response)
    assert outcomes == dict.fromkeys(tokens, (401, "invalid_token"))
    assert await count_reservations(db) == 0


# POST /reservations: input validation and booking rules


async def test_booking_with_a_time_without_offset_is_refused(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    for field in ("start_time", "end_time"):
        body = booking(library.a1, T10, T11)
        body[field] = body[field].removesuffix("Z")
        response = await api.post("/reservations", json=body, headers=alice.headers)
        assert_validation_error(response, "body", field)
    assert await count_reservations(db) == 0


async def test_booking_with_end_not_after_start_is_invalid_interval(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    assert_error(await reserve(api, alice, library.a1, T10, T10), 422, "invalid_interval")
    assert_error(await reserve(api, alice, library.a1, T11, T10), 422, "invalid_interval")
    assert await count_reservations(db) == 0


async def test_booking_starting_more_than_60_seconds_ago_is_invalid_interval(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    for ago in (61 * SECOND, DAY):
        response = await reserve(api, alice, library.a1, NOW - ago, NOW - ago + HOUR)
        assert_error(response, 422, "invalid_interval")
    assert await count_reservations(db) == 0


async def test_booking_starting_up_to_60_seconds_ago_is_accepted(
    api: httpx.AsyncClient, library: Library, alice: Student, bob: Student
) -> None:
    sixty_ago, fifty_nine_ago = NOW - 60 * SECOND, NOW - 59 * SECOND
    alices = await booked(api, alice, library.a1, sixty_ago, sixty_ago + HOUR)
    bobs = await booked(api, bob, library.a2, fifty_nine_ago, fifty_nine_ago + HOUR)
    assert (alices["start_time"], bobs["start_time"]) == (iso(sixty_ago), iso(fifty_nine_ago))


async def test_booking_of_exactly_max_reservation_hours_is_accepted(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    body = await booked(api, alice, library.a1, T10, T10 + 4 * HOUR)
    assert body["end_time"] == iso(T10 + 4 * HOUR)


async def test_booking_one_second_longer_than_max_reservation_hours_is_invalid_interval(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    response = await reserve(api, alice, library.a1, T10, T10 + 4 * HOUR + SECOND)
    assert_error(response, 422, "invalid_interval")


async def test_booking_starting_exactly_at_the_horizon_is_accepted(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    start = NOW + 14 * DAY
    body = await booked(api, alice, library.a1, start, start + HOUR)
    assert body["start_time"] == iso(start)


async def test_booking_starting_one_second_beyond_the_horizon_is_invalid_interval(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    start = NOW + 14 * DAY + SECOND
    assert_error(
        await reserve(api, alice, library.a1, start, start + HOUR), 422, "invalid_interval"
    )


async def test_booking_rules_follow_the_settings(
    make_client: ClientFactory, clock: FrozenClock, library: Library, alice: Student
) -> None:
    api = await make_client(clock=clock, MAX_RESERVATION_HOURS=1, BOOKING_HORIZON_DAYS=2)
    assert (await reserve(api, alice, library.a1, T10, T11)).status_code == 201
    too_long = await reserve(api, alice, library.a2, T12, T12 + HOUR + SECOND)
    assert_error(too_long, 422, "invalid_interval")
    too_far = NOW + 2 * DAY + SECOND
    assert_error(
        await reserve(api, alice, library.a2, too_far, too_far + HOUR), 422, "invalid_interval"
    )
    at_horizon = NOW + 2 * DAY
    assert (await reserve(api, alice, library.a2, at_horizon, at_horizon + HOUR)).status_code == 201


async def test_booking_with_a_malformed_seat_id_is_refused(
    api: httpx.AsyncClient, alice: Student
) -> None:
    for seat_id in (0, -1, 2**63, "abc", None, 1.5):
        body = {"seat_id": seat_id, "start_time": iso(T10), "end_time": iso(T11)}
        response = await api.post("/reservations", json=body, headers=alice.headers)
        assert_validation_error(response, "body", "seat_id")


async def test_booking_an_unknown_seat_is_not_found(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    assert_error(await reserve(api, alice, library.a1 + 1000), 404, "not_found")


async def test_booking_a_seat_that_is_not_active_is_seat_unavailable(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    assert_error(await reserve(api, alice, library.maintenance), 409, "seat_unavailable")
    assert_error(await reserve(api, alice, library.closed), 409, "seat_unavailable")
    assert await count_reservations(db) == 0


async def test_booking_a_seat_overlapping_by_one_second_is_seat_conflict(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student, bob: Student
) -> None:
    await booked(api, bob, library.a1, T10, T11)
    response = await reserve(api, alice, library.a1, T11 - SECOND, T12)
    assert_error(response, 409, "seat_conflict")
    assert await count_reservations(db, alice.id) == 0


async def test_booking_while_holding_another_seat_at_that_time_is_user_overlap(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    await booked(api, alice, library.a1, T10, T11)
    response = await reserve(api, alice, library.a2, at(10, 30), at(11, 30))
    assert_error(response, 409, "user_overlap")
    assert await count_reservations(db, alice.id) == 1


async def test_back_to_back_bookings_are_allowed_because_intervals_are_half_open(
    api: httpx.AsyncClient, library: Library, alice: Student, bob: Student
) -> None:
    await booked(api, alice, library.a1, T10, T11)
    await booked(api, alice, library.a1, T11, T12)  # same seat, same user: both constraints
    await booked(api, alice, library.a1, at(9), T10)
    await booked(api, bob, library.a1, T12, at(13))


@pytest.mark.parametrize("status", ["CANCELLED", "COMPLETED", "NO_SHOW"])
async def test_an_inactive_reservation_blocks_neither_the_seat_nor_the_user(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    status: str,
) -> None:
    await add_reservation(db, user_id=bob.id, seat_id=library.a1, start=T10, end=T11, status=status)
    await add_reservation(
        db, user_id=alice.id, seat_id=library.a2, start=T10, end=T11, status=status
    )
    body = await booked(api, alice, library.a1, T10, T11)
    assert body["status"] == "CONFIRMED"


@pytest.mark.parametrize("status", ["HELD", "CONFIRMED", "CHECKED_IN"])
async def test_an_active_reservation_blocks_its_seat_and_its_user(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
    bob: Student,
    status: str,
) -> None:
    await add_reservation(
        db, user_id=bob.id, seat_id=library.a1, start=at(10, 30), end=T12, status=status
    )
    assert_error(await reserve(api, alice, library.a1, T10, T11), 409, "seat_conflict")
    assert_error(await reserve(api, bob, library.a2, T10, T11), 409, "user_overlap")
    assert await count_reservations(db) == 1


# Fair use


async def add_no_shows(
    db: asyncpg.Connection, student: Student, seat_id: int, starts: list[datetime]
) -> None:
    for start in starts:
        await add_reservation(
            db, user_id=student.id, seat_id=seat_id, start=start, end=start + HOUR, status="NO_SHOW"
        )


async def test_three_recent_no_shows_suspend_booking_for_seven_days_from_the_latest(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    await add_no_shows(db, alice, library.a2, [NOW - 10 * DAY, NOW - 3 * DAY, NOW - DAY])
    body = assert_error(await reserve(api, alice, library.a1), 403, "suspended")
    assert body["suspended_until"] == iso(NOW - DAY + 7 * DAY)
    assert await count_reservations(db, alice.id) == 3


async def test_two_recent_no_shows_do_not_suspend(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    await add_no_shows(db, alice, library.a2, [NOW - 3 * DAY, NOW - DAY])
    await booked(api, alice, library.a1)


async def test_a_no_show_outside_the_window_does_not_count(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    await add_no_shows(db, alice, library.a2, [NOW - 40 * DAY, NOW - 3 * DAY, NOW - DAY])
    await booked(api, alice, library.a1)


async def test_a_suspension_ends_exactly_seven_days_after_the_latest_no_show(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
) -> None:
    latest = NOW - 2 * DAY
    await add_no_shows(db, alice, library.a2, [latest - 2 * DAY, latest - DAY, latest])
    clock.set(latest + 7 * DAY - SECOND)
    refused = assert_error(
        await reserve(api, alice, library.a1, clock.now() + HOUR, clock.now() + 2 * HOUR),
        403,
        "suspended",
    )
    assert refused["suspended_until"] == iso(latest + 7 * DAY)
    clock.set(latest + 7 * DAY)
    await booked(api, alice, library.a1, clock.now() + HOUR, clock.now() + 2 * HOUR)


async def test_the_no_show_limit_follows_the_settings(
    make_client: ClientFactory,
    clock: FrozenClock,
    db: asyncpg.Connection,
    library: Library,
    alice: Student,
) -> None:
    api = await make_client(clock=clock, NO_SHOW_LIMIT=1, SUSPENSION_DAYS=2)
    await add_no_shows(db, alice, library.a2, [NOW - DAY])
    body = assert_error(await reserve(api, alice, library.a1), 403, "suspended")
    assert body["suspended_until"] == iso(NOW + DAY)


# Idempotency-Key


async def test_a_repeated_key_and_body_replays_the_same_reservation(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    first = await reserve(api, alice, library.a1, key="booking-1")
    second = await reserve(api, alice, library.a1, key="booking-1")
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert await count_reservations(db) == 1


async def test_the_same_instants_written_with_another_offset_are_the_same_body(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    first = await reserve(api, alice, library.a1, key="booking-1")
    second = await api.post(
        "/reservations",
        json={
            "seat_id": library.a1,
            "start_time": "2026-12-01T11:00:00+01:00",
            "end_time": "2026-12-01T06:00:00-05:00",
        },
        headers={**alice.headers, "Idempotency-Key": "booking-1"},
    )
    assert second.status_code == 201, second.text
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert await count_reservations(db) == 1


@pytest.mark.parametrize("change", ["seat", "end"])
async def test_a_repeated_key_with_another_body_is_idempotency_mismatch(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student, change: str
) -> None:
    assert (await reserve(api, alice, library.a1, key="booking-1")).status_code == 201
    seat = library.a2 if change == "seat" else library.a1
    end = T11 + SECOND if change == "end" else T11
    response = await reserve(api, alice, seat, T10, end, key="booking-1")
    assert_error(response, 422, "idempotency_mismatch")
    assert await count_reservations(db) == 1


async def test_a_key_first_answered_with_a_conflict_replays_the_conflict(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student, bob: Student
) -> None:
    bobs = await booked(api, bob, library.a1)
    first = await reserve(api, alice, library.a1, key="booking-1")
    assert_error(first, 409, "seat_conflict")
    await db.execute("UPDATE reservations SET status = 'CANCELLED' WHERE id = $1", bobs["id"])
    replay = await reserve(api, alice, library.a1, key="booking-1")
    assert replay.status_code == 409  # the stored answer, although the seat is free now
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert await count_reservations(db, alice.id) == 0
    assert (await reserve(api, alice, library.a1, key="booking-2")).status_code == 201


async def test_idempotency_keys_are_scoped_to_the_user(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student, bob: Student
) -> None:
    alices = await reserve(api, alice, library.a1, key="same-key")
    bobs = await reserve(api, bob, library.a2, key="same-key")
    assert (alices.status_code, bobs.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in bobs.headers
    assert bobs.json()["user_id"] == bob.id and bobs.json()["id"] != alices.json()["id"]
    assert await count_reservations(db) == 2


async def test_a_key_is_new_again_24_hours_after_its_first_use(
    api: httpx.AsyncClient, clock: FrozenClock, library: Library, alice: Student
) -> None:
    first = await reserve(api, alice, library.a1, at(10, day=3), at(11, day=3), key="k")
    assert first.status_code == 201
    clock.advance(24 * HOUR - SECOND)
    still_kept = await reserve(api, alice, library.a2, at(10, day=4), at(11, day=4), key="k")
    assert_error(still_kept, 422, "idempotency_mismatch")
    clock.advance(SECOND)
    renewed = await reserve(api, alice, library.a2, at(10, day=4), at(11, day=4), key="k")
    assert renewed.status_code == 201, renewed.text
    assert "Idempotent-Replayed" not in renewed.headers
    assert renewed.json()["id"] != first.json()["id"]


async def test_a_malformed_idempotency_key_is_refused(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    keys: list[str | bytes] = [
        "",
        "k" * 256,
        "with space",
        "tab\tinside",
        "caf\u00e9".encode(),
        "\u65e5\u672c".encode(),
    ]
    for key in keys:
        response = await reserve(api, alice, library.a1, key=key)
        assert_validation_error(response, "header", "Idempotency-Key")
    assert await count_reservations(db) == 0


async def test_a_255_character_idempotency_key_is_accepted(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    first = await reserve(api, alice, library.a1, key="k" * 255)
    second = await reserve(api, alice, library.a1, key="k" * 255)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["Idempotent-Replayed"] == "true"


async def test_a_request_refused_by_the_booking_rules_does_not_use_up_its_key(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    refused = await reserve(api, alice, library.a1, T11, T10, key="booking-1")
    assert_error(refused, 422, "invalid_interval")
    corrected = await reserve(api, alice, library.a1, T10, T11, key="booking-1")
    assert corrected.status_code == 201, corrected.text
    assert "Idempotent-Replayed" not in corrected.headers


# GET /reservations


@pytest.fixture
async def alices_reservations(
    db: asyncpg.Connection, library: Library, alice: Student, bob: Student
) -> dict[str, int]:
    """Alice's bookings around NOW, by name; Bob has one of his own at the same time."""

    async def add(start: datetime, end: datetime, status: str, seat: int = library.a1) -> int:
        return await add_reservation(
            db, user_id=alice.id, seat_id=seat, start=start, end=end, status=status
        )

    edge_out_end = NOW - 30 * DAY - SECOND
    edge_in_end = NOW - 30 * DAY + SECOND
    rows = {
        "future_later": await add(at(9, day=2), at(10, day=2), "CONFIRMED"),
        "future": await add(T10, T11, "CONFIRMED"),
        "ongoing": await add(NOW - 30 * MINUTE, NOW + 30 * MINUTE, "CHECKED_IN"),
        "recent": await add(NOW - 3 * HOUR, NOW - 2 * HOUR, "COMPLETED"),
        "cancelled": await add(NOW - 2 * DAY, NOW - 2 * DAY + HOUR, "CANCELLED"),
        "edge_in": await add(edge_in_end - HOUR, edge_in_end, "COMPLETED"),
        "edge_out": await add(edge_out_end - HOUR, edge_out_end, "NO_SHOW"),
    }
    await add_reservation(db, user_id=bob.id, seat_id=library.a2, start=T10, end=T11)
    return rows


def listed(response: httpx.Response, names: dict[str, int]) -> list[str]:
    assert response.status_code == 200, response.text
    by_id = {reservation_id: name for name, reservation_id in names.items()}
    return [
        by_id.get(item["id"], f"not alice's: {item['id']}") for item in response.json()["items"]
    ]


async def test_list_defaults_to_upcoming_not_yet_ended_soonest_first(
    api: httpx.AsyncClient, alice: Student, alices_reservations: dict[str, int]
) -> None:
    response = await api.get("/reservations", headers=alice.headers)
    assert listed(response, alices_reservations) == ["ongoing", "future", "future_later"]
    assert response.json()["total"] == 3
    assert set(response.json()["items"][0]) >= RESERVATION_FIELDS
    explicit = await api.get("/reservations?scope=upcoming", headers=alice.headers)
    assert explicit.json() == response.json()


async def test_list_history_is_the_last_30_days_latest_first(
    api: httpx.AsyncClient, alice: Student, alices_reservations: dict[str, int]
) -> None:
    response = await api.get("/reservations?scope=history", headers=alice.headers)
    assert listed(response, alices_reservations) == ["recent", "cancelled", "edge_in"]
    assert response.json()["total"] == 3


async def test_list_all_is_every_reservation_latest_first(
    api: httpx.AsyncClient, alice: Student, alices_reservations: dict[str, int]
) -> None:
    response = await api.get("/reservations?scope=all", headers=alice.headers)
    assert listed(response, alices_reservations) == [
        "future_later",
        "future",
        "ongoing",
        "recent",
        "cancelled",
        "edge_in",
        "edge_out",
    ]
    assert response.json()["total"] == 7


async def test_a_reservation_ending_now_is_history_not_upcoming(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    ended = await add_reservation(
        db, user_id=alice.id, seat_id=library.a1, start=NOW - HOUR, end=NOW, status="COMPLETED"
    )
    upcoming = await api.get("/reservations", headers=alice.headers)
    history = await api.get("/reservations?scope=history", headers=alice.headers)
    assert upcoming.json() == {"items": [], "total": 0}
    assert [item["id"] for item in history.json()["items"]] == [ended]


async def test_list_filters_by_status(
    api: httpx.AsyncClient, alice: Student, alices_reservations: dict[str, int]
) -> None:
    expected = {
        "scope=all&status=CANCELLED": ["cancelled"],
        "scope=all&status=COMPLETED": ["recent", "edge_in"],
        "status=CHECKED_IN": ["ongoing"],
        "status=CONFIRMED": ["future", "future_later"],
        "scope=history&status=COMPLETED": ["recent", "edge_in"],
        "scope=history&status=NO_SHOW": [],
    }
    found = {}
    for query in expected:
        response = await api.get(f"/reservations?{query}", headers=alice.headers)
        found[query] = listed(response, alices_reservations)
        assert response.json()["total"] == len(found[query])
    assert found == expected


async def test_list_pages_with_limit_and_offset_and_keeps_the_total(
    api: httpx.AsyncClient, alice: Student, alices_reservations: dict[str, int]
) -> None:
    pages = [
        await api.get(f"/reservations?scope=all&limit=3&offset={offset}", headers=alice.headers)
        for offset in (0, 3, 6, 50)
    ]
    assert [listed(page, alices_reservations) for page in pages] == [
        ["future_later", "future", "ongoing"],
        ["recent", "cancelled", "edge_in"],
        ["edge_out"],
        [],
    ]
    assert [page.json()["total"] for page in pages] == [7, 7, 7, 7]


async def test_list_shows_only_the_callers_reservations(
    api: httpx.AsyncClient, bob: Student, alices_reservations: dict[str, int]
) -> None:
    response = await api.get("/reservations?scope=all", headers=bob.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1
    assert [item["user_id"] for item in body["items"]] == [bob.id]
    assert not set(alices_reservations.values()) & {item["id"] for item in body["items"]}


async def test_list_with_a_bad_query_is_refused(api: httpx.AsyncClient, alice: Student) -> None:
    for query, field in [
        ("scope=past", "scope"),
        ("status=DONE", "status"),
        ("status=confirmed", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("offset=-1", "offset"),
    ]:
        response = await api.get(f"/reservations?{query}", headers=alice.headers)
        assert_validation_error(response, "query", field)


# GET /reservations/{id}


async def test_get_own_reservation(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    created = await booked(api, alice, library.a1)
    response = await api.get(f"/reservations/{created['id']}", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == created


async def test_get_someone_elses_reservation_looks_like_a_missing_one(
    api: httpx.AsyncClient, library: Library, alice: Student, bob: Student
) -> None:
    created = await booked(api, alice, library.a1)
    others = await api.get(f"/reservations/{created['id']}", headers=bob.headers)
    missing = await api.get(f"/reservations/{created['id'] + 1000}", headers=bob.headers)
    assert assert_error(others, 404, "not_found") == assert_error(missing, 404, "not_found")


ROUTES_BY_ID = [
    ("GET", "/reservations/{}"),
    ("POST", "/reservations/{}/checkin"),
    ("POST", "/reservations/{}/checkout"),
    ("DELETE", "/reservations/{}"),
    ("GET", "/reservations/{}/ics"),
]


async def test_a_malformed_reservation_id_is_refused(
    api: httpx.AsyncClient, alice: Student
) -> None:
    for method, path in ROUTES_BY_ID:
        for bad_id in ("0", "-1", str(2**63), "abc"):
            response = await api.request(method, path.format(bad_id), headers=alice.headers)
            assert_validation_error(response, "path", "reservation_id")


async def test_an_unknown_reservation_id_is_not_found(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    await booked(api, alice, library.a1)  # ids exist, just not this one
    outcomes = {
        f"{method} {path}": outcome(
            await api.request(method, path.format(2**63 - 1), headers=alice.headers)
        )
        for method, path in ROUTES_BY_ID
    }
    assert outcomes == dict.fromkeys(outcomes, (404, "not_found"))


async def test_every_reservation_route_needs_a_token(api: httpx.AsyncClient) -> None:
    routes = [("POST", "/reservations"), ("GET", "/reservations"), ("GET", "/reservations/user/1")]
    outcomes = {
        f"{method} {path}": outcome(
            await api.request(method, path.format(1), json=booking(1, T10, T11))
        )
        for method, path in routes + ROUTES_BY_ID
    }
    assert outcomes == dict.fromkeys(outcomes, (401, "not_authenticated"))


# GET /reservations/user/{user_id} (seed-compatible alias)


async def test_user_list_alias_answers_ones_own_list(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    created = await booked(api, alice, library.a1)
    response = await api.get(f"/reservations/user/{alice.id}", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == {"items": [created], "total": 1}


async def test_user_list_alias_hides_another_students_list(
    api: httpx.AsyncClient, library: Library, alice: Student, bob: Student
) -> None:
    await booked(api, bob, library.a1)
    response = await api.get(f"/reservations/user/{bob.id}", headers=alice.headers)
    assert_error(response, 404, "not_found")


async def test_user_list_alias_lets_an_admin_read_anyones_list(
    api: httpx.AsyncClient, library: Library, bob: Student, admin: Student
) -> None:
    bobs = await booked(api, bob, library.a1)
    response = await api.get(f"/reservations/user/{bob.id}?scope=all", headers=admin.headers)
    assert response.status_code == 200
    assert response.json() == {"items": [bobs], "total": 1}


async def test_user_list_alias_for_an_unknown_user_is_not_found_even_for_an_admin(
    api: httpx.AsyncClient, admin: Student
) -> None:
    response = await api.get(f"/reservations/user/{admin.id + 1000}", headers=admin.headers)
    assert_error(response, 404, "not_found")


async def test_user_list_alias_with_a_malformed_user_id_is_refused(
    api: httpx.AsyncClient, admin: Student
) -> None:
    response = await api.get("/reservations/user/0", headers=admin.headers)
    assert_validation_error(response, "path", "user_id")


# POST /reservations/{id}/checkin


@pytest.fixture
async def alices_booking(db: asyncpg.Connection, library: Library, alice: Student) -> int:
    """Alice's CONFIRMED reservation of A1 for [10:00, 11:00), made the day before."""
    return await add_reservation(db, user_id=alice.id, seat_id=library.a1, start=T10, end=T11)


@pytest.mark.parametrize(
    "offset",
    [-15 * MINUTE, 15 * MINUTE],
    ids=["at-opening", "at-deadline"],
)
async def test_checkin_inside_the_window_checks_in(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    alice: Student,
    alices_booking: int,
    offset: timedelta,
) -> None:
    clock.set(T10 + offset)
    response = await api.post(f"/reservations/{alices_booking}/checkin", headers=alice.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "CHECKED_IN"
    assert body["checked_in_at"] == iso(T10 + offset)
    assert (body["start_time"], body["end_time"]) == (iso(T10), iso(T11))
    assert await reservation_status(db, alices_booking) == "CHECKED_IN"


@pytest.mark.parametrize(
    "offset",
    [-15 * MINUTE - SECOND, 15 * MINUTE + SECOND],
    ids=["second-before-opening", "second-after-deadline"],
)
async def test_checkin_outside_the_window_is_checkin_window(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    alice: Student,
    alices_booking: int,
    offset: timedelta,
) -> None:
    clock.set(T10 + offset)
    response = await api.post(f"/reservations/{alices_booking}/checkin", headers=alice.headers)
    body = assert_error(response, 409, "checkin_window")
    assert body["check_in_opens_at"] == iso(T10 - 15 * MINUTE)
    assert body["check_in_deadline"] == iso(T10 + 15 * MINUTE)
    assert await reservation_status(db, alices_booking) == "CONFIRMED"


async def test_checkin_window_follows_the_settings(
    make_client: ClientFactory,
    clock: FrozenClock,
    library: Library,
    alice: Student,
) -> None:
    api = await make_client(clock=clock, CHECKIN_EARLY_MINUTES=5, GRACE_MINUTES=0.05)
    created = await booked(api, alice, library.a1)
    assert created["check_in_opens_at"] == iso(T10 - 5 * MINUTE)
    assert created["check_in_deadline"] == iso(T10 + 3 * SECOND)
    path = f"/reservations/{created['id']}/checkin"
    clock.set(T10 - 5 * MINUTE - SECOND)
    assert_error(await api.post(path, headers=alice.headers), 409, "checkin_window")
    clock.set(T10 + 4 * SECOND)
    assert_error(await api.post(path, headers=alice.headers), 409, "checkin_window")
    clock.set(T10 + 3 * SECOND)
    assert (await api.post(path, headers=alice.headers)).status_code == 200


async def test_checking_in_twice_is_invalid_state(
    api: httpx.AsyncClient, clock: FrozenClock, alice: Student, alices_booking: int
) -> None:
    clock.set(T10)
    path = f"/reservations/{alices_booking}/checkin"
    first = await api.post(path, headers=alice.headers)
    assert first.status_code == 200
    clock.advance(MINUTE)
    assert_error(await api.post(path, headers=alice.headers), 409, "invalid_state")
    again = await api.get(f"/reservations/{alices_booking}", headers=alice.headers)
    assert again.json()["checked_in_at"] == iso(T10)  # the first check-in stands


async def test_checkin_of_a_reservation_that_is_not_confirmed_is_invalid_state(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
) -> None:
    statuses = ["CANCELLED", "NO_SHOW", "COMPLETED", "HELD"]  # at most one active: no overlap
    rows = {
        status: await add_reservation(
            db, user_id=alice.id, seat_id=library.a1, start=T10, end=T11, status=status
        )
        for status in statuses
    }
    clock.set(T10)
    outcomes = {
        status: outcome(
            await api.post(f"/reservations/{reservation}/checkin", headers=alice.headers)
        )
        for status, reservation in rows.items()
    }
    assert outcomes == dict.fromkeys(statuses, (409, "invalid_state"))
    assert [await reservation_status(db, rows[status]) for status in statuses] == statuses


async def test_checkin_of_a_no_show_after_the_deadline_is_invalid_state_not_checkin_window(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
) -> None:
    reservation = await add_reservation(
        db, user_id=alice.id, seat_id=library.a1, start=T10, end=T11, status="NO_SHOW"
    )
    clock.set(T10 + 20 * MINUTE)
    response = await api.post(f"/reservations/{reservation}/checkin", headers=alice.headers)
    assert_error(response, 409, "invalid_state")


async def test_checkin_of_someone_elses_reservation_is_not_found(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    bob: Student,
    alices_booking: int,
) -> None:
    clock.set(T10)
    response = await api.post(f"/reservations/{alices_booking}/checkin", headers=bob.headers)
    assert_error(response, 404, "not_found")
    assert await reservation_status(db, alices_booking) == "CONFIRMED"


# POST /reservations/{id}/checkout


async def test_checkout_completes_cuts_the_end_to_now_and_frees_the_rest(
    api: httpx.AsyncClient, clock: FrozenClock, library: Library, alice: Student, bob: Student
) -> None:
    created = await booked(api, alice, library.a1, T10, T12)
    clock.set(T10)
    checked_in = await api.post(f"/reservations/{created['id']}/checkin", headers=alice.headers)
    assert checked_in.status_code == 200
    clock.set(at(10, 20))
    response = await api.post(f"/reservations/{created['id']}/checkout", headers=alice.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "COMPLETED"
    assert (body["start_time"], body["end_time"]) == (iso(T10), iso(at(10, 20)))
    assert body["checked_in_at"] == iso(T10)
    # The rest of the slot goes back to everyone: the seat for Bob, the time for Alice.
    await booked(api, bob, library.a1, at(10, 20), T12)
    await booked(api, alice, library.a2, at(10, 20), T11)


async def test_checkout_after_the_end_keeps_the_booked_end(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
) -> None:
    reservation = await add_reservation(
        db, user_id=alice.id, seat_id=library.a1, start=T10, end=T11, status="CHECKED_IN"
    )
    clock.set(T11 + 5 * MINUTE)
    response = await api.post(f"/reservations/{reservation}/checkout", headers=alice.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["end_time"]) == ("COMPLETED", iso(T11))


@pytest.mark.parametrize("offset", [-MINUTE, timedelta(0)], ids=["before-start", "at-start"])
async def test_checkout_before_the_start_has_passed_is_invalid_state(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    alice: Student,
    alices_booking: int,
    offset: timedelta,
) -> None:
    clock.set(T10 - 10 * MINUTE)
    checkin = await api.post(f"/reservations/{alices_booking}/checkin", headers=alice.headers)
    assert checkin.status_code == 200
    clock.set(T10 + offset)
    response = await api.post(f"/reservations/{alices_booking}/checkout", headers=alice.headers)
    assert_error(response, 409, "invalid_state")
    assert await reservation_status(db, alices_booking) == "CHECKED_IN"


async def test_checkout_of_a_reservation_that_is_not_checked_in_is_invalid_state(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
) -> None:
    # All have started by 10:05; the two active ones must not overlap each other.
    starts = {
        "CONFIRMED": (T10, T11),
        "HELD": (at(9), at(9, 50)),
        "COMPLETED": (T10, T11),
        "CANCELLED": (T10, T11),
        "NO_SHOW": (T10, T11),
    }
    rows = {
        status: await add_reservation(
            db, user_id=alice.id, seat_id=library.a1, start=start, end=end, status=status
        )
        for status, (start, end) in starts.items()
    }
    clock.set(T10 + 5 * MINUTE)
    outcomes = {
        status: outcome(
            await api.post(f"/reservations/{reservation}/checkout", headers=alice.headers)
        )
        for status, reservation in rows.items()
    }
    assert outcomes == dict.fromkeys(starts, (409, "invalid_state"))
    assert [await reservation_status(db, rows[status]) for status in starts] == list(starts)


async def test_checkout_of_someone_elses_reservation_is_not_found(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    library: Library,
    alice: Student,
    bob: Student,
) -> None:
    reservation = await add_reservation(
        db, user_id=alice.id, seat_id=library.a1, start=T10, end=T11, status="CHECKED_IN"
    )
    clock.set(T10 + 5 * MINUTE)
    response = await api.post(f"/reservations/{reservation}/checkout", headers=bob.headers)
    assert_error(response, 404, "not_found")
    assert await reservation_status(db, reservation) == "CHECKED_IN"


# DELETE /reservations/{id}


async def test_cancelling_a_confirmed_reservation_frees_the_seat(
    api: httpx.AsyncClient, library: Library, alice: Student, bob: Student
) -> None:
    created = await booked(api, alice, library.a1)
    response = await api.delete(f"/reservations/{created['id']}", headers=alice.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "CANCELLED"
    assert body["cancelled_at"] == iso(NOW)
    assert isinstance(body["cancel_reason"], str) and body["cancel_reason"]
    assert {
        k: v for k, v in body.items() if k not in ("status", "cancelled_at", "cancel_reason")
    } == {k: v for k, v in created.items() if k not in ("status", "cancelled_at", "cancel_reason")}
    await booked(api, bob, library.a1)


async def test_cancelling_a_held_offer_is_allowed(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    held = await add_reservation(
        db,
        user_id=alice.id,
        seat_id=library.a1,
        start=T10,
        end=T11,
        status="HELD",
        offer_expires_at=NOW + 10 * MINUTE,
    )
    response = await api.delete(f"/reservations/{held}", headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CANCELLED"
    assert await reservation_status(db, held) == "CANCELLED"


async def test_cancelling_twice_is_invalid_state(
    api: httpx.AsyncClient, db: asyncpg.Connection, alice: Student, alices_booking: int
) -> None:
    first = await api.delete(f"/reservations/{alices_booking}", headers=alice.headers)
    assert first.status_code == 200
    second = await api.delete(f"/reservations/{alices_booking}", headers=alice.headers)
    assert_error(second, 409, "invalid_state")


async def test_cancelling_a_reservation_that_is_neither_held_nor_confirmed_is_invalid_state(
    api: httpx.AsyncClient, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    statuses = ["CHECKED_IN", "COMPLETED", "NO_SHOW"]
    rows = {
        status: await add_reservation(
            db, user_id=alice.id, seat_id=library.a1, start=T10, end=T11, status=status
        )
        for status in statuses
    }
    outcomes = {
        status: outcome(await api.delete(f"/reservations/{reservation}", headers=alice.headers))
        for status, reservation in rows.items()
    }
    assert outcomes == dict.fromkeys(statuses, (409, "invalid_state"))
    assert [await reservation_status(db, rows[status]) for status in statuses] == statuses


async def test_cancelling_a_confirmed_reservation_at_its_checkin_deadline_is_allowed(
    api: httpx.AsyncClient, clock: FrozenClock, alice: Student, alices_booking: int
) -> None:
    clock.set(T10 + 15 * MINUTE)
    response = await api.delete(f"/reservations/{alices_booking}", headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["cancelled_at"] == iso(T10 + 15 * MINUTE)


async def test_cancelling_a_confirmed_reservation_after_its_checkin_deadline_is_invalid_state(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    clock: FrozenClock,
    alice: Student,
    alices_booking: int,
) -> None:
    clock.set(T10 + 15 * MINUTE + SECOND)
    response = await api.delete(f"/reservations/{alices_booking}", headers=alice.headers)
    assert_error(response, 409, "invalid_state")
    assert await reservation_status(db, alices_booking) == "CONFIRMED"


async def test_cancelling_someone_elses_reservation_is_not_found(
    api: httpx.AsyncClient, db: asyncpg.Connection, bob: Student, alices_booking: int
) -> None:
    response = await api.delete(f"/reservations/{alices_booking}", headers=bob.headers)
    assert_error(response, 404, "not_found")
    assert await reservation_status(db, alices_booking) == "CONFIRMED"


# GET /reservations/{id}/ics


def only_event(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    events = Calendar.from_ical(response.content).walk("VEVENT")
    assert len(events) == 1
    return events[0]


async def test_ics_is_a_calendar_event_for_the_reservation(
    api: httpx.AsyncClient, library: Library, alice: Student
) -> None:
    created = await booked(api, alice, library.a1)
    other = await booked(api, alice, library.a2, T12, at(13))
    event = only_event(await api.get(f"/reservations/{created['id']}/ics", headers=alice.headers))
    assert event.decoded("DTSTART") == T10
    assert event.decoded("DTEND") == T11
    assert "A1" in str(event["SUMMARY"]) and "Main" in str(event["SUMMARY"])
    assert "A1" in str(event["LOCATION"]) and "Main" in str(event["LOCATION"])
    cancelled = await api.delete(f"/reservations/{created['id']}", headers=alice.headers)
    assert cancelled.status_code == 200
    again = only_event(await api.get(f"/reservations/{created['id']}/ics", headers=alice.headers))
    other_event = only_event(
        await api.get(f"/reservations/{other['id']}/ics", headers=alice.headers)
    )
    assert str(again["UID"]) == str(event["UID"])  # re-importing updates the same event
    assert str(other_event["UID"]) != str(event["UID"])


async def test_ics_of_someone_elses_reservation_is_not_found(
    api: httpx.AsyncClient, bob: Student, alices_booking: int
) -> None:
    response = await api.get(f"/reservations/{alices_booking}/ics", headers=bob.headers)
    assert_error(response, 404, "not_found")
