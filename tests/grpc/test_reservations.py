"""ReservationService over gRPC: the twins of /reservations on a frozen clock (Dec 1,
08:00 UTC; bookings 10:00-11:00), sharing the HTTP side's rules and Idempotency-Keys."""

from dataclasses import dataclass
from datetime import datetime

import asyncpg
import grpc
import pytest

from app.grpc.convert import timestamp
from app.grpc.generated import dlsms_pb2 as pb
from tests.factories import (
    T10,
    T11,
    T12,
    FrozenClock,
    Student,
    add_branch,
    add_seat,
    at,
    booked,
    reserve,
)
from tests.grpc.conftest import GrpcApp, GrpcFactory, auth, refused

NOW = at(8)
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@dataclass(frozen=True)
class Library:
    a1: int
    a2: int
    broken: int


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def app(make_grpc: GrpcFactory, clock: FrozenClock) -> GrpcApp:
    return await make_grpc(clock=clock)


@pytest.fixture
async def library(db: asyncpg.Connection) -> Library:
    main = await add_branch(db, "Main")
    return Library(
        a1=await add_seat(db, main, "A1"),
        a2=await add_seat(db, main, "A2"),
        broken=await add_seat(db, main, "B1", status="MAINTENANCE"),
    )


def booking(
    seat_id: int, start: datetime = T10, end: datetime = T11, key: str | None = None
) -> pb.CreateReservationRequest:
    request = pb.CreateReservationRequest(
        seat_id=seat_id, start_time=timestamp(start), end_time=timestamp(end)
    )
    if key is not None:
        request.idempotency_key = key
    return request


def utc(stamp: object) -> datetime:
    from google.protobuf.timestamp_pb2 import Timestamp

    assert isinstance(stamp, Timestamp)
    return stamp.ToDatetime().replace(tzinfo=T10.tzinfo)


async def test_create_answers_the_reservation_like_http(
    app: GrpcApp, library: Library, alice: Student
) -> None:
    made = await app.reservations.CreateReservation(booking(library.a1), metadata=auth(alice))
    assert (made.user_id, made.seat_id, made.status) == (alice.id, library.a1, "CONFIRMED")
    assert (made.seat.branch, made.seat.label) == ("Main", "A1")
    assert (utc(made.start_time), utc(made.end_time)) == (T10, T11)
    assert utc(made.check_in_opens_at) == at(9, 45)
    assert utc(made.check_in_deadline) == at(10, 15)
    assert not made.HasField("cancelled_at") and not made.HasField("offer_expires_at")
    http = (await app.http.get(f"/reservations/{made.id}", headers=alice.headers)).json()
    assert http["status"] == "CONFIRMED" and http["seat_id"] == library.a1


async def test_get_and_list_reservations(
    app: GrpcApp, library: Library, alice: Student, bob: Student, admin: Student
) -> None:
    mine = await booked(app.http, alice, library.a1)
    got = await app.reservations.GetReservation(
        pb.GetReservationRequest(reservation_id=mine["id"]), metadata=auth(alice)
    )
    assert got.id == mine["id"]
    listed = await app.reservations.GetUserReservations(
        pb.GetUserReservationsRequest(), metadata=auth(alice)
    )
    assert ([r.id for r in listed.items], listed.total) == ([mine["id"]], 1)
    history = await app.reservations.GetUserReservations(
        pb.GetUserReservationsRequest(scope="history"), metadata=auth(alice)
    )
    assert history.total == 0
    # Someone else's reservation looks missing; another user's list too, unless admin.
    await refused(
        app.reservations.GetReservation(
            pb.GetReservationRequest(reservation_id=mine["id"]), metadata=auth(bob)
        ),
        grpc.StatusCode.NOT_FOUND,
        "not_found",
    )
    of_alice = pb.GetUserReservationsRequest(user_id=alice.id)
    await refused(
        app.reservations.GetUserReservations(of_alice, metadata=auth(bob)),
        grpc.StatusCode.NOT_FOUND,
        "not_found",
    )
    as_admin = await app.reservations.GetUserReservations(of_alice, metadata=auth(admin))
    assert [r.id for r in as_admin.items] == [mine["id"]]
    bad_scope = pb.GetUserReservationsRequest(scope="someday")
    await refused(
        app.reservations.GetUserReservations(bad_scope, metadata=auth(alice)),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    )


