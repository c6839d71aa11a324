"""Seat codes: the scan request and answer, and the codes staff print."""

from typing import Literal

from pydantic import BaseModel, Field

from app.schemas.common import UtcDatetime
from app.schemas.reservations import ReservationOut

CODE_DESCRIPTION = (
    "The seat's code: base32(HMAC-SHA256(SEAT_CODE_SECRET, `seat:{id}`))[:10] (RFC 4648 "
    "upper case, no padding), compared case-insensitively"
)


class ScanIn(BaseModel):
    k: str | None = Field(
        None,
        description=CODE_DESCRIPTION + ". Wrong or missing: 404 `not_found`, as for an "
        "unknown seat",
    )


class ScanOut(BaseModel):
    action: Literal["checked_in", "walk_in"] = Field(
        description="`checked_in` (200): the caller's reservation of this seat, CONFIRMED "
        "with its check-in window open, was checked in (or was already CHECKED_IN and "
        "covers now: a repeated scan); `walk_in` (201): the seat was free, a reservation "
        "from now was booked and checked in at once"
    )
    reservation: ReservationOut


class ScanConflictBody(BaseModel):
    """A 409: `seat_conflict` (taken now; `free_at` says when it frees up), `user_overlap`
    (the walk-in would overlap one of the caller's reservations), `seat_unavailable`
    (MAINTENANCE or CLOSED), `invalid_state` (the reservation changed meanwhile)."""

    detail: str
    code: str
    free_at: UtcDatetime | None = Field(
        None,
        description="With `seat_conflict`: when the seat frees up today (branch time zone), "
        "or null when it stays taken until the end of the day",
    )


class SeatCodeOut(BaseModel):
    seat_id: int
    k: str = Field(description=CODE_DESCRIPTION)
    url: str = Field(
        description="What the seat's QR code holds: `{PUBLIC_URL}/s/{id}?k={k}` (PUBLIC_URL "
        "unset: the scheme and host this request came in on)"
    )


class SeatCodeLine(SeatCodeOut):
    label: str
    area: str


class SeatCodeList(BaseModel):
    items: list[SeatCodeLine]
    total: int
