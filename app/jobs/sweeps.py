"""The background sweeps: plain async functions of ``now``, safe to run anywhere at once.

Each batch is one transaction: the conditional UPDATE (app/db/sweeps.py), the
notifications it causes and the waitlist offers for the time it releases commit
together; the changes are published after COMMIT. Any number of instances may
sweep at the same moment: each row changes once and notifies once.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from app.db import idempotency as idempotency_db
from app.db import sweeps as sweeps_db
from app.db import waitlist as waitlist_db
from app.db.pool import Connection, Pool
from app.db.transactions import retry_deadlocks
from app.models import NotificationType, Reservation, WaitlistStatus
from app.realtime.events import Changes
from app.realtime.publisher import Publisher
from app.services import waitlist as waitlist_service
from app.services.notify import Outbox
from app.settings import Settings

BATCH = 500


@dataclass(frozen=True)
class SweepResult:
    no_shows: int = 0
    completed: int = 0
    expired_offers: int = 0
    idempotency_keys_removed: int = 0


# One batch's work inside its transaction: change rows, note what follows from them.
Step = Callable[[Connection, Outbox], Awaitable[list[Reservation]]]


async def _in_batches(pool: Pool, publisher: Publisher, step: Step, *, now: datetime) -> int:
    """Run ``step`` in transactions of at most BATCH rows until it finds fewer; publish
    each batch's changes after its COMMIT. The number of rows changed."""
    total = 0
    while True:

        async def batch() -> tuple[list[Reservation], Changes]:
            outbox = Outbox()
            async with pool.acquire() as conn, conn.transaction():
                rows = await step(conn, outbox)
                return rows, await outbox.flush(conn, now=now)

        rows, changes = await retry_deadlocks(batch)
        await publisher.publish(changes)
        total += len(rows)
        if len(rows) < BATCH:
            return total


async def mark_no_shows(
    pool: Pool, publisher: Publisher, settings: Settings, *, now: datetime
) -> int:
    """CONFIRMED with no check-in past start + GRACE_MINUTES -> NO_SHOW; the rest of the
    slot goes to the waitlist; the owner is told."""

    async def step(conn: Connection, outbox: Outbox) -> list[Reservation]:
        rows = await sweeps_db.mark_no_shows(conn, now=now, grace=settings.grace, batch=BATCH)
        for r in rows:
            outbox.notify(
                r.user_id,
                NotificationType.RESERVATION_NO_SHOW,
                reservation_id=r.id,
                seat_id=r.seat_id,
                start_time=r.start_time,
            )
            await waitlist_service.release(conn, settings, outbox, r, now=now)
        return rows

    return await _in_batches(pool, publisher, step, now=now)


async def complete_checked_in(
    pool: Pool, publisher: Publisher, settings: Settings, *, now: datetime
) -> int:
    """CHECKED_IN past end_time -> COMPLETED (nothing is released: the time is over)."""

    async def step(conn: Connection, outbox: Outbox) -> list[Reservation]:
        rows = await sweeps_db.complete_checked_in(conn, now=now, batch=BATCH)
        for r in rows:
            outbox.changes.branches.add(r.branch)
            outbox.changes.seats_now.add(r.seat_id)
        return rows

    return await _in_batches(pool, publisher, step, now=now)


async def expire_offers(
    pool: Pool, publisher: Publisher, settings: Settings, *, now: datetime
) -> int:
    """HELD offers past their deadline -> CANCELLED, the entry EXPIRED (its owner told),
    and the time offered to the next in line."""

    async def step(conn: Connection, outbox: Outbox) -> list[Reservation]:
        rows = await sweeps_db.cancel_expired_offers(
            conn, now=now, reason=waitlist_service.EXPIRED_REASON, batch=BATCH
        )
        for r in rows:
            entry = await waitlist_db.settle_offer(
                conn, r.id, status=WaitlistStatus.EXPIRED, now=now
            )
            if entry is not None:
                outbox.notify(
                    r.user_id,
                    NotificationType.WAITLIST_EXPIRED,
                    entry_id=entry["id"],
                    reservation_id=r.id,
                    seat_id=r.seat_id,
                )
            await waitlist_service.release(conn, settings, outbox, r, now=now)
        return rows

    return await _in_batches(pool, publisher, step, now=now)


async def forget_idempotency_keys(pool: Pool, *, now: datetime) -> int:
    async with pool.acquire() as conn:
        return await idempotency_db.delete_expired(conn, now=now)


async def run_all(
    pool: Pool, publisher: Publisher, settings: Settings, *, now: datetime
) -> SweepResult:
    """Every sweep once, in an order where each can feed the next: offers expire first
    (their time is offered on), then no-shows, then completions."""
    expired = await expire_offers(pool, publisher, settings, now=now)
    no_shows = await mark_no_shows(pool, publisher, settings, now=now)
    completed = await complete_checked_in(pool, publisher, settings, now=now)
    keys = await forget_idempotency_keys(pool, now=now)
    return SweepResult(no_shows, completed, expired, keys)
