"""Reminders: REMINDER_MINUTES before start, once, as a notification and an e-mail; none
for a booking made later than that; and the scheduler delivering on its own."""

import asyncio
from datetime import datetime, timedelta

import asyncpg
import httpx

from app.db.pool import Pool
from app.jobs import outbox as outbox_job
from app.jobs import reminders
from app.realtime.publisher import Publisher
from app.services.mail import SmtpConfig
from app.settings import Settings
from app.timeutil import utcnow
from tests.conftest import ClientFactory
from tests.factories import (
    MINUTE,
    SECOND,
    T10,
    T11,
    FrozenClock,
    Student,
    at,
    booked,
    eventually,
    iso,
    my_notifications,
)
from tests.mail.conftest import Seat, SmtpServer

LEAD = timedelta(minutes=30)  # REMINDER_MINUTES' default


async def test_reminder_once_at_the_right_time(
    api: httpx.AsyncClient,
    smtp: SmtpServer,
    pool: Pool,
    publisher: Publisher,
    mail_settings: Settings,
    smtp_conf: SmtpConfig,
    alice: Student,
    seat: Seat,
    db: asyncpg.Connection,
) -> None:
    assert mail_settings.reminder_lead == LEAD
    reservation = await booked(api, alice, seat.seat_id, T10, T11)  # booked at 08:00

    async def remind(now: datetime) -> int:
        return await reminders.send_reminders(pool, publisher, mail_settings, now=now)

    assert await remind(T10 - LEAD - SECOND) == 0  # a second early
    assert await remind(T10 - LEAD) == 1
    assert await remind(T10 - LEAD + MINUTE) == 0  # once, however often the sweep runs
    assert await remind(T10 - 5 * MINUTE) == 0

    [notification] = await my_notifications(api, alice, kind="reservation.reminder")
    assert notification["data"] == {
        "reservation_id": reservation["id"],
        "seat_id": seat.seat_id,
        "start_time": iso(T10),
    }
    await outbox_job.deliver_email(pool, smtp_conf, now=T10 - LEAD)
    reminder = [r for r in smtp.received if "Reminder" in str(r.message["Subject"])]
    assert len(reminder) == 1
    assert " ".join(str(reminder[0].message["Subject"]).split()) == (
        "Reminder: seat A1 at Main Library from 10:00"
    )
    text = reminder[0].message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Check in at the seat by Tue 01 Dec 2026 10:15 UTC" in text
    assert await db.fetchval("SELECT reminded_at FROM reservations") == T10 - LEAD


async def test_no_reminder_for_a_late_booking_or_a_cancelled_one(
    make_client: ClientFactory,
    smtp: SmtpServer,
    pool: Pool,
    publisher: Publisher,
    mail_settings: Settings,
    alice: Student,
    seat: Seat,
) -> None:
    clock = FrozenClock(T10 - 20 * MINUTE)  # later than REMINDER_MINUTES before 10:00
    api = await make_client(clock=clock, SMTP_URL=smtp.url)
    await booked(api, alice, seat.seat_id, T10, T11)
    earlier = await booked(api, alice, seat.seat_id, at(12), at(13))
    cancelled = await api.delete(f"/reservations/{earlier['id']}", headers=alice.headers)
    assert cancelled.status_code == 200

    for now in (T10 - 20 * MINUTE, T10 - 10 * MINUTE, at(12) - LEAD, at(12) - MINUTE):
        assert await reminders.send_reminders(pool, publisher, mail_settings, now=now) == 0
    assert await my_notifications(api, alice, kind="reservation.reminder") == []


async def test_the_scheduler_delivers_at_its_interval(
    make_client: ClientFactory, smtp: SmtpServer, alice: Student, seat: Seat
) -> None:
    """Real clock, scheduler on: a booking's confirmation reaches the server by itself."""
    api = await make_client(SMTP_URL=smtp.url, SCHEDULER_ENABLED=True)
    start = (utcnow() + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    await booked(api, alice, seat.seat_id, start, start + timedelta(hours=1))
    await eventually(
        lambda: _count(smtp), lambda n: n == 1, within=10, what="the confirmation e-mail"
    )


async def _count(smtp: SmtpServer) -> int:
    return len(smtp.received)


async def test_two_instances_remind_each_reservation_once(
    pool: Pool,
    second_pool: Pool,
    publisher: Publisher,
    mail_settings: Settings,
    db: asyncpg.Connection,
    seat: Seat,
    alice: Student,
) -> None:
    count = 2 * reminders.BATCH + 7
    await db.execute(
        "INSERT INTO users (student_id, name, email, password_hash) "
        "SELECT 'R' || n, 'Student ' || n, 'r' || n || '@example.edu', 'x' "
        "FROM generate_series(1, $1) n",
        count,
    )
    await db.execute(
        "INSERT INTO seats (branch_id, area, label) "
        "SELECT $1, 'Quiet', 'R' || n FROM generate_series(1, $2) n",
        seat.branch_id,
        count,
    )
    await db.execute(
        "INSERT INTO reservations (user_id, seat_id, start_time, end_time, status, created_at, "
        "updated_at) SELECT u.id, s.id, $1, $2, 'CONFIRMED', $3, $3 FROM "
        "(SELECT id, row_number() OVER (ORDER BY id) n FROM users WHERE student_id LIKE 'R%') u "
        "JOIN (SELECT id, row_number() OVER (ORDER BY id) n FROM seats WHERE label LIKE 'R%') s "
        "USING (n)",
        T10,
        T11,
        T10 - timedelta(days=1),
    )
    now = T10 - LEAD

    first, second = await asyncio.gather(
        reminders.send_reminders(pool, publisher, mail_settings, now=now),
        reminders.send_reminders(second_pool, publisher, mail_settings, now=now),
    )

    assert first + second == count
    notified = await db.fetchval(
        "SELECT count(DISTINCT data->>'reservation_id') FROM notifications "
        "WHERE type = 'reservation.reminder'"
    )
    assert notified == count
    assert await db.fetchval("SELECT count(*) FROM notifications") == count
    assert await db.fetchval("SELECT count(*) FROM outbox") == count  # one e-mail each
