"""E-mail through a real SMTP server (aiosmtpd): what each event sends, to whom, with
what subject, calendar file and links; rolled-back changes send nothing; opt-out and
address-less students get nothing; without SMTP_URL nothing is even queued."""

from collections.abc import Awaitable, Callable
from datetime import datetime
from email.message import EmailMessage

import asyncpg
import httpx
import pytest
from icalendar import Calendar

from app.db.pool import Pool
from app.jobs import outbox as outbox_job
from app.jobs import sweeps
from app.models import NotificationType, Role
from app.realtime.publisher import Publisher
from app.services.mail import MailKind, SmtpConfig
from app.services.unit_of_work import UnitOfWork, run_unit
from app.settings import Settings
from tests.conftest import ClientFactory
from tests.factories import (
    GRACE,
    HOUR,
    RULES,
    SECOND,
    T10,
    T11,
    FrozenClock,
    Student,
    add_student,
    at,
    booked,
    cancel,
    joined,
    reserve,
)
from tests.mail.conftest import (
    MAIL_FROM,
    NOW,
    PUBLIC_URL,
    Seat,
    SmtpServer,
    outbox_rows,
    with_email,
)


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def subject(message: EmailMessage) -> str:
    """The Subject as one line (a long one arrives folded)."""
    return " ".join(str(message["Subject"]).split())


def ics_of(message: EmailMessage) -> Calendar:
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_filename() == "reservation.ics"
    data = attachment.get_payload(decode=True)
    assert isinstance(data, bytes)
    return Calendar.from_ical(data)


async def deliver(pool: Pool, config: SmtpConfig, now: datetime = NOW) -> outbox_job.DeliveryResult:
    return await outbox_job.deliver_email(pool, config, now=now)


async def test_booking_confirmation_has_the_calendar_file(
    api: httpx.AsyncClient,
    smtp: SmtpServer,
    pool: Pool,
    smtp_conf: SmtpConfig,
    alice: Student,
    seat: Seat,
    db: asyncpg.Connection,
) -> None:
    reservation = await booked(api, alice, seat.seat_id, T10, T11)
    [row] = await outbox_rows(db)
    assert (row["channel"], row["status"], row["attempts"]) == ("email", "pending", 0)
    assert smtp.received == []  # queued, not sent: the job sends

    result = await deliver(pool, smtp_conf)

    assert result == outbox_job.DeliveryResult(sent=1)
    [received] = smtp.received
    message = received.message
    assert received.rcpt_tos == ["alice@example.edu"]
    assert message["To"] == "alice@example.edu"
    assert message["From"] == MAIL_FROM
    assert subject(message) == "Booked: seat A1 at Main Library, Tue 01 Dec 2026 10:00 UTC"
    text, html = parts(message)
    assert f"Reservation: {reservation['id']}" in text
    assert "10:00" in html and "11:00" in html
    [event] = ics_of(message).walk("VEVENT")
    assert str(event["uid"]) == f"reservation-{reservation['id']}@dl-sms"
    assert event.decoded("dtstart") == T10
    assert event.decoded("dtend") == T11
    assert "A1" in str(event["summary"])
    row = (await outbox_rows(db))[0]
    assert (row["status"], row["attempts"], row["sent_at"]) == ("sent", 1, NOW)


async def test_html_part_escapes_user_data(
    api: httpx.AsyncClient,
    smtp: SmtpServer,
    pool: Pool,
    smtp_conf: SmtpConfig,
    alice: Student,
    seat: Seat,
) -> None:
    hostile = '<b onmouseover="x()">Al & Co</b>'
    response = await api.patch("/auth/me", json={"name": hostile}, headers=alice.headers)
    assert response.status_code == 200, response.text
    await booked(api, alice, seat.seat_id)
    await deliver(pool, smtp_conf)

    [received] = smtp.received
    text, html = parts(received.message)
    assert f"Hello {hostile}," in text  # plain text is taken as it is
    assert "<b onmouseover" not in html
    assert "Hello &lt;b onmouseover=&#34;x()&#34;&gt;Al &amp; Co&lt;/b&gt;," in html


