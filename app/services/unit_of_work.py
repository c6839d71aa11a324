"""One unit of work: a transaction, its outbox, a retry after a deadlock, publishing after COMMIT.

Every use case that changes state runs through ``run_unit`` and only says what happens
inside the transaction (``work(uow)``). The sequence around it is written here once:

1. take a connection (from the pool, when given one) and open a transaction;
2. run ``work``: it changes rows through ``uow.conn`` and writes what follows into
   ``uow.outbox`` (notifications, seat changes, e-mail: app/services/outbox.py; later
   webhook messages);
3. flush the outbox in the same transaction, so the change and its messages commit
   together or not at all;
4. if PostgreSQL aborted the transaction to break a deadlock (40P01), run all of it
   again with a fresh outbox: nothing of the aborted attempt remains, and the other
   transaction having finished, the next attempt settles it;
5. after COMMIT, publish (cache invalidation, then streams). A rollback publishes nothing.

Releases (cancel, check-out, offers, sweeps) and staff closing a seat lock a seat, its
reservations and its waitlist entries in an order that depends on where they start,
which is why step 4 exists at all.
"""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import asyncpg

from app.db.pool import Connection, Pool, connection
from app.errors import ServiceUnavailable
from app.models import NotificationType
from app.realtime.events import Changes
from app.services import webhooks
from app.services.mail import MailKind
from app.services.notify import Outbox
from app.services.outbox import MailWriter, queued_metric

log = logging.getLogger(__name__)

T = TypeVar("T")
ATTEMPTS = 4


@dataclass
class UnitOfWork:
    """What a use case works with inside its transaction."""

    conn: Connection
    now: datetime
    outbox: Outbox = field(default_factory=Outbox)

    @property
    def changes(self) -> Changes:
        return self.outbox.changes

    def notify(self, user_id: int, kind: NotificationType, **data: Any) -> None:
        self.outbox.notify(user_id, kind, **data)

    def mail(self, user_id: int, kind: MailKind, **data: Any) -> None:
        """An e-mail without a notification (a booking's confirmation); nothing when
        e-mail is not configured. Notifications that are e-mailed too need no call."""
        self.outbox.mail(user_id, kind, **data)


Work = Callable[[UnitOfWork], Awaitable[T]]


class Publisher(Protocol):
    """What happens after COMMIT (app/realtime/publisher.py: cache, then streams)."""

    async def publish(self, changes: Changes) -> None: ...


def _mail_writer(publisher: Publisher) -> MailWriter | None:
    """The process's e-mail writer rides on its publisher (app/realtime/publisher.py);
    None when SMTP_URL is unset."""
    writer = getattr(publisher, "mail", None)
    return writer if isinstance(writer, MailWriter) else None


async def run_unit(
    db: Connection | Pool,
    publisher: Publisher,
    *,
    now: datetime,
    work: Work[T],
    atomic: bool = True,
) -> T:
    """``work`` in one transaction on ``db`` (a connection, or the pool to take one from
    for each attempt), retried after a deadlock abort; its changes published after COMMIT.

    ``atomic=False`` is for work that is a single statement writing no notification (a
    booking, a check-in): each statement commits on its own, which saves the BEGIN and
    COMMIT round trips on the hottest path. With e-mail configured every unit is atomic:
    a booking's confirmation is queued in the booking's transaction."""
    mail = _mail_writer(publisher)
    if mail is not None:
        atomic = True
    for attempt in range(1, ATTEMPTS + 1):
        try:
            result, changes, mails = await _attempt(db, now, work, atomic=atomic, mail=mail)
        except asyncpg.DeadlockDetectedError as exc:
            if attempt == ATTEMPTS:
                raise ServiceUnavailable("Too much contention; try again") from exc
            log.info("deadlock, running the transaction again (attempt %d)", attempt + 1)
            continue
        if mails:
            queued_metric("email", mails)
        await publisher.publish(changes)
        return result
    raise AssertionError("unreachable")


async def _attempt(
    db: Connection | Pool, now: datetime, work: Work[T], *, atomic: bool, mail: MailWriter | None
) -> tuple[T, Changes, int]:
    async with _connection_of(db) as conn:
        # Webhooks: a unit some endpoint may hear about is one transaction, its events
        # queued in it (app/services/webhooks.py; the hint is re-read at most every 1 s).
        hooks = await webhooks.any_wanted(conn)
        atomic = atomic or hooks
        uow = UnitOfWork(conn, now, Outbox(mail, webhooks=hooks))
        if not atomic:
            result = await work(uow)
            if uow.outbox.pending:
                raise AssertionError("notifications are written in a transaction: atomic=True")
            return result, await uow.outbox.flush(conn, now=now), 0
        async with conn.transaction():
            result = await work(uow)
            changes = await uow.outbox.flush(conn, now=now)
        return result, changes, uow.outbox.mails_queued


@asynccontextmanager
async def _connection_of(db: Connection | Pool) -> AsyncIterator[Connection]:
    if isinstance(db, asyncpg.Pool):
        async with connection(db) as conn:
            yield conn
    else:
        yield db
