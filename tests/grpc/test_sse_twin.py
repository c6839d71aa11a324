"""gRPC and SSE on one real uvicorn (the app's lifespan starts both in its loop): an
offer made through gRPC reaches the SSE notification stream, and a seat booked through
gRPC moves the SSE seat map, as the other way round does in test_notify/test_seats."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest

from app.grpc.convert import timestamp
from app.grpc.generated import dlsms_pb2 as pb
from app.grpc.generated import dlsms_pb2_grpc as pb_grpc
from app.main import create_app
from app.timeutil import utcnow
from tests.concurrency.test_booking_races import HOUR
from tests.conftest import make_settings
from tests.factories import Student, add_branch, add_seat
from tests.grpc.conftest import auth, free_port
from tests.realtime.servers import InProcess, open_stream, serve_in_process

pytestmark = pytest.mark.slow


@dataclass
class Both:
    http: InProcess
    channel: grpc.aio.Channel


@pytest.fixture
async def both(db: asyncpg.Connection, database_url: str) -> AsyncIterator[Both]:
    port = free_port()
    app = create_app(make_settings(database_url, GRPC_PORT=port))
    async with (
        serve_in_process(app) as served,
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        yield Both(served, channel)


async def test_an_offer_made_through_grpc_reaches_the_sse_stream(
    both: Both, db: asyncpg.Connection, alice: Student, bob: Student
) -> None:
    seat = await add_seat(db, await add_branch(db), "S1")
    start = (utcnow() + 2 * HOUR).replace(minute=0, second=0, microsecond=0)
    begin, end = timestamp(start), timestamp(start + HOUR)
    reservations = pb_grpc.ReservationServiceStub(both.channel)
    notify = pb_grpc.NotifyServiceStub(both.channel)
    mine = await reservations.CreateReservation(
        pb.CreateReservationRequest(seat_id=seat, start_time=begin, end_time=end),
        metadata=auth(alice),
    )
    entry = await notify.AddToWaitlist(
        pb.AddToWaitlistRequest(seat_id=seat, start_time=begin, end_time=end), metadata=auth(bob)
    )
    async with open_stream(
        both.http.client, "/notifications/stream", headers=bob.headers
    ) as stream:
        await reservations.CancelReservation(
            pb.CancelReservationRequest(reservation_id=mine.id), metadata=auth(alice)
        )
        offer = await stream.next_event(kind="waitlist.offer")
        assert offer.json()["data"]["entry_id"] == entry.id


async def test_a_booking_through_grpc_moves_the_sse_seat_map(
    both: Both, db: asyncpg.Connection, alice: Student
) -> None:
    seat = await add_seat(db, await add_branch(db, "Main"), "S1")
    start = utcnow().replace(microsecond=0)  # from now: the seat is taken at once
    reservations = pb_grpc.ReservationServiceStub(both.channel)
    async with open_stream(both.http.client, "/seats/stream") as stream:
        await reservations.CreateReservation(
            pb.CreateReservationRequest(
                seat_id=seat, start_time=timestamp(start), end_time=timestamp(start + HOUR)
            ),
            metadata=auth(alice),
        )
        event = await asyncio.wait_for(stream.next_event(kind="seat.availability"), 5)
        assert event.json() == {
            "seat_id": seat,
            "branch": "Main",
            "available": False,
            "status": "ACTIVE",
        }
