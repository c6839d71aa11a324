"""A unit of work's outbox: notification rows and seat states, written inside its transaction."""

from datetime import datetime
from typing import Any

from app.db import notifications as notifications_db
from app.db import seats as seats_db
from app.db.pool import Connection
from app.models import NotificationType
from app.realtime.events import Changes
from app.services import branches as branches_service
from app.services.mail import MailKind
from app.services.outbox import MAILED_NOTIFICATIONS, MailEvent, MailWriter
from app.timeutil import iso_z


class Outbox:
    """Notifications to write in the current transaction, and the Changes to publish."""

    def __init__(self, mail: MailWriter | None = None) -> None:
        self.changes = Changes()
        self._pending: list[tuple[int, NotificationType, dict[str, Any]]] = []
        # E-mail (app/services/outbox.py): None when SMTP_URL is unset, and then no
        # event is collected and nothing is queued.
        self._mail = mail
        self._mails: list[MailEvent] = []
        self.mails_queued = 0

    @property
    def pending(self) -> bool:
        """Notifications or e-mails are waiting to be written."""
        return bool(self._pending or self._mails)

    def notify(self, user_id: int, kind: NotificationType, **data: Any) -> None:
        payload = {k: iso_z(v) if isinstance(v, datetime) else v for k, v in data.items()}
        self._pending.append((user_id, kind, payload))
        if self._mail is not None:
            mailed = MAILED_NOTIFICATIONS.get(kind)
            if mailed is not None:
                self.mail(user_id, mailed, **payload)

    def mail(self, user_id: int, kind: MailKind, **data: Any) -> None:
        """An e-mail about ``data["reservation_id"]`` to the user, if they take e-mail."""
        if self._mail is not None:
            self._mails.append(MailEvent(user_id, kind, data))

    async def flush(self, conn: Connection, *, now: datetime) -> Changes:
        """Write the notifications and read the seats' present states; call before COMMIT."""
        self.changes.notifications += await notifications_db.insert_many(
            conn, self._pending, now=now
        )
        self._pending.clear()
        if self._mail is not None and self._mails:
            self.mails_queued += await self._mail.write(conn, self._mails, now=now)
            self._mails.clear()
        if self.changes.seats_now:
            closed = await branches_service.closed_branches(conn, start=now, end=None, now=now)
            self.changes.seat_states = await seats_db.seat_states(
                conn, sorted(self.changes.seats_now), now, closed=closed.branch_ids
            )
        return self.changes
