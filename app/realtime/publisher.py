"""After COMMIT: invalidate the seat cache, then fan the changes out to streams."""

from app.cache import SeatCache
from app.realtime.broker import Broker
from app.realtime.events import Changes
from app.services.outbox import MailWriter


class Publisher:
    def __init__(self, cache: SeatCache, broker: Broker, mail: MailWriter | None = None) -> None:
        self.cache = cache
        self.broker = broker
        # The process's e-mail writer (SMTP_URL set), which units of work queue mail with.
        self.mail = mail

    async def publish(self, changes: Changes) -> None:
        """Call only after the transaction that made ``changes`` committed."""
        # Cache first: once a stream says a seat is taken, a listing must agree.
        await self.cache.seats_changed(changes.branches)
        await self.broker.publish(changes)
