"""The reminder sweep: ``REMINDER_MINUTES`` before a CONFIRMED reservation starts, its
owner gets the ``reservation.reminder`` notification (and, through the unit of work's
outbox, the reminder e-mail). Each reservation is reminded once (``reminded_at``), by
whichever instance takes it first (FOR UPDATE SKIP LOCKED); a booking made less than
``REMINDER_MINUTES`` before its start gets no reminder.
"""

from datetime import datetime

from app.db import sweeps as sweeps_db
from app.db.pool import Pool
from app.models import NotificationType, Reservation
from app.realtime.publisher import Publisher
from app.services.unit_of_work import UnitOfWork, run_unit
from app.settings import Settings

BATCH = 500


async def send_reminders(
    pool: Pool, publisher: Publisher, settings: Settings, *, now: datetime
) -> int:
    """Remind every reservation due at ``now``; the number reminded."""

    async def step(uow: UnitOfWork) -> list[Reservation]:
        rows = await sweeps_db.mark_reminded(
            uow.conn, now=now, lead=settings.reminder_lead, batch=BATCH
        )
        for r in rows:
            uow.notify(
                r.user_id,
                NotificationType.RESERVATION_REMINDER,
                reservation_id=r.id,
                seat_id=r.seat_id,
                start_time=r.start_time,
            )
        return rows

    total = 0
    while True:
        rows = await run_unit(pool, publisher, now=now, work=step)
        total += len(rows)
        if len(rows) < BATCH:
            return total
