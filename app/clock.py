"""The service's clock: one object in the app state that every reader of "now" asks.

Routes get it through the ``Now`` dependency, the cached-listing fast path and the
sweep scheduler from the state directly, so a test that swaps the clock
(``create_app(settings, clock=...)``) moves all three together.
"""

from datetime import datetime
from typing import Protocol

from app.timeutil import utcnow


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return utcnow()
