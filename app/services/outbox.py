"""The e-mail side of a unit of work's outbox: events become rendered messages, queued
in the event's own transaction (so a rolled-back change sends nothing).

A unit of work (app/services/unit_of_work.py) collects mail events: every notification
of a type that is also e-mailed (waitlist offer, a cancellation the student did not
make, no-show, reminder), and the events that have no notification (a booking's
confirmation). Before COMMIT, ``MailWriter.write`` looks up the recipients (an address
and ``email_notifications``: anyone else gets nothing) and the reservations, renders
each message (app/services/mail.py) and inserts the outbox rows: two or three queries
for the whole transaction, and none at all when no recipient wants e-mail. Without
``SMTP_URL`` there is no writer and nothing is queued.

Channels other than e-mail (webhooks) add their own writer beside this one, queueing
rows of their channel in the same ``outbox`` table (app/db/outbox.py).
"""

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import Counter

from app.db import outbox as outbox_db
from app.db import profile as profile_db
from app.db.pool import Connection
from app.errors import InvalidToken
from app.models import NotificationType, Reservation
from app.schemas.outbox import MePatch, MeSettingsOut, OutboxList, OutboxMessageOut, OutboxQuery
from app.services import calendar, fair_use, policy
from app.services.mail import MailKind, render, smtp_config
from app.settings import Settings

QUEUED = Counter(
    "dlsms_outbox_queued_total", "Outbox messages queued (counted after COMMIT)", ["channel"]
)

# Notifications that are e-mailed too, and as what.
MAILED_NOTIFICATIONS: dict[NotificationType, MailKind] = {
    NotificationType.WAITLIST_OFFER: MailKind.WAITLIST_OFFER,
    NotificationType.RESERVATION_CANCELLED: MailKind.CANCELLED,
    NotificationType.RESERVATION_NO_SHOW: MailKind.NO_SHOW,
    NotificationType.RESERVATION_REMINDER: MailKind.REMINDER,
}


@dataclass(frozen=True)
class MailEvent:
    user_id: int
    kind: MailKind
    data: dict[str, Any]  # reservation_id always; entry_id, reason... as the event has them


class MailWriter:
    """Queues the e-mails of a transaction's events; one per process (SMTP_URL set)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def write(self, conn: Connection, events: list[MailEvent], *, now: datetime) -> int:
        """Render and queue the messages of ``events``; the number queued."""
        if not events:
            return 0
        recipients = await outbox_db.recipients(conn, sorted({e.user_id for e in events}))
        events = [e for e in events if e.user_id in recipients]
        if not events:
            return 0
        reservations = await outbox_db.reservations(
            conn, sorted({int(e.data["reservation_id"]) for e in events})
        )
        payloads = []
        for event in events:
            found = reservations.get(int(event.data["reservation_id"]))
            if found is None:  # taken back in this transaction (a stale-rules booking)
                continue
            reservation, timezone = found
            recipient = recipients[event.user_id]
            payloads.append(
                self._payload(event, recipient, reservation, ZoneInfo(timezone), now=now)
            )
            if event.kind is MailKind.NO_SHOW:
                until = await self._suspension_started(conn, reservation, now=now)
                if until is not None:
                    suspended = MailEvent(event.user_id, MailKind.SUSPENDED, event.data)
                    payloads.append(
                        self._payload(
                            suspended,
                            recipient,
                            reservation,
                            ZoneInfo(timezone),
                            now=now,
                            until=until,
                        )
                    )
        return await outbox_db.insert_many(conn, "email", payloads, now=now)

    async def _suspension_started(
        self, conn: Connection, no_show: Reservation, *, now: datetime
    ) -> datetime | None:
        """The end of the suspension this no-show starts, if it starts one."""
        until = await fair_use.suspended_until(
            conn, self.settings, user_id=no_show.user_id, now=now
        )
        length = timedelta(days=self.settings.SUSPENSION_DAYS)
        if until is not None and until == no_show.start_time + length:
            return until
        return None

    def _payload(
        self,
        event: MailEvent,
        to: outbox_db.Recipient,
        r: Reservation,
        zone: ZoneInfo,
        *,
        now: datetime,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        app_url = self.settings.PUBLIC_URL

        def local(moment: datetime) -> str:
            return moment.astimezone(zone).strftime("%a %d %b %Y %H:%M %Z")

        def time_only(moment: datetime) -> str:
            return moment.astimezone(zone).strftime("%H:%M")

        _, deadline = policy.checkin_window(r, self.settings)
        context: dict[str, Any] = {
            "name": to.name,
            "seat": r.label,
            "area": r.area,
            "branch": r.branch,
            "reservation_id": r.id,
            "start": local(r.start_time),
            "end": local(r.end_time),
            "start_time_only": time_only(r.start_time),
            "deadline": local(deadline),
            "reason": event.data.get("reason") or r.cancel_reason or "",
            "app_url": app_url,
            "offer_url": None,
            "expires": "",
            "expires_time_only": "",
            "until": local(until) if until is not None else "",
        }
        if event.kind is MailKind.WAITLIST_OFFER:
            expires = r.offer_expires_at or now
            context["expires"] = local(expires)
            context["expires_time_only"] = time_only(expires)
            if app_url:
                context["offer_url"] = f"{app_url}/app/waitlist?offer={event.data['entry_id']}"
        rendered = render(event.kind, context)
        payload: dict[str, Any] = {
            "kind": str(event.kind),
            "user_id": event.user_id,
            "reservation_id": r.id,
            "to": to.email,
            "subject": rendered.subject,
            "text": rendered.text,
            "html": rendered.html,
            "attachments": [],
        }
        if event.kind is MailKind.BOOKING_CONFIRMED:
            ics = calendar.reservation_ics(r, now=now)
            payload["attachments"].append(
                {
                    "filename": "reservation.ics",
                    "content_type": "text/calendar",
                    "data": base64.b64encode(ics).decode(),
                }
            )
        return payload


def mail_writer(settings: Settings) -> MailWriter | None:
    """The writer when e-mail is configured (SMTP_URL), else None: nothing is queued."""
    return MailWriter(settings) if smtp_config(settings) is not None else None


def queued_metric(channel: str, count: int) -> None:
    QUEUED.labels(channel).inc(count)


async def list_messages(conn: Connection, query: OutboxQuery) -> OutboxList:
    rows, total = await outbox_db.list_messages(
        conn, status=query.status, limit=query.limit, offset=query.offset
    )
    return OutboxList(
        items=[OutboxMessageOut.model_validate(dict(row)) for row in rows], total=total
    )


async def update_me(
    conn: Connection, settings: Settings, *, user_id: int, patch: MePatch, now: datetime
) -> MeSettingsOut:
    """PATCH /auth/me: the caller's e-mail address, name and e-mail opt-out."""
    fields = patch.model_fields_set
    found = await profile_db.update(
        conn,
        user_id,
        set_email="email" in fields,
        email=str(patch.email) if patch.email is not None else None,
        name=patch.name if "name" in fields else None,
        email_notifications=(
            patch.email_notifications if "email_notifications" in fields else None
        ),
    )
    if found is None:  # a valid token for an account that no longer exists
        raise InvalidToken()
    user, email_notifications = found
    until = await fair_use.suspended_until(conn, settings, user_id=user_id, now=now)
    return MeSettingsOut(
        **user.model_dump(), suspended_until=until, email_notifications=email_notifications
    )