async def test_a_rolled_back_change_sends_nothing(
    pool: Pool,
    publisher: Publisher,
    smtp: SmtpServer,
    smtp_conf: SmtpConfig,
    alice: Student,
    seat: Seat,
    db: asyncpg.Connection,
) -> None:
    reservation_id = await db.fetchval(
        "INSERT INTO reservations (user_id, seat_id, start_time, end_time, status, created_at, "
        "updated_at) VALUES ($1, $2, $3, $4, 'CONFIRMED', $5, $5) RETURNING id",
        alice.id,
        seat.seat_id,
        T10,
        T11,
        NOW,
    )

    def work(fail: bool) -> Callable[[UnitOfWork], Awaitable[None]]:
        async def step(uow: UnitOfWork) -> None:
            uow.notify(
                alice.id,
                NotificationType.RESERVATION_CANCELLED,
                reservation_id=reservation_id,
                seat_id=seat.seat_id,
                reason="the seat was closed",
            )
            uow.mail(alice.id, MailKind.BOOKING_CONFIRMED, reservation_id=reservation_id)
            if fail:
                raise RuntimeError("something after the outbox write failed")

        return step

    with pytest.raises(RuntimeError):
        await run_unit(pool, publisher, now=NOW, work=work(fail=True))
    assert await outbox_rows(db) == []
    assert await deliver(pool, smtp_conf) == outbox_job.DeliveryResult()
    assert smtp.received == []

    # The same unit committed: both messages go out (so the test above can fail).
    await run_unit(pool, publisher, now=NOW, work=work(fail=False))
    assert await deliver(pool, smtp_conf) == outbox_job.DeliveryResult(sent=2)
    subjects = sorted(subject(r.message) for r in smtp.received)
    assert subjects[0].startswith("Booked: seat A1")
    assert subjects[1].startswith("Cancelled: seat A1")


async def test_waitlist_offer_links_to_the_offer_and_self_cancel_sends_nothing(
    api: httpx.AsyncClient,
    smtp: SmtpServer,
    pool: Pool,
    smtp_conf: SmtpConfig,
    alice: Student,
    bob: Student,
    seat: Seat,
) -> None:
    mine = await booked(api, alice, seat.seat_id)
    entry = await joined(api, bob, seat_id=seat.seat_id)
    await cancel(api, alice, mine["id"])  # her own: no "cancelled" e-mail for her
    await deliver(pool, smtp_conf)

    assert [subject(m) for m in smtp.to("alice@example.edu")] == [
        "Booked: seat A1 at Main Library, Tue 01 Dec 2026 10:00 UTC"
    ]
    [offer] = smtp.to("bob@example.edu")
    assert subject(offer) == ("A seat is free for you: A1 at Main Library, claim it by 08:10")
    link = f"{PUBLIC_URL}/app/waitlist?offer={entry['id']}"
    text, html = parts(offer)
    assert f"Claim it here: {link}" in text
    assert f'<a href="{link}">Claim the seat</a>' in html
    assert list(offer.iter_attachments()) == []

    # Claiming it is a booking: confirmed by e-mail, with its calendar file.
    claimed = await api.post(f"/waitlist/{entry['id']}/claim", headers=bob.headers)
    assert claimed.status_code == 200, claimed.text
    await deliver(pool, smtp_conf)
    [_, confirmation] = smtp.to("bob@example.edu")
    assert subject(confirmation).startswith("Booked: seat A1")
    assert ics_of(confirmation).walk("VEVENT")[0].decoded("dtstart") == T10


