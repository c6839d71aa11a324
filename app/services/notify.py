"""A unit of work's outbox: notification rows and seat states, written inside its transaction."""

from datetime import datetime
from typing import Any

from app.db import notifications as notifications_db
from app.db import seats as seats_db
from app.db.pool import Connection
from app.models import NotificationType
from app.realtime.events import Changes
from app.services import branches as branches_service
from app.timeutil import iso_z


class Outbox:
    """Notifications to write in the current transaction, and the Changes to publish."""

    def __init__(self) -> None:
        self.changes = Changes()
        self._pending: list[tuple[int, NotificationType, dict[str, Any]]] = []

    @property
    def pending(self) -> bool:
        """Notifications are waiting to be written."""
        return bool(self._pending)

    def notify(self, user_id: int, kind: NotificationType, **data: Any) -> None:
        payload = {k: iso_z(v) if isinstance(v, datetime) else v for k, v in data.items()}
        self._pending.append((user_id, kind, payload))

    async def flush(self, conn: Connection, *, now: datetime) -> Changes:
        """Write the notifications and read the seats' present states; call before COMMIT."""
        self.changes.notifications += await notifications_db.insert_many(
            conn, self._pending, now=now
        )
        self._pending.clear()
        if self.changes.seats_now:
            closed = await branches_service.closed_branches(conn, start=now, end=None, now=now)
            self.changes.seat_states = await seats_db.seat_states(
                conn, sorted(self.changes.seats_now), now, closed=closed.branch_ids
            )
        return self.changes
