"""Fan-out of committed changes to the streams open on every instance.

PostgreSQL holds the truth (notification rows); the broker only wakes streams up.
With Redis, every instance publishes to one channel and holds one subscriber
connection that feeds its local ``Hub``; without Redis (or while it is down) events
reach this instance's streams only. Each stream reads from a bounded queue: a slow
client that falls behind is marked ``lagging`` and catches up from PostgreSQL.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.models import Notification
from app.realtime.events import Changes, SeatState
from app.timeutil import iso_z

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "dlsms:events:v1"
QUEUE_SIZE = 256
_RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)

# A message is {"kind": "notification", "user_id": int, "notification": {...}},
# {"kind": "seat", "branch": str, "seat": {...}}, {"kind": "branch", "branch": str} (some
# seat's availability changed for some interval: maps showing another time re-read) or
# {"kind": "clock"} (a reservation now starts or ends soon: app/realtime/clock_ticker.py
# looks again).
Message = dict[str, Any]


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[Message] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    lagging: bool = False  # events were dropped: catch up from PostgreSQL

    def offer(self, message: Message) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.lagging = True


class Hub:
    """This process's subscribers, by user (notifications) and by branch (seat maps)."""

    def __init__(self) -> None:
        self._users: dict[int, set[Subscription]] = {}
        self._branches: dict[str | None, set[Subscription]] = {}  # None: every branch
        # Set while a seat stream is open in this process (app/realtime/clock_ticker.py
        # queries nothing while nobody listens).
        self.seats_watched = asyncio.Event()
        self._write_listeners: list[Callable[[Message], None]] = []

    @property
    def subscriber_count(self) -> int:
        return sum(map(len, self._users.values())) + sum(map(len, self._branches.values()))

    @contextlib.contextmanager
    def _subscribed(self, table: dict[Any, set[Subscription]], key: Any) -> Any:
        subscription = Subscription()
        table.setdefault(key, set()).add(subscription)
        try:
            yield subscription
        finally:
            table[key].discard(subscription)
            if not table[key]:
                del table[key]

    def user(self, user_id: int) -> contextlib.AbstractContextManager[Subscription]:
        return self._subscribed(self._users, user_id)

    @contextlib.contextmanager
    def branch(self, branch: str | None) -> Iterator[Subscription]:
        self.seats_watched.set()
        try:
            with self._subscribed(self._branches, branch) as subscription:
                yield subscription
        finally:
            if not self._branches:
                self.seats_watched.clear()

    def on_write(self, listener: Callable[[Message], None]) -> None:
        """Call ``listener`` with every seat or clock message a write published (on any
        instance); not with the clock ticker's own seat messages."""
        self._write_listeners.append(listener)

    def dispatch(self, message: Message, *, by_clock: bool = False) -> None:
        kind = message.get("kind")
        if kind in ("seat", "clock") and not by_clock:
            for listener in self._write_listeners:
                listener(message)
        if kind == "notification":
            targets = self._users.get(message["user_id"], set())
        elif kind in ("seat", "branch"):
            targets = self._branches.get(message["branch"], set()) | self._branches.get(None, set())
        else:
            return
        for subscription in targets:
            subscription.offer(message)


def messages(changes: Changes) -> list[Message]:
    found: list[Message] = [
        {"kind": "notification", "user_id": n.user_id, "notification": notification_json(n)}
        for n in changes.notifications
    ]
    found += [seat_message(s) for s in changes.seat_states]
    found += [{"kind": "branch", "branch": b} for b in sorted(changes.branches)]
    if changes.boundary_soon:
        found.append({"kind": "clock"})
    return found


def seat_message(state: SeatState) -> Message:
    return {"kind": "seat", "branch": state.branch, "seat": state.as_json()}


def notification_json(n: Notification) -> dict[str, Any]:
    """A notification as the API shows it (GET /notifications, the stream's data)."""
    return {
        "id": n.id,
        "type": n.type.value,
        "data": n.data,
        "created_at": iso_z(n.created_at),
        "read_at": None if n.read_at is None else iso_z(n.read_at),
    }


# How long shutdown waits for the subscriber task to end after cancelling it.
_STOP_SECONDS = 2.0


class Broker:
    """Publishes after commit; delivers to this process's Hub (through Redis if set)."""

    def __init__(self, redis: Redis | None, redis_url: str | None) -> None:
        self.hub = Hub()
        self._redis = redis
        self._redis_url = redis_url
        # Pub/sub ignores Redis's database numbers; the cache does not. One channel per
        # database keeps deployments that share a Redis server (on different databases)
        # from hearing each other, as their caches already are apart.
        database = redis.connection_pool.connection_kwargs.get("db", 0) if redis else 0
        self.channel = f"{CHANNEL_PREFIX}:db{database}"
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._redis_url is not None:
            self._listener = asyncio.create_task(self._listen(), name="broker-listener")

    async def stop(self) -> None:
        if self._listener is None:
            return
        self._listener.cancel()
        # redis-py can swallow a cancellation that lands while the subscriber connects
        # (the listener then waits out its 30 s read): shutdown waits a moment, not forever.
        done, _ = await asyncio.wait({self._listener}, timeout=_STOP_SECONDS)
        if not done:
            log.warning("the Redis subscriber did not stop within %g s; left behind", _STOP_SECONDS)
            return
        with contextlib.suppress(asyncio.CancelledError):
            await self._listener

    async def publish(self, changes: Changes) -> None:
        for message in messages(changes):
            await self._publish(message)

    async def _publish(self, message: Message) -> None:
        if self._redis is not None:
            try:
                await self._redis.publish(self.channel, orjson.dumps(message))
                return
            except RedisError as exc:
                log.warning("Redis publish failed (%s); delivering on this instance only", exc)
        self.hub.dispatch(message)

    async def _listen(self) -> None:
        """One subscriber connection per process, reconnecting with backoff."""
        assert self._redis_url is not None
        # Its own client: the shared one has a 1 s read timeout, a subscriber waits longer.
        subscriber = Redis.from_url(
            self._redis_url, socket_connect_timeout=1.0, health_check_interval=30
        )
        try:
            await self._listen_with(subscriber)
        finally:
            await subscriber.aclose()

    async def _listen_with(self, subscriber: Redis) -> None:
        attempt = 0
        while True:
            try:
                async with subscriber.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    attempt = 0
                    async for raw in _listen_forever(pubsub):
                        self.hub.dispatch(orjson.loads(raw["data"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                delay = _RECONNECT_SECONDS[min(attempt, len(_RECONNECT_SECONDS) - 1)]
                if attempt == 0:
                    log.warning("Redis subscriber lost (%s); reconnecting", exc)
                attempt += 1
                await asyncio.sleep(delay)
            except Exception:  # a malformed message must not stop delivery for everyone
                log.exception("broker listener error; restarting it")
                await asyncio.sleep(_RECONNECT_SECONDS[0])


async def _listen_forever(pubsub: Any) -> AsyncIterator[dict[str, Any]]:
    while True:
        message = await pubsub.get_message(timeout=30.0)
        if message is not None and message.get("type") == "message":
            yield message
