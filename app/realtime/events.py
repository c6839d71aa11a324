"""What a transaction changed that others must hear about once it has committed."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.models import Notification

# The longest the seat clock ticker (app/realtime/clock_ticker.py) sleeps: a write that puts
# a reservation's start or end nearer than this in the future wakes the tickers.
CLOCK_HORIZON = timedelta(seconds=30)


@dataclass(frozen=True)
class SeatState:
    """A ``seat.availability`` event: the seat's availability at this moment."""

    seat_id: int
    branch: str
    available: bool
    status: str

    def as_json(self) -> dict[str, Any]:
        return {
            "seat_id": self.seat_id,
            "branch": self.branch,
            "available": self.available,
            "status": self.status,
        }


@dataclass
class Changes:
    """Collected inside a transaction, published after COMMIT (a rollback publishes nothing)."""

    # Branches whose seats' availability changed for some interval: cache invalidation.
    branches: set[str] = field(default_factory=set)
    # Seats whose availability may have changed at this very moment: seat.availability.
    seats_now: set[int] = field(default_factory=set)
    seat_states: list[SeatState] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    # A changed reservation starts or ends within CLOCK_HORIZON: tickers must look again.
    boundary_soon: bool = False

    def reservation_changed(
        self, *, seat_id: int, branch: str, start: datetime, end: datetime, now: datetime
    ) -> None:
        self.branches.add(branch)
        if start <= now < end:
            self.seats_now.add(seat_id)
        self.boundaries(start, end, now=now)

    def boundaries(self, *moments: datetime, now: datetime) -> None:
        """A reservation that starts or ends at ``moments`` was written."""
        self.boundary_soon |= any(now < m <= now + CLOCK_HORIZON for m in moments)

    def __bool__(self) -> bool:
        return bool(self.branches or self.seat_states or self.notifications or self.boundary_soon)
