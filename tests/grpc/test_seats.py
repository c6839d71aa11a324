"""SeatService over gRPC: the twins of GET /seats, /seats/{id}, /seats/{id}/availability,
/branches and /seats/stream, on a frozen clock (Dec 1, 08:00 UTC)."""

import asyncio
from dataclasses import dataclass

import asyncpg
import grpc
import pytest

from app.grpc.convert import timestamp
from app.grpc.generated import dlsms_pb2 as pb
from tests.factories import T10, T11, FrozenClock, Student, add_branch, add_seat, at, booked
from tests.grpc.conftest import GrpcApp, GrpcFactory, received, refused

NOW = at(8)


@dataclass(frozen=True)
class Library:
    a1: int
    a2: int
    b1: int


@pytest.fixture
async def app(make_grpc: GrpcFactory) -> GrpcApp:
    return await make_grpc(clock=FrozenClock(NOW))


@pytest.fixture
async def library(db: asyncpg.Connection) -> Library:
    main = await add_branch(db, "Main")
    east = await add_branch(db, "East")
    return Library(
        a1=await add_seat(db, main, "A1", power=True),
        a2=await add_seat(db, main, "A2", status="MAINTENANCE"),
        b1=await add_seat(db, east, "B1", area="Group", monitor=True),
    )


async def test_get_seats_filters_and_pages_like_the_listing(app: GrpcApp, library: Library) -> None:
    everything = await app.seats.GetSeats(pb.GetSeatsRequest())
    assert everything.total == 3
    assert {s.label for s in everything.items} == {"A1", "A2", "B1"}
    a1 = next(s for s in everything.items if s.id == library.a1)
    assert (a1.branch, a1.area, a1.has_power, a1.status, a1.available) == (
        "Main",
        "Quiet",
        True,
        "ACTIVE",
        True,
    )
    main = await app.seats.GetSeats(pb.GetSeatsRequest(branch="Main", available_only=True))
    assert [s.id for s in main.items] == [library.a1]
    paged = await app.seats.GetSeats(pb.GetSeatsRequest(limit=1, offset=1))
    assert (len(paged.items), paged.total) == (1, 3)
    # The same answer as GET /seats (same service, same cache).
    http = (await app.http.get("/seats", params={"branch": "Main"})).json()
    grpc_main = await app.seats.GetSeats(pb.GetSeatsRequest(branch="Main"))
    assert [s["id"] for s in http["items"]] == [s.id for s in grpc_main.items]


async def test_get_seats_for_an_interval_reflects_a_booking(
    app: GrpcApp, library: Library, alice: Student
) -> None:
    await booked(app.http, alice, library.a1, T10, T11)
    asked = pb.GetSeatsRequest(branch="Main", start_time=timestamp(T10), end_time=timestamp(T11))
    listing = await app.seats.GetSeats(asked)
    assert {s.id: s.available for s in listing.items}[library.a1] is False


async def test_get_seats_with_a_reversed_interval_is_invalid_argument_invalid_interval(
    app: GrpcApp, library: Library
) -> None:
    reversed_ = pb.GetSeatsRequest(start_time=timestamp(T11), end_time=timestamp(T10))
    await refused(
        app.seats.GetSeats(reversed_), grpc.StatusCode.INVALID_ARGUMENT, "invalid_interval"
    )
    only_start = pb.GetSeatsRequest(start_time=timestamp(T10))
    await refused(
        app.seats.GetSeats(only_start), grpc.StatusCode.INVALID_ARGUMENT, "invalid_interval"
    )
    await refused(
        app.seats.GetSeats(pb.GetSeatsRequest(limit=501)), grpc.StatusCode.INVALID_ARGUMENT, None
    )


async def test_get_seat_has_the_days_busy_intervals(
    app: GrpcApp, library: Library, alice: Student
) -> None:
    await booked(app.http, alice, library.a1, T10, T11)
    detail = await app.seats.GetSeat(pb.GetSeatRequest(seat_id=library.a1))
    assert detail.seat.id == library.a1 and detail.seat.label == "A1"
    assert [(i.start_time.ToDatetime(), i.end_time.ToDatetime()) for i in detail.busy] == [
        (T10.replace(tzinfo=None), T11.replace(tzinfo=None))
    ]
    other_day = await app.seats.GetSeat(pb.GetSeatRequest(seat_id=library.a1, date="2026-12-02"))
    assert list(other_day.busy) == []


async def test_get_seat_unknown_is_not_found_and_bad_input_invalid_argument(
    app: GrpcApp, library: Library
) -> None:
    await refused(
        app.seats.GetSeat(pb.GetSeatRequest(seat_id=999999)), grpc.StatusCode.NOT_FOUND, "not_found"
    )
    await refused(
        app.seats.GetSeat(pb.GetSeatRequest(seat_id=0)), grpc.StatusCode.INVALID_ARGUMENT, None
    )
    bad_date = pb.GetSeatRequest(seat_id=library.a1, date="tomorrow")
    await refused(app.seats.GetSeat(bad_date), grpc.StatusCode.INVALID_ARGUMENT, None)


async def test_check_availability_names_the_conflicts(
    app: GrpcApp, library: Library, alice: Student
) -> None:
    await booked(app.http, alice, library.a1, T10, T11)
    asked = pb.CheckAvailabilityRequest(
        seat_id=library.a1, start_time=timestamp(at(10, 30)), end_time=timestamp(at(12))
    )
    answer = await app.seats.CheckAvailability(asked)
    assert (answer.seat_id, answer.available, len(answer.conflicts)) == (library.a1, False, 1)
    free = pb.CheckAvailabilityRequest(
        seat_id=library.a1, start_time=timestamp(T11), end_time=timestamp(at(12))
    )
    assert (await app.seats.CheckAvailability(free)).available is True
    missing = pb.CheckAvailabilityRequest(seat_id=library.a1, start_time=timestamp(T10))
    await refused(app.seats.CheckAvailability(missing), grpc.StatusCode.INVALID_ARGUMENT, None)


async def test_get_branches_counts_seats(app: GrpcApp, library: Library) -> None:
    answer = await app.seats.GetBranches(pb.GetBranchesRequest())
    by_name = {b.name: b for b in answer.branches}
    assert set(by_name) == {"Main", "East"}
    assert (by_name["Main"].total_seats, by_name["Main"].available_now) == (2, 1)
    assert by_name["East"].areas == ["Group"]
    assert by_name["Main"].open_now is True
    assert by_name["Main"].timezone == "UTC"


async def test_watch_seats_gets_the_event_of_a_rest_booking(
    make_grpc: GrpcFactory, library: Library, alice: Student
) -> None:
    app = await make_grpc(clock=FrozenClock(T10))  # the booking starts now: availability moves
    stream = app.seats.WatchSeats(pb.WatchSeatsRequest(branch="Main"))
    await asyncio.wait_for(stream.initial_metadata(), 5)  # subscribed
    await booked(app.http, alice, library.a1, T10, T11)
    event = await received(stream)
    assert (event.seat_id, event.branch, event.available, event.status) == (
        library.a1,
        "Main",
        False,
        "ACTIVE",
    )
    stream.cancel()


async def test_watch_seats_for_another_branch_stays_quiet(
    make_grpc: GrpcFactory, library: Library, alice: Student
) -> None:
    app = await make_grpc(clock=FrozenClock(T10))
    east = app.seats.WatchSeats(pb.WatchSeatsRequest(branch="East"))
    await asyncio.wait_for(east.initial_metadata(), 5)
    await booked(app.http, alice, library.a1, T10, T11)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(east.read(), 0.5)
    east.cancel()
