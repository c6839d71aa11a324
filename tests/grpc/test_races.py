"""Booking races through gRPC, and gRPC against HTTP, on committed data and the real
clock: PostgreSQL's exclusion constraint decides, whichever interface asked."""

import asyncio
from typing import Any

import asyncpg
import grpc

from app.grpc.convert import timestamp
from app.grpc.generated import dlsms_pb2 as pb
from tests.concurrency.test_booking_races import HOUR, POOL, active_rows, tomorrow_at
from tests.factories import add_branch, add_seat, add_students, booking
from tests.grpc.conftest import GrpcFactory, auth, error_info


async def outcome(call: Any) -> tuple[str, str | None]:
    try:
        made = await call
    except grpc.aio.AioRpcError as error:
        info = error_info(error)
        return error.code().name, info.reason if info else None
    return "OK", str(made.id)


async def test_fifty_grpc_callers_booking_one_seat_get_exactly_one_reservation(
    make_grpc: GrpcFactory, db: asyncpg.Connection
) -> None:
    app = await make_grpc(**POOL)
    seat = await add_seat(db, await add_branch(db), "R1")
    students = await add_students(db, "RACE", 50)
    start = tomorrow_at(10)
    request = pb.CreateReservationRequest(
        seat_id=seat, start_time=timestamp(start), end_time=timestamp(start + HOUR)
    )
    outcomes = await asyncio.gather(
        *(outcome(app.reservations.CreateReservation(request, metadata=auth(s))) for s in students)
    )
    kinds = sorted((kind, reason if kind != "OK" else None) for kind, reason in outcomes)
    assert kinds == [("ALREADY_EXISTS", "seat_conflict")] * 49 + [("OK", None)]
    [winner_id] = [reason for kind, reason in outcomes if kind == "OK"]
    rows = await active_rows(db)
    assert [(str(row["id"]), row["seat_id"]) for row in rows] == [(winner_id, seat)]


async def test_grpc_and_http_callers_racing_on_one_seat_get_exactly_one_reservation(
    make_grpc: GrpcFactory, db: asyncpg.Connection
) -> None:
    app = await make_grpc(**POOL)
    seat = await add_seat(db, await add_branch(db), "R1")
    students = await add_students(db, "MIX", 40)
    start = tomorrow_at(11)
    request = pb.CreateReservationRequest(
        seat_id=seat, start_time=timestamp(start), end_time=timestamp(start + HOUR)
    )
    body = booking(seat, start, start + HOUR)

    async def over_http(headers: dict[str, str]) -> tuple[str, str | None]:
        response = await app.http.post("/reservations", json=body, headers=headers)
        if response.status_code == 201:
            return "OK", "http"
        return str(response.status_code), response.json().get("code")

    calls = [
        outcome(app.reservations.CreateReservation(request, metadata=auth(s)))
        if n % 2
        else over_http(s.headers)
        for n, s in enumerate(students)
    ]
    outcomes = await asyncio.gather(*calls)
    winners = [o for o in outcomes if o[0] == "OK"]
    assert len(winners) == 1, outcomes
    losers = sorted({o for o in outcomes if o[0] != "OK"})
    assert set(losers) <= {("ALREADY_EXISTS", "seat_conflict"), ("409", "seat_conflict")}
    assert len(losers) == 2  # both interfaces lost somewhere: the race was real
    assert len(await active_rows(db)) == 1
