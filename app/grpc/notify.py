"""NotifyService: the twins of /waitlist, /notifications and /notifications/stream."""

import contextlib
from collections.abc import AsyncIterator

import anyio

from app.db.pool import connection
from app.grpc import convert
from app.grpc.calls import Context, Servicer
from app.grpc.errors import InvalidArgument
from app.grpc.generated import dlsms_pb2 as pb
from app.grpc.generated import dlsms_pb2_grpc as pb_grpc
from app.models import WaitlistEntry
from app.realtime import sse
from app.schemas.notifications import NotificationQuery
from app.schemas.seats import Page
from app.schemas.waitlist import WaitlistJoin, WaitlistOfferNow
from app.services import notifications as notifications_service
from app.services import reservations as reservations_service
from app.services import waitlist as waitlist_service
from app.state import AppState

# Initial metadata of StreamNotifications: the id the stream starts after (reconnect
# with it as after_id if nothing has arrived yet, as SSE's first `id:`).
AFTER_ID_HEADER = "dlsms-after-id"


class NotifyServicer(Servicer, pb_grpc.NotifyServiceServicer):
    def __init__(self, state: AppState, shutdown: anyio.Event) -> None:
        super().__init__(state)
        self.shutdown = shutdown

    async def AddToWaitlist(
        self, request: pb.AddToWaitlistRequest, context: Context
    ) -> pb.WaitlistEntry:
        user = self.user(context)
        target = request.WhichOneof("target")
        body = WaitlistJoin.model_validate(
            {
                **({target: getattr(request, target)} if target else {}),
                "start_time": convert.instant(request, "start_time"),
                "end_time": convert.instant(request, "end_time"),
            }
        )
        async with connection(self.state["pool"]) as conn:
            entry = await waitlist_service.join(
                conn, self.state["settings"], user_id=user.id, data=body, now=self.now()
            )
        return convert.waitlist_entry(entry)

    async def GetUserWaitlist(
        self, request: pb.GetUserWaitlistRequest, context: Context
    ) -> pb.WaitlistList:
        user = self.user(context)
        page = Page()  # the proto has no paging here: HTTP's default page
        entries: list[WaitlistEntry]
        async with connection(self.state["pool"]) as conn:
            if request.HasField("user_id"):  # GET /waitlist/user/{id}
                entries, total = await waitlist_service.list_for_user(
                    conn,
                    caller=user,
                    user_id=convert.object_id(request.user_id, "user_id"),
                    limit=page.limit,
                    offset=page.offset,
                )
            else:  # GET /waitlist
                entries, total = await waitlist_service.list_own(
                    conn, user_id=user.id, limit=page.limit, offset=page.offset
                )
        return pb.WaitlistList(items=[convert.waitlist_entry(e) for e in entries], total=total)

    async def RemoveFromWaitlist(
        self, request: pb.RemoveFromWaitlistRequest, context: Context
    ) -> pb.WaitlistEntry:
        user = self.user(context)
        entry_id = convert.object_id(request.entry_id, "entry_id")
        async with connection(self.state["pool"]) as conn:
            entry = await waitlist_service.leave(
                conn,
                self.state["publisher"],
                self.state["settings"],
                user_id=user.id,
                entry_id=entry_id,
                now=self.now(),
            )
        return convert.waitlist_entry(entry)

    async def ClaimOffer(
        self, request: pb.ClaimOfferRequest, context: Context
    ) -> pb.ClaimOfferResponse:
        user = self.user(context)
        entry_id = convert.object_id(request.entry_id, "entry_id")
        settings = self.state["settings"]
        async with connection(self.state["pool"]) as conn:
            entry, reservation = await waitlist_service.claim(
                conn,
                self.state["publisher"],
                settings,
                user_id=user.id,
                entry_id=entry_id,
                now=self.now(),
            )
        return pb.ClaimOfferResponse(
            entry=convert.waitlist_entry(entry),
            reservation=convert.reservation(reservations_service.to_out(reservation, settings)),
        )

    async def NotifyUsers(
        self, request: pb.NotifyUsersRequest, context: Context
    ) -> pb.NotifyUsersResponse:
        admin = self.admin(context)
        seat_id = convert.object_id(request.seat_id, "seat_id")
        body = WaitlistOfferNow.model_validate(
            {
                "start_time": convert.instant(request, "start_time"),
                "end_time": convert.instant(request, "end_time"),
            }
        )
        async with connection(self.state["pool"]) as conn:
            offered = await waitlist_service.offer_now(
                conn, self.state["publisher"], self.state["settings"], actor=admin,
                seat_id=seat_id, start=body.start_time, end=body.end_time, now=self.now(),
            )  # fmt: skip
        return pb.NotifyUsersResponse(offered=[convert.waitlist_entry(e) for e in offered])

    async def StreamNotifications(
        self, request: pb.StreamNotificationsRequest, context: Context
    ) -> AsyncIterator[pb.Notification]:
        user = self.user(context)
        after_id: int | None = convert.optional(request, "after_id")
        if after_id is not None and not 0 <= after_id <= convert.MAX_ID:
            raise InvalidArgument("after_id: must be 0 or a notification id")
        feed = sse.notification_feed(
            self.state["pool"],
            self.state["broker"],
            self.state["settings"],
            user_id=user.id,
            last_event_id=after_id,
            shutdown=self.shutdown,
        )
        async with contextlib.aclosing(feed):
            async for item in feed:
                if isinstance(item, int):
                    await context.send_initial_metadata(((AFTER_ID_HEADER, str(item)),))
                else:
                    yield convert.notification(item)

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: Context
    ) -> pb.NotificationList:
        user = self.user(context)
        query = NotificationQuery.model_validate(
            {"unread_only": request.unread_only, **convert.page(request.limit, request.offset)}
        )
        async with connection(self.state["pool"]) as conn:
            listed = await notifications_service.list_own(conn, user_id=user.id, query=query)
        return pb.NotificationList(
            items=[convert.notification(n) for n in listed.items], total=listed.total
        )

    async def MarkNotificationRead(
        self, request: pb.MarkNotificationReadRequest, context: Context
    ) -> pb.Notification:
        user = self.user(context)
        notification_id = convert.object_id(request.notification_id, "notification_id")
        async with connection(self.state["pool"]) as conn:
            found = await notifications_service.mark_read(
                conn, user_id=user.id, notification_id=notification_id, now=self.now()
            )
        return convert.notification(found)
