"""Seat events caused by the clock alone: a reservation starting or ending, a branch
opening or closing.

A write publishes the seat states it changed (app/services/unit_of_work.py), through
Redis to every instance; an offer that expires is such a write (the sweep's). Time
passing writes nothing, so each instance runs this ticker for its own seat streams: at
each moment a held, confirmed or checked-in reservation starts or ends, it asks
PostgreSQL which seats' present availability changed since it last looked and hands
those states to this process's Hub only, never to Redis. When a branch opens or
closes, every seat of it changes: each gets a ``seat.availability`` event, and the
branch a ``seats.changed`` one (maps showing another time re-read their listing).
Every instance tells its own streams, so each stream hears each change once, however
many instances run. While no seat stream is open in this process it sleeps and queries nothing.

"Now" is the app's Clock (tests move it); the waiting is real time.
"""

import asyncio
import contextlib
import logging
from datetime import datetime

from app.clock import Clock
from app.db import seats as seats_db
from app.db.pool import Pool, connection
from app.realtime.broker import Hub, Message, seat_message
from app.realtime.events import CLOCK_HORIZON, SeatState
from app.services import branches as branches_service

log = logging.getLogger(__name__)

# The longest sleep. A write that puts a start or end nearer than this publishes a
# {"kind": "clock"} message (app/realtime/events.py), which makes every ticker look again.
MAX_SLEEP_SECONDS = CLOCK_HORIZON.total_seconds()
# Look again this soon after such a message rather than at once: a burst becomes one read.
REARM_SECONDS = 0.2
RETRY_SECONDS = 5.0
READ_ATTEMPTS = 3


class ClockTicker:
    """``start()`` in the lifespan, ``stop()`` at shutdown; tests call ``tick(now)``."""

    def __init__(self, pool: Pool, hub: Hub, clock: Clock) -> None:
        self._pool = pool
        self._hub = hub
        self._clock = clock
        self._since: datetime | None = None  # the last tick's "now"
        self._rearm = asyncio.Event()  # a start or end came near since the last tick
        self._written_seats: set[int] = set()  # seats a write told of during the read
        self._task: asyncio.Task[None] | None = None
        hub.on_write(self._written)

    def _written(self, message: Message) -> None:
        if message["kind"] == "clock":
            self._rearm.set()
        else:
            self._written_seats.add(message["seat"]["seat_id"])

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="seat-clock-ticker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def tick(self, now: datetime) -> datetime | None:
        """Deliver to this process's seat streams the seats whose availability changed
        between the last tick and ``now``; the next moment one will change (or None)."""
        since = self._since if self._since is not None and self._since < now else now
        self._rearm.clear()
        async with connection(self._pool) as conn:
            schedules = await branches_service.schedules(conn, now=now)
            closed = [i for i, s in schedules.items() if not s.is_open(now)]
            turned = [
                i
                for i, s in schedules.items()
                if since < now and s.is_open(since) != s.is_open(now)
            ]
            for _ in range(READ_ATTEMPTS):
                self._written_seats.clear()
                changed: list[SeatState] = []
                turned_seats: list[SeatState] = []
                if since < now:
                    changed = await seats_db.changed_by_clock(conn, since, now, closed=closed)
                if turned:  # a branch opened or closed: all its seats changed
                    turned_seats = await seats_db.seat_states(
                        conn, [], now, closed=closed, of_branches=turned
                    )
                    changed = [
                        s for s in changed if s.branch not in {t.branch for t in turned_seats}
                    ]
                    changed += turned_seats
                # A write that committed after this read may have had its event delivered
                # while the read was under way: ours would then overtake it with an older
                # state. Read again; the write is in the new snapshot.
                if not self._written_seats.intersection(s.seat_id for s in changed):
                    break
            self._since = now
            for state in changed:  # no await since the check above
                self._hub.dispatch(seat_message(state), by_clock=True)
            for branch in sorted({s.branch for s in turned_seats}):
                self._hub.dispatch({"kind": "branch", "branch": branch}, by_clock=True)
            upcoming = await seats_db.next_availability_change(conn, now)
        changes = [c for s in schedules.values() if (c := s.next_change(now)) is not None]
        return min([upcoming, *changes]) if upcoming is not None else min(changes, default=None)

    async def _run(self) -> None:
        while True:
            if not self._hub.seats_watched.is_set():
                # Nobody listened meanwhile, so there is nothing to catch up on: a new
                # stream's client reads the listing once it is connected.
                self._since = None
                await self._hub.seats_watched.wait()
            try:
                upcoming = await self.tick(self._clock.now())
            except Exception as exc:  # PostgreSQL away: keep ``since``, catch up later
                log.warning("seat clock tick failed (%s); retrying in %.0f s", exc, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            delay = MAX_SLEEP_SECONDS
            if upcoming is not None:
                delay = min(delay, (upcoming - self._clock.now()).total_seconds())
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        """``delay`` seconds of real time, cut to REARM_SECONDS by a clock message."""
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(due):
                await self._rearm.wait()
            due = min(due, loop.time() + REARM_SECONDS)
        await asyncio.sleep(max(due - loop.time(), 0))
