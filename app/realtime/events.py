"""What a transaction changed that others must hear about once it has committed."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.models import Notification


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

    def reservation_changed(
        self, *, seat_id: int, branch: str, start: datetime, end: datetime, now: datetime
    ) -> None:
        self.branches.add(branch)
        if start <= now < end:
            self.seats_now.add(seat_id)

    def __bool__(self) -> bool:
        return bool(self.branches or self.seat_states or self.notifications)
