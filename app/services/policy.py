"""Per-branch policy: each branch's own values where staff set them, else the global
settings (quotas: none). The one place that decides which rule value is in force."""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from app.models import Reservation
from app.settings import Settings

# The branch columns (app/db/branches.py POLICY_COLUMNS) in contract order.
FIELDS = (
    "max_reservation_hours",
    "booking_horizon_days",
    "checkin_early_minutes",
    "grace_minutes",
    "claim_minutes",
    "max_bookings_per_day",
    "max_hours_per_week",
)


@dataclass(frozen=True)
class Policy:
    """The rules in force at one branch."""

    max_reservation_hours: float
    booking_horizon_days: float
    checkin_early_minutes: float
    grace_minutes: float
    claim_minutes: float
    max_bookings_per_day: int | None
    max_hours_per_week: float | None

    @property
    def max_reservation(self) -> timedelta:
        return timedelta(hours=self.max_reservation_hours)

    @property
    def booking_horizon(self) -> timedelta:
        return timedelta(days=self.booking_horizon_days)

    @property
    def checkin_early(self) -> timedelta:
        return timedelta(minutes=self.checkin_early_minutes)

    @property
    def grace(self) -> timedelta:
        return timedelta(minutes=self.grace_minutes)

    @property
    def claim_window(self) -> timedelta:
        return timedelta(minutes=self.claim_minutes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def global_defaults(settings: Settings) -> dict[str, Any]:
    return {
        "max_reservation_hours": settings.MAX_RESERVATION_HOURS,
        "booking_horizon_days": settings.BOOKING_HORIZON_DAYS,
        "checkin_early_minutes": settings.CHECKIN_EARLY_MINUTES,
        "grace_minutes": settings.GRACE_MINUTES,
        "claim_minutes": settings.CLAIM_MINUTES,
        "max_bookings_per_day": None,
        "max_hours_per_week": None,
    }


def effective(settings: Settings, own: Mapping[str, Any]) -> Policy:
    """The branch's values (``own``: its policy columns, None = not set) over the
    global settings."""
    defaults = global_defaults(settings)
    return Policy(
        **{name: own[name] if own.get(name) is not None else defaults[name] for name in FIELDS}
    )


def global_policy(settings: Settings) -> Policy:
    """The policy of a branch that sets nothing."""
    return effective(settings, {})


def checkin_window(r: Reservation, settings: Settings) -> tuple[datetime, datetime]:
    """When ``r`` can be checked in: from start - early to start + grace, its branch's
    values (carried on the row) over the global ones. The SQL twin of this rule is
    app/db/reservations.py ``branch_minutes``."""
    early = r.branch_checkin_early_minutes
    grace = r.branch_grace_minutes
    opens = r.start_time - (settings.checkin_early if early is None else timedelta(minutes=early))
    deadline = r.start_time + (settings.grace if grace is None else timedelta(minutes=grace))
    return opens, deadline