async def test_booking_refusals_carry_their_codes(
    app: GrpcApp, library: Library, alice: Student, bob: Student
) -> None:
    await booked(app.http, alice, library.a1)
    create = app.reservations.CreateReservation
    await refused(
        create(booking(library.a1), metadata=auth(bob)),
        grpc.StatusCode.ALREADY_EXISTS,
        "seat_conflict",
    )
    await refused(
        create(booking(library.a2, at(10, 30), T12), metadata=auth(alice)),
        grpc.StatusCode.ALREADY_EXISTS,
        "user_overlap",
    )
    await refused(
        create(booking(library.broken), metadata=auth(bob)),
        FAILED_PRECONDITION,
        "seat_unavailable",
    )
    await refused(
        create(booking(999999), metadata=auth(bob)), grpc.StatusCode.NOT_FOUND, "not_found"
    )
    await refused(
        create(booking(library.a2, T11, T10), metadata=auth(bob)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_interval",
    )
    no_times = pb.CreateReservationRequest(seat_id=library.a2)
    await refused(create(no_times, metadata=auth(bob)), grpc.StatusCode.INVALID_ARGUMENT, None)
    await refused(create(booking(library.a2)), grpc.StatusCode.UNAUTHENTICATED, "not_authenticated")


async def test_check_in_check_out_and_cancel_follow_the_clock_and_state(
    app: GrpcApp, clock: FrozenClock, library: Library, alice: Student
) -> None:
    first = await booked(app.http, alice, library.a1)
    second = await booked(app.http, alice, library.a2, at(13), at(14))
    rid = pb.CheckInRequest(reservation_id=first["id"])
    await refused(
        app.reservations.CheckIn(rid, metadata=auth(alice)), FAILED_PRECONDITION, "checkin_window"
    )
    clock.set(at(10, 5))
    checked_in = await app.reservations.CheckIn(rid, metadata=auth(alice))
    assert checked_in.status == "CHECKED_IN" and checked_in.HasField("checked_in_at")
    await refused(
        app.reservations.CheckIn(rid, metadata=auth(alice)), FAILED_PRECONDITION, "invalid_state"
    )
    clock.set(at(10, 30))
    out = await app.reservations.CheckOut(
        pb.CheckOutRequest(reservation_id=first["id"]), metadata=auth(alice)
    )
    assert (out.status, utc(out.end_time)) == ("COMPLETED", at(10, 30))

    cancel = pb.CancelReservationRequest(reservation_id=second["id"])
    cancelled = await app.reservations.CancelReservation(cancel, metadata=auth(alice))
    assert cancelled.status == "CANCELLED" and cancelled.cancel_reason
    await refused(
        app.reservations.CancelReservation(cancel, metadata=auth(alice)),
        FAILED_PRECONDITION,
        "invalid_state",
    )
    await refused(
        app.reservations.CancelReservation(
            pb.CancelReservationRequest(reservation_id=0), metadata=auth(alice)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    )


async def test_extend_moves_the_end_and_refuses_taken_time(
    app: GrpcApp, library: Library, alice: Student, bob: Student
) -> None:
    mine = await booked(app.http, alice, library.a1)
    extended = await app.reservations.ExtendReservation(
        pb.ExtendReservationRequest(reservation_id=mine["id"], end_time=timestamp(at(11, 30))),
        metadata=auth(alice),
    )
    assert utc(extended.end_time) == at(11, 30)
    await booked(app.http, bob, library.a1, T12, at(13))
    await refused(
        app.reservations.ExtendReservation(
            pb.ExtendReservationRequest(reservation_id=mine["id"], end_time=timestamp(at(12, 30))),
            metadata=auth(alice),
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "seat_conflict",
    )


async def test_an_idempotency_key_is_one_key_across_grpc_and_http(
    app: GrpcApp, db: asyncpg.Connection, library: Library, alice: Student
) -> None:
    first = app.reservations.CreateReservation(booking(library.a1, key="k-1"), metadata=auth(alice))
    made = await first
    assert ("idempotent-replayed", "true") not in tuple(await first.initial_metadata())
    again = app.reservations.CreateReservation(booking(library.a1, key="k-1"), metadata=auth(alice))
    assert (await again).id == made.id
    assert ("idempotent-replayed", "true") in tuple(await again.initial_metadata())
    # The same key over HTTP replays the same answer.
    http = await reserve(app.http, alice, library.a1, key="k-1")
    assert (http.status_code, http.json()["id"]) == (201, made.id)
    assert http.headers["Idempotent-Replayed"] == "true"
    # Another body with the key: 422 idempotency_mismatch -> INVALID_ARGUMENT.
    await refused(
        app.reservations.CreateReservation(booking(library.a2, key="k-1"), metadata=auth(alice)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "idempotency_mismatch",
    )
    assert await db.fetchval("SELECT count(*) FROM reservations") == 1


async def test_a_stored_refusal_is_replayed_with_its_status(
    app: GrpcApp, library: Library, alice: Student, bob: Student
) -> None:
    await booked(app.http, bob, library.a1)
    for _ in range(2):  # the refusal is the key's answer: the same both times
        await refused(
            app.reservations.CreateReservation(
                booking(library.a1, key="k-2"), metadata=auth(alice)
            ),
            grpc.StatusCode.ALREADY_EXISTS,
            "seat_conflict",
        )
    bad_key = booking(library.a2, key="not ascii é")
    await refused(
        app.reservations.CreateReservation(bad_key, metadata=auth(alice)),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    )
