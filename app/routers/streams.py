"""Live streams (text/event-stream). Registered before /seats/{seat_id}."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.deps import BrokerDep, PoolDep, SettingsDep, StreamUser
from app.errors import InvalidToken, NotAuthenticated, error_responses
from app.realtime import sse
from app.schemas.common import Name
from app.settings import Settings

router = APIRouter()

_SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "An endless stream"}
}
# Tell nginx and friends not to buffer the stream.
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get(
    "/notifications/stream",
    tags=["notifications"],
    response_class=EventSourceResponse,
    responses={**_SSE_RESPONSE, **error_responses(NotAuthenticated, InvalidToken)},
)
async def stream_notifications(
    user: StreamUser,
    pool: PoolDep,
    broker: BrokerDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Your notifications as they happen: `id:` notification id, `event:` its type,
    `data:` the notification. Token in the `Authorization` header, the `dlsms_session`
    cookie (`POST /auth/session`) or `?access_token=` (EventSource cannot set headers).
    Reconnect with `Last-Event-ID` to get what was missed. A heartbeat comment comes at
    least every 15 s."""
    resume_after = int(last_event_id) if last_event_id and last_event_id.isdigit() else None
    shutdown = anyio.Event()
    events = sse.notification_events(
        pool, broker, settings, user_id=user.id, last_event_id=resume_after, shutdown=shutdown
    )
    return _stream(events, settings, shutdown)


@router.get(
    "/seats/stream",
    tags=["seats"],
    response_class=EventSourceResponse,
    responses=_SSE_RESPONSE,
)
async def stream_seats(
    broker: BrokerDep,
    settings: SettingsDep,
    branch: Annotated[Name | None, Query(description="Only this branch's seats")] = None,
) -> EventSourceResponse:
    """`seat.availability` events `{seat_id, branch, available, status}` whenever a seat's
    present availability changes, for live seat maps (public): after a booking, cancel,
    check-out, expired offer or staff change, and by the clock alone, the moment a
    reservation starts or ends. Also (an extension) `seats.changed` `{branch}` whenever a
    write changed some seat's availability for any interval, so a map showing another
    time knows to re-read its listing. No replay: re-read the listing on (re)connect."""
    shutdown = anyio.Event()
    events = sse.seat_events(broker, settings, branch=branch, shutdown=shutdown)
    return _stream(events, settings, shutdown)


def _stream(
    events: AsyncIterator[ServerSentEvent], settings: Settings, shutdown: anyio.Event
) -> EventSourceResponse:
    # On server shutdown sse-starlette sets ``shutdown``; the generator then ends and the
    # response completes cleanly (instead of being cut mid-chunk) within the grace period.
    return EventSourceResponse(
        events,
        ping=settings.SSE_HEARTBEAT_SECONDS,
        headers=_SSE_HEADERS,
        send_timeout=30,
        shutdown_event=shutdown,
        shutdown_grace_period=2,
    )
