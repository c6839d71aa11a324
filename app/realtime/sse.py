"""Server-sent event streams: a user's notifications, and a branch's seat map.

A stream never holds a pool connection while it waits: it borrows one to replay
from PostgreSQL, then waits on its bounded queue in the Hub. It subscribes before
it replays, so a notification committed in between arrives twice (dropped by id)
rather than never. After ``SSE_MAX_STREAM_SECONDS`` it ends; the ``retry:`` hint
brings the browser back with ``Last-Event-ID``, and it resumes where it left off.
"""

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
import orjson
from sse_starlette import ServerSentEvent

from app.db import notifications as notifications_db
from app.db.pool import Pool, connection
from app.realtime.broker import Broker, Subscription, notification_json
from app.settings import Settings

REPLAY_BATCH = 500


def _notification_event(body: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=orjson.dumps(body).decode(), event=body["type"], id=str(body["id"]))


async def _replay(pool: Pool, user_id: int, after: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with connection(pool) as conn:
        while True:
            batch = await notifications_db.after(conn, user_id, after, limit=REPLAY_BATCH)
            found += [notification_json(n) for n in batch]
            if len(batch) < REPLAY_BATCH:
                return found
            after = batch[-1].id


async def next_message(
    subscription: Subscription, deadline: float, shutdown: anyio.Event
) -> dict[str, Any] | None:
    """The next message, or None when the stream's lifetime is over or the server is
    shutting down (the stream then ends as a complete response; the client reconnects
    elsewhere with Last-Event-ID)."""
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0 or shutdown.is_set():
        return None
    get = asyncio.ensure_future(subscription.queue.get())
    stop = asyncio.ensure_future(shutdown.wait())
    try:
        done, _ = await asyncio.wait(
            {get, stop}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        get.cancel()
        stop.cancel()
    return get.result() if get in done else None


async def notification_feed(
    pool: Pool,
    broker: Broker,
    settings: Settings,
    *,
    user_id: int,
    last_event_id: int | None,
    shutdown: anyio.Event,
) -> AsyncGenerator[int | dict[str, Any], None]:
    """A user's notifications for a stream (SSE here, gRPC's StreamNotifications): first
    the id the stream starts after (an int), then each notification body (as
    ``notification_json``) in id order, until the lifetime cap or shutdown."""
    deadline = asyncio.get_running_loop().time() + settings.SSE_MAX_STREAM_SECONDS
    with broker.hub.user(user_id) as subscription:
        # Where this stream starts is fixed before the client hears it is open, so a
        # notification committed after that moment is either replayed or queued.
        if last_event_id is None:  # a new stream starts from now
            async with connection(pool) as conn:
                last = await notifications_db.latest_id(conn, user_id)
            missed = []
        else:
            last = last_event_id
            missed = await _replay(pool, user_id, last)
        yield last
        while True:
            for body in missed:
                if body["id"] > last:
                    yield body
                    last = body["id"]
            message = await next_message(subscription, deadline, shutdown)
            if message is None:
                return
            if subscription.lagging:  # the queue overflowed: PostgreSQL has everything
                subscription.lagging = False
                while not subscription.queue.empty():
                    subscription.queue.get_nowait()
                missed = await _replay(pool, user_id, last)
            else:
                missed = [message["notification"]]


async def notification_events(
    pool: Pool,
    broker: Broker,
    settings: Settings,
    *,
    user_id: int,
    last_event_id: int | None,
    shutdown: anyio.Event,
) -> AsyncIterator[ServerSentEvent]:
    feed = notification_feed(
        pool, broker, settings, user_id=user_id, last_event_id=last_event_id, shutdown=shutdown
    )
    async with contextlib.aclosing(feed):  # unsubscribed when the response ends
        async for item in feed:
            if isinstance(item, int):
                # `id:` even before the first event: a browser that drops and reconnects
                # sends it back as Last-Event-ID and gets what it missed instead of "now".
                yield ServerSentEvent(
                    comment="connected", id=str(item), retry=settings.SSE_RETRY_MS
                )
            else:
                yield _notification_event(item)


async def seat_feed(
    broker: Broker, settings: Settings, *, branch: str | None, shutdown: anyio.Event
) -> AsyncGenerator[dict[str, Any] | None, None]:
    """A seat map's messages for a stream (SSE here, gRPC's WatchSeats): first None once
    subscribed, then each ``seat`` or ``branch`` message, until the lifetime cap or
    shutdown."""
    deadline = asyncio.get_running_loop().time() + settings.SSE_MAX_STREAM_SECONDS
    # Subscribed before the client hears the stream is open: no change after that is lost.
    with broker.hub.branch(branch) as subscription:
        yield None
        while (message := await next_message(subscription, deadline, shutdown)) is not None:
            subscription.lagging = False  # a seat map only needs the latest states
            yield message


async def seat_events(
    broker: Broker, settings: Settings, *, branch: str | None, shutdown: anyio.Event
) -> AsyncIterator[ServerSentEvent]:
    feed = seat_feed(broker, settings, branch=branch, shutdown=shutdown)
    async with contextlib.aclosing(feed):  # unsubscribed when the response ends
        async for message in feed:
            if message is None:
                yield ServerSentEvent(comment="connected", retry=settings.SSE_RETRY_MS)
            elif message["kind"] == "branch":
                # Availability changed for some interval, not necessarily now: a map
                # showing another time re-reads its listing.
                yield ServerSentEvent(
                    data=orjson.dumps({"branch": message["branch"]}).decode(),
                    event="seats.changed",
                )
            else:
                yield ServerSentEvent(
                    data=orjson.dumps(message["seat"]).decode(), event="seat.availability"
                )
