"""ReservationService: the twins of /reservations and its sub-resources."""

from datetime import datetime
from typing import Protocol

from app.db.pool import Connection, connection
from app.grpc import convert
from app.grpc.calls import Context, Servicer
from app.grpc.errors import stored_error
from app.grpc.generated import dlsms_pb2 as pb
from app.grpc.generated import dlsms_pb2_grpc as pb_grpc
from app.models import TokenUser
from app.realtime.publisher import Publisher
from app.schemas.reservations import (
    ReservationCreate,
    ReservationExtend,
    ReservationList,
    ReservationOut,
    ReservationQuery,
)
from app.services import extension as extension_service
from app.services import idempotency as idempotency_service
from app.services import reservations as reservations_service
from app.settings import Settings

# Sent as initial metadata when an Idempotency-Key's stored answer is replayed (as the
# HTTP header Idempotent-Replayed).
REPLAYED = (("idempotent-replayed", "true"),)

_ReservationRequest = pb.CheckInRequest | pb.CheckOutRequest | pb.CancelReservationRequest


class _Transition(Protocol):
    """reservations_service.check_in, check_out and cancel."""

    async def __call__(
        self,
        conn: Connection,
        publisher: Publisher,
        settings: Settings,
        *,
        user: TokenUser,
        reservation_id: int,
        now: datetime,
    ) -> ReservationOut: ...


class ReservationServicer(Servicer, pb_grpc.ReservationServiceServicer):
    async def CreateReservation(
        self, request: pb.CreateReservationRequest, context: Context
    ) -> pb.Reservation:
        user = self.user(context)
        body = ReservationCreate.model_validate(
            {
                "seat_id": request.seat_id,
                "start_time": convert.instant(request, "start_time"),
                "end_time": convert.instant(request, "end_time"),
            }
        )
        key = convert.idempotency_key(request)
        async with connection(self.state["pool"]) as conn:
            created = await reservations_service.create(
                conn,
                self.state["publisher"],
                self.state["settings"],
                user=user,
                data=body,
                now=self.now(),
                idempotency_key=key,
                rules_cache=self.state["rules"],
            )
        return await _answer(created, context)

    async def GetReservation(
        self, request: pb.GetReservationRequest, context: Context
    ) -> pb.Reservation:
        user = self.user(context)
        reservation_id = convert.object_id(request.reservation_id, "reservation_id")
        async with connection(self.state["pool"]) as conn:
            found = await reservations_service.get(
                conn, self.state["settings"], user=user, reservation_id=reservation_id
            )
        return convert.reservation(found)

    async def CheckIn(self, request: pb.CheckInRequest, context: Context) -> pb.Reservation:
        return await self._transition(reservations_service.check_in, request, context)

    async def CheckOut(self, request: pb.CheckOutRequest, context: Context) -> pb.Reservation:
        return await self._transition(reservations_service.check_out, request, context)

    async def CancelReservation(
        self, request: pb.CancelReservationRequest, context: Context
    ) -> pb.Reservation:
        return await self._transition(reservations_service.cancel, request, context)

    async def _transition(
        self, change: _Transition, request: _ReservationRequest, context: Context
    ) -> pb.Reservation:
        """Check in, check out or cancel the caller's reservation: the same call shape."""
        user = self.user(context)
        reservation_id = convert.object_id(request.reservation_id, "reservation_id")
        async with connection(self.state["pool"]) as conn:
            done = await change(
                conn,
                self.state["publisher"],
                self.state["settings"],
                user=user,
                reservation_id=reservation_id,
                now=self.now(),
            )
        return convert.reservation(done)

    async def ExtendReservation(
        self, request: pb.ExtendReservationRequest, context: Context
    ) -> pb.Reservation:
        user = self.user(context)
        reservation_id = convert.object_id(request.reservation_id, "reservation_id")
        body = ReservationExtend.model_validate({"end_time": convert.instant(request, "end_time")})
        async with connection(self.state["pool"]) as conn:
            extended = await extension_service.extend(
                conn,
                self.state["publisher"],
                self.state["settings"],
                user=user,
                reservation_id=reservation_id,
                data=body,
                now=self.now(),
            )
        return await _answer(extended, context)

    async def GetUserReservations(
        self, request: pb.GetUserReservationsRequest, context: Context
    ) -> pb.ReservationList:
        user = self.user(context)
        query = ReservationQuery.model_validate(
            {
                "scope": request.scope or "upcoming",
                **({"status": request.status} if request.HasField("status") else {}),
                **convert.page(request.limit, request.offset),
            }
        )
        settings, now = self.state["settings"], self.now()
        async with connection(self.state["pool"]) as conn:
            listed: ReservationList
            if request.HasField("user_id"):  # GET /reservations/user/{id}
                user_id = convert.object_id(request.user_id, "user_id")
                listed = await reservations_service.list_for_user(
                    conn, settings, caller=user, user_id=user_id, query=query, now=now
                )
            else:  # GET /reservations
                listed = await reservations_service.list_own(
                    conn, settings, user_id=user.id, query=query, now=now
                )
        return pb.ReservationList(
            items=[convert.reservation(r) for r in listed.items], total=listed.total
        )


async def _answer(
    result: ReservationOut | idempotency_service.Answer, context: Context
) -> pb.Reservation:
    """The reservation, or an Idempotency-Key's stored answer (a success or an error)."""
    if isinstance(result, ReservationOut):
        return convert.reservation(result)
    if result.replayed:
        await context.send_initial_metadata(REPLAYED)
    if result.status_code >= 400:
        raise stored_error(result.status_code, result.body)
    return convert.replayed_reservation(result.body)
