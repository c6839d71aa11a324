"""SeatService: the twins of GET /seats, /seats/{id}, /seats/{id}/availability,
/branches and /seats/stream."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import anyio
import orjson

from app.cache import listing_slot
from app.db.pool import connection
from app.grpc import convert
from app.grpc.calls import Context, Servicer
from app.grpc.generated import dlsms_pb2 as pb
from app.grpc.generated import dlsms_pb2_grpc as pb_grpc
from app.realtime import sse
from app.schemas.seats import DayQuery, IntervalQuery, SeatQuery
from app.services import seats as seats_service
from app.state import AppState


class SeatServicer(Servicer, pb_grpc.SeatServiceServicer):
    def __init__(self, state: AppState, shutdown: anyio.Event) -> None:
        super().__init__(state)
        self.shutdown = shutdown

    async def GetSeats(self, request: pb.GetSeatsRequest, context: Context) -> pb.GetSeatsResponse:
        fields = {
            name: convert.optional(request, name)
            for name in ("branch", "area", "has_power", "has_monitor", "status")
        }
        query = SeatQuery.model_validate(
            {
                **{k: v for k, v in fields.items() if v is not None},
                "available_only": request.available_only,
                "start_time": convert.instant(request, "start_time"),
                "end_time": convert.instant(request, "end_time"),
                **convert.page(request.limit, request.offset),
            }
        )
        # The cache slot of the validated query (the same listing cache as GET /seats).
        asked = query.model_dump(mode="json", exclude_none=True)
        slot = listing_slot("/seats", urlencode(sorted(asked.items())).encode())
        listing = await seats_service.list_seats(
            self.state["pool"], self.state["cache"], query, slot=slot, now=self.now()
        )
        body: dict[str, Any] = orjson.loads(listing.body)
        return pb.GetSeatsResponse(
            items=[convert.seat(item) for item in body["items"]], total=body["total"]
        )

    async def GetSeat(self, request: pb.GetSeatRequest, context: Context) -> pb.SeatDetail:
        seat_id = convert.object_id(request.seat_id, "seat_id")
        query = DayQuery.model_validate({"date": convert.optional(request, "date")})
        async with connection(self.state["pool"]) as conn:
            detail = await seats_service.seat_day(conn, seat_id, query.date, now=self.now())
        return convert.seat_detail(detail)

    async def CheckAvailability(
        self, request: pb.CheckAvailabilityRequest, context: Context
    ) -> pb.Availability:
        seat_id = convert.object_id(request.seat_id, "seat_id")
        query = IntervalQuery.model_validate(
            {
                "start_time": convert.instant(request, "start_time"),
                "end_time": convert.instant(request, "end_time"),
            }
        )
        async with connection(self.state["pool"]) as conn:
            found = await seats_service.availability(
                conn, seat_id, query.start_time, query.end_time, now=self.now()
            )
        return convert.availability(found)

    async def GetBranches(
        self, request: pb.GetBranchesRequest, context: Context
    ) -> pb.GetBranchesResponse:
        listed = await seats_service.branches(
            self.state["pool"],
            self.state["cache"],
            slot=listing_slot("/branches", b""),
            now=self.now(),
        )
        rows: list[dict[str, Any]] = orjson.loads(listed.body)
        return pb.GetBranchesResponse(branches=[convert.branch(row) for row in rows])

    async def WatchSeats(
        self, request: pb.WatchSeatsRequest, context: Context
    ) -> AsyncIterator[pb.SeatAvailabilityEvent]:
        # Validated as GET /seats/stream's ?branch=.
        query = SeatQuery.model_validate({"branch": convert.optional(request, "branch")})
        feed = sse.seat_feed(
            self.state["broker"],
            self.state["settings"],
            branch=query.branch,
            shutdown=self.shutdown,
        )
        async with contextlib.aclosing(feed):
            async for message in feed:
                if message is None:
                    # Subscribed: tell the client the stream is open (headers now).
                    await context.send_initial_metadata(())
                elif message["kind"] == "seat":
                    yield convert.seat_event(message["seat"])
