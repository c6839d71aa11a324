"""A unit of work's outbox: notification rows, e-mail and webhook messages and seat states,
written inside its transaction.

Webhook events (app/services/webhooks.py) come mostly from what the unit already says:
a booking's confirmation (``mail``: ``reservation.created``) and the notifications
that are also events (a waitlist offer, a cancellation by staff, a no-show). The rest
(a student's own cancellation, a check-in, a completion, a seat edit) call ``webhook``.
An event no active endpoint takes is dropped at once (``webhooks.SUBSCRIBED``).
"""

from datetime import datetime
from typing import Any

from app.db import notifications as notifications_db
from app.db import seats as seats_db
from app.db.pool import Connection
from app.models import NotificationType
from app.realtime.events import Changes
from app.services import branches as branches_service
from app.services import webhooks
from app.services.mail import MailKind
from app.services.outbox import MAILED_NOTIFICATIONS, MailEvent, MailWriter
from app.timeutil import iso_z

# Notifications that are webhook events too, and which.
WEBHOOK_NOTIFICATIONS: dict[NotificationType, str] = {
    NotificationType.WAITLIST_OFFER: "waitlist.offer",
    NotificationType.RESERVATION_CANCELLED: "reservation.cancelled",
    NotificationType.RESERVATION_NO_SHOW: "reservation.no_show",
}


class Outbox:
    """Notifications to write in the current transaction, and the Changes to publish."""

    def __init__(self, mail: MailWriter | None = None, *, webhooks: bool = False) -> None:
        self.changes = Changes()
        self._pending: list[tuple[int, NotificationType, dict[str, Any]]] = []
        # E-mail (app/services/outbox.py): None when SMTP_URL is unset, and then no
        # event is collected and nothing is queued.
        self._mail = mail
        self._mails: list[MailEvent] = []
        self.mails_queued = 0
        # Webhook events: collected only when the unit of work decided, as it began, that
        # some endpoint may take them (and made itself one transaction for them).
        self._webhooks_on = webhooks
        self._webhooks: list[tuple[str, dict[str, Any]]] = []
        self.webhooks_queued = 0

    @property
    def pending(self) -> bool:
        """Notifications, e-mails or webhook events are waiting to be written."""
        return bool(self._pending or self._mails or self._webhooks)

    def notify(self, user_id: int, kind: NotificationType, **data: Any) -> None:
        payload = {k: iso_z(v) if isinstance(v, datetime) else v for k, v in data.items()}
        self._pending.append((user_id, kind, payload))
        if self._mail is not None:
            mailed = MAILED_NOTIFICATIONS.get(kind)
            if mailed is not None:
                self.mail(user_id, mailed, **payload)
        event = WEBHOOK_NOTIFICATIONS.get(kind)
        if event is not None:
            self.webhook(event, user_id=user_id, **payload)

    def mail(self, user_id: int, kind: MailKind, **data: Any) -> None:
        """An e-mail about ``data["reservation_id"]`` to the user, if they take e-mail."""
        if self._mail is not None:
            self._mails.append(MailEvent(user_id, kind, data))
        if kind is MailKind.BOOKING_CONFIRMED:  # a booking, or a claimed offer
            self.webhook("reservation.created", user_id=user_id, **data)

    def webhook(self, event: str, **data: Any) -> None:
        """A webhook event (``data``: ``reservation_id`` fills in the reservation's
        fields), for every active endpoint taking it; nothing if none does."""
        if self._webhooks_on and webhooks.SUBSCRIBED.wanted(event):
            self._webhooks.append((event, webhooks.event_data(**data)))

    async def flush(self, conn: Connection, *, now: datetime) -> Changes:
        """Write the notifications and read the seats' present states; call before COMMIT."""
        self.changes.notifications += await notifications_db.insert_many(
            conn, self._pending, now=now
        )
        self._pending.clear()
        if self._mail is not None and self._mails:
            self.mails_queued += await self._mail.write(conn, self._mails, now=now)
            self._mails.clear()
        if self._webhooks:
            queued = await webhooks.write(conn, self._webhooks, now=now)
            webhooks.queued_metric(queued)
            self.webhooks_queued += queued
            self._webhooks.clear()
        if self.changes.seats_now:
            closed = await branches_service.closed_branches(conn, start=now, end=None, now=now)
            self.changes.seat_states = await seats_db.seat_states(
                conn, sorted(self.changes.seats_now), now, closed=closed
            )
        return self.changes
