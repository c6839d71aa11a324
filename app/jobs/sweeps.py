"""The background sweeps: plain async functions of ``now``, safe to run anywhere at once.

Each batch is one unit of work (app/services/unit_of_work.py): the conditional
UPDATE (app/db/sweeps.py), the notifications it causes and the waitlist offers for
the time it releases commit together; the changes are published after COMMIT. Any
number of instances may sweep at the same moment: each row changes once and notifies once.
"""

from dataclasses import asdict, dataclass
from datetime import datetime

from opentelemetry import trace

from app.db import idempotency as idempotency_db
from app.db import sweeps as sweeps_db
from app.db import waitlist as waitlist_db
from app.db.pool import Pool, connection
from app.models import NotificationType, Reservation, WaitlistStatus
from app.realtime.publisher import Publisher
from app.services import waitlist as waitlist_service
from app.services.unit_of_work import UnitOfWork, Work, run_unit
from app.settings import Settings

BATCH = 500


@dataclass(frozen=True)
class SweepResult:
    no_shows: int = 0
    completed: int = 0
    expired_offers: int = 0
    idempotency_keys_removed: int = 0


async def _in_batches(
    pool: Pool, publisher: Publisher, step: Work[list[Reservation]], *, now: datetime
) -> int:
    """Run ``step`` in units of work of at most BATCH rows until it finds fewer (each
    batch's changes published after its COMMIT). The number of rows changed."""
    total = 0
    while True:
        rows = await run_unit(pool, publisher, now=now, work=step)
        total += len(rows)
        if len(rows) < BATCH:
            return total


async def mark_no_shows(
    pool: Pool, publisher: Publisher, settings: Settings, *, now: datetime
) -> int:
    """CONFIRMED with no check-in past start + GRACE_MINUTES -> NO_SHOW; the rest of the
    slot goes to the waitlist; the owner is told."""

    async def step(uow: UnitOfWork) -> list[Reservation]:
        rows = await sweeps_db.mark_no_shows(uow.conn, now=now, grace=settings.grace, batch=BATCH)
        for r in rows:
            uow.notify(
                r.user_id,
                NotificationType.RESERVATION_NO_SHOW,
                reservation_id=r.id,
                seat_id=r.seat_id,
                start_time=r.start_time,
            )
            await waitlist_service.release(uow, settings, r)
        return rows

    return await _in_batches(pool, publisher, step, now=now)


async def complete_checked_in(
    pool: Pool, publisher: Publisher, settings: Settings, *, now: datetime
) -> int:
    """CHECKED_IN past end_time -> COMPLETED (nothing is released: the time is over)."""

    async def step(uow: UnitOfWork) -> list[Reservation]:
        rows = await sweeps_db.complete_checked_in(uow.conn, now=now, batch=BATCH)
        for r in rows:
            uow.changes.branches.add(r.branch)
            uow.changes.seats_now.add(r.seat_id)
            uow.outbox.webhook("reservation.completed", reservation_id=r.id)  # webhooks
        return rows

    return await _in_batches(pool, publisher, step, now=now)


async def expire_offers(
    pool: Pool, publisher: Publisher, settings: Settings, *, now: datetime
) -> int:
    """HELD offers past their deadline -> CANCELLED, the entry EXPIRED (its owner told),
    and the time offered to the next in line."""

    async def step(uow: UnitOfWork) -> list[Reservation]:
        rows = await sweeps_db.cancel_expired_offers(
            uow.conn, now=now, reason=waitlist_service.EXPIRED_REASON, batch=BATCH
        )
        for r in rows:
            entry = await waitlist_db.settle_offer(
                uow.conn, r.id, status=WaitlistStatus.EXPIRED, now=now
            )
            if entry is not None:
                uow.notify(
                    r.user_id,
                    NotificationType.WAITLIST_EXPIRED,
                    entry_id=entry["id"],
                    reservation_id=r.id,
                    seat_id=r.seat_id,
                )
            await waitlist_service.release(uow, settings, r)
        return rows

    return await _in_batches(pool, publisher, step, now=now)


async def forget_idempotency_keys(pool: Pool, *, now: datetime) -> int:
    async with connection(pool) as conn:
        return await idempotency_db.delete_expired(conn, now=now)


async def run_all(
    pool: Pool, publisher: Publisher, settings: Settings, *, now: datetime
) -> SweepResult:
    """Every sweep once, in an order where each can feed the next: offers expire first
    (their time is offered on), then no-shows, then completions. One span (tracing on:
    app/tracing.py) with the rows each sweep changed; its SQL spans nest under it."""
    with trace.get_tracer(__name__).start_as_current_span("sweep") as span:
        expired = await expire_offers(pool, publisher, settings, now=now)
        no_shows = await mark_no_shows(pool, publisher, settings, now=now)
        completed = await complete_checked_in(pool, publisher, settings, now=now)
        keys = await forget_idempotency_keys(pool, now=now)
        result = SweepResult(no_shows, completed, expired, keys)
        if span.is_recording():
            span.set_attributes({f"dlsms.sweep.{k}": v for k, v in asdict(result).items()})
        return result
