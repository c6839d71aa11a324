"""Running a whole transaction again when PostgreSQL aborted it to break a deadlock.

Releases (cancel, check-out, offers, sweeps) and staff closing a seat lock a seat,
its reservations and its waitlist entries in an order that depends on where they
start, so two of them can deadlock; PostgreSQL then aborts one (40P01). Nothing of
the aborted attempt remains, so running it again is safe and, the other having
finished, settles it. Each attempt must build its own Outbox.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from app.errors import ServiceUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
ATTEMPTS = 4


async def retry_deadlocks(work: Callable[[], Awaitable[T]]) -> T:
    """``work()``, one complete transaction, retried after a deadlock abort."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await work()
        except asyncpg.DeadlockDetectedError as exc:
            if attempt == ATTEMPTS:
                raise ServiceUnavailable("Too much contention; try again") from exc
            log.info("deadlock, running the transaction again (attempt %d)", attempt + 1)
    raise AssertionError("unreachable")
