"""Reservations: requests and responses."""

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from app.models import ReservationStatus
from app.schemas.common import Id, Instant, UtcDatetime, ordered_interval
from app.schemas.seats import Page

# Header value of an Idempotency-Key: 1..255 visible ASCII characters (a UUID fits).
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,255}$"


class ReservationCreate(BaseModel):
    seat_id: Id
    start_time: Instant = Field(description="With an offset; not in the past")
    end_time: Instant = Field(
        description="After start_time, at most MAX_RESERVATION_HOURS later (half-open interval)"
    )

    _interval = model_validator(mode="after")(ordered_interval)


class ReservationQuery(Page):
    scope: Literal["upcoming", "history", "all"] = Field(
        "upcoming",
        description="`upcoming`: not yet ended (soonest first); `history`: ended in the last "
        "30 days (latest first); `all`: everything (latest first)",
    )
    status: ReservationStatus | None = None


class SeatRef(BaseModel):
    id: int
    branch: str
    area: str
    label: str


class ReservationOut(BaseModel):
    id: int
    user_id: int
    seat_id: int
    seat: SeatRef
    start_time: UtcDatetime
    end_time: UtcDatetime
    status: ReservationStatus
    created_at: UtcDatetime
    checked_in_at: UtcDatetime | None
    cancelled_at: UtcDatetime | None
    cancel_reason: str | None
    check_in_opens_at: UtcDatetime = Field(description="start_time - CHECKIN_EARLY_MINUTES")
    check_in_deadline: UtcDatetime = Field(
        description="start_time + GRACE_MINUTES; not checked in by then, it becomes NO_SHOW"
    )
    offer_expires_at: UtcDatetime | None = Field(
        description="Extension: for a HELD waitlist offer, when it lapses unless claimed"
    )


class ReservationList(BaseModel):
    items: list[ReservationOut]
    total: int


class ReservationExtend(BaseModel):
    """``POST /reservations/{id}/extend``."""

    end_time: Instant = Field(
        description="With an offset. The new end: later than the current one; the whole "
        "reservation, start to this end, within the branch's max_reservation_hours, inside "
        "one opening of the branch and within its quotas (half-open interval)"
    )