async def test_staff_closing_the_seat_tells_the_student_why(
    api: httpx.AsyncClient,
    smtp: SmtpServer,
    pool: Pool,
    smtp_conf: SmtpConfig,
    alice: Student,
    seat: Seat,
    db: asyncpg.Connection,
) -> None:
    admin = await add_student(db, "ADMIN01", role=Role.ADMIN)
    await booked(api, alice, seat.seat_id)
    response = await api.patch(
        f"/admin/seats/{seat.seat_id}", json={"status": "MAINTENANCE"}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    await deliver(pool, smtp_conf)

    cancelled = [m for m in smtp.to("alice@example.edu") if subject(m).startswith("Cancelled")]
    assert len(cancelled) == 1
    text, _ = parts(cancelled[0])
    assert "cancelled by the library" in text
    [reason] = await db.fetch("SELECT cancel_reason FROM reservations")
    assert f"Reason: {reason['cancel_reason']}" in text


async def test_no_show_and_the_suspension_it_starts(
    make_client: ClientFactory,
    smtp: SmtpServer,
    pool: Pool,
    smtp_conf: SmtpConfig,
    mail_settings: Settings,
    publisher: Publisher,
    alice: Student,
    seat: Seat,
    clock: FrozenClock,
) -> None:
    api = await make_client(
        clock=clock, SMTP_URL=smtp.url, PUBLIC_URL=PUBLIC_URL, NO_SHOW_LIMIT=1, **RULES
    )
    await booked(api, alice, seat.seat_id)
    settings = mail_settings.model_copy(update={"NO_SHOW_LIMIT": 1})
    publisher.mail.settings = settings  # type: ignore[union-attr]
    after_grace = T10 + GRACE + SECOND
    assert await sweeps.mark_no_shows(pool, publisher, settings, now=after_grace) == 1
    await deliver(pool, smtp_conf, now=after_grace)

    subjects = [subject(m) for m in smtp.to("alice@example.edu")]
    assert subjects[1:] == [
        "Missed reservation: seat A1 at Main Library, Tue 01 Dec 2026 10:00 UTC",
        "Booking suspended until Tue 08 Dec 2026 10:00 UTC",
    ]


async def test_opted_out_and_addressless_students_get_nothing(
    api: httpx.AsyncClient,
    smtp: SmtpServer,
    pool: Pool,
    smtp_conf: SmtpConfig,
    db: asyncpg.Connection,
    seat: Seat,
) -> None:
    no_address = await add_student(db, "S0000010")
    opted_out = await with_email(db, "S0000011", "quiet@example.edu")
    response = await api.patch(
        "/auth/me", json={"email_notifications": False}, headers=opted_out.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["email_notifications"] is False

    await booked(api, no_address, seat.seat_id, T10, T11)
    await booked(api, opted_out, seat.seat_id, T11, T11 + HOUR)
    assert await outbox_rows(db) == []
    assert await deliver(pool, smtp_conf) == outbox_job.DeliveryResult()
    assert smtp.received == []

    # Opting in again: the next booking is confirmed.
    response = await api.patch(
        "/auth/me", json={"email_notifications": True}, headers=opted_out.headers
    )
    assert response.status_code == 200
    await booked(api, opted_out, seat.seat_id, at(13), at(14))
    await deliver(pool, smtp_conf)
    assert [r.rcpt_tos for r in smtp.received] == [["quiet@example.edu"]]


async def test_without_smtp_url_nothing_is_queued(
    make_client: ClientFactory,
    db: asyncpg.Connection,
    alice: Student,
    bob: Student,
    seat: Seat,
    clock: FrozenClock,
) -> None:
    api = await make_client(clock=clock, **RULES)
    mine = await booked(api, alice, seat.seat_id)
    await joined(api, bob, seat_id=seat.seat_id)
    await cancel(api, alice, mine["id"])  # an offer to bob: a notification, no e-mail
    assert await db.fetchval("SELECT count(*) FROM notifications") == 1
    assert await outbox_rows(db) == []


async def test_a_closure_tells_the_student_its_reason_escaped(
    api: httpx.AsyncClient,
    smtp: SmtpServer,
    pool: Pool,
    smtp_conf: SmtpConfig,
    alice: Student,
    seat: Seat,
    db: asyncpg.Connection,
) -> None:
    admin = await add_student(db, "ADMIN01", role=Role.ADMIN)
    await booked(api, alice, seat.seat_id)
    reason = "Flooding <script>alert(1)</script> & repairs"
    response = await api.post(
        f"/admin/branches/{seat.branch_id}/closures",
        json={"date_from": "2026-12-01", "date_to": "2026-12-01", "reason": reason},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    await deliver(pool, smtp_conf)

    [cancelled] = [m for m in smtp.to("alice@example.edu") if subject(m).startswith("Cancelled")]
    text, html = parts(cancelled)
    assert f"Reason: {reason}" in text
    assert "<script>" not in html
    assert "Flooding &lt;script&gt;alert(1)&lt;/script&gt; &amp; repairs" in html


async def test_a_replayed_idempotent_booking_confirms_once(
    api: httpx.AsyncClient,
    smtp: SmtpServer,
    pool: Pool,
    smtp_conf: SmtpConfig,
    alice: Student,
    seat: Seat,
) -> None:
    first = await reserve(api, alice, seat.seat_id, key="booking-1")
    again = await reserve(api, alice, seat.seat_id, key="booking-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["id"] == again.json()["id"]
    await deliver(pool, smtp_conf)
    assert len(smtp.to("alice@example.edu")) == 1
