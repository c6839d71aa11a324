"""Row models and enums shared by the layers. Rows become these at the db/ boundary."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class Role(StrEnum):
    STUDENT = "student"
    ADMIN = "admin"


class SeatStatus(StrEnum):
    ACTIVE = "ACTIVE"
    MAINTENANCE = "MAINTENANCE"
    CLOSED = "CLOSED"


class ReservationStatus(StrEnum):
    HELD = "HELD"  # a waitlist offer waiting to be claimed
    CONFIRMED = "CONFIRMED"
    CHECKED_IN = "CHECKED_IN"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    NO_SHOW = "NO_SHOW"


# The statuses the exclusion constraints guard: they hold the seat and the user's time.
ACTIVE_RESERVATION_STATUSES = (
    ReservationStatus.HELD,
    ReservationStatus.CONFIRMED,
    ReservationStatus.CHECKED_IN,
)
# The statuses a branch quota counts: a no-show does not give the time back, a
# cancellation does (api.md, "Policy per branch").
QUOTA_STATUSES = (
    *ACTIVE_RESERVATION_STATUSES,
    ReservationStatus.COMPLETED,
    ReservationStatus.NO_SHOW,
)


class WaitlistStatus(StrEnum):
    WAITING = "WAITING"
    OFFERED = "OFFERED"
    CLAIMED = "CLAIMED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


class Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class User(Row):
    id: int
    student_id: str
    name: str
    email: str | None
    role: Role
    created_at: datetime


class UserWithPassword(User):
    password_hash: str


class TokenUser(Row):
    """Who is calling, from the verified JWT claims (no database round trip)."""

    id: int
    student_id: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class Reservation(Row):
    id: int
    user_id: int
    seat_id: int
    branch_id: int
    branch: str
    area: str
    label: str
    start_time: datetime
    end_time: datetime
    status: ReservationStatus
    created_at: datetime
    checked_in_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    offer_expires_at: datetime | None
    # The branch's own check-in policy (None: the global setting; app/services/policy.py).
    branch_checkin_early_minutes: float | None = None
    branch_grace_minutes: float | None = None


class WaitlistEntry(Row):
    id: int
    user_id: int
    seat_id: int | None
    branch_id: int
    branch: str
    start_time: datetime
    end_time: datetime
    status: WaitlistStatus
    position: int | None
    offer_expires_at: datetime | None
    reservation_id: int | None
    created_at: datetime


class NotificationType(StrEnum):
    WAITLIST_OFFER = "waitlist.offer"
    WAITLIST_EXPIRED = "waitlist.expired"
    RESERVATION_NO_SHOW = "reservation.no_show"
    RESERVATION_CANCELLED = "reservation.cancelled"
    RESERVATION_REMINDER = "reservation.reminder"


class Notification(Row):
    id: int
    user_id: int
    type: NotificationType
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None
