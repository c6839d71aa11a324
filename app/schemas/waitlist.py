"""Waitlist: requests and responses."""

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.models import WaitlistStatus
from app.schemas.common import Id, Instant, Name, UtcDatetime, ordered_interval
from app.schemas.reservations import ReservationOut


class WaitlistJoin(BaseModel):
    # "Exactly one of seat_id and branch" in JSON Schema terms (null counts as absent).
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["seat_id"], "properties": {"seat_id": {"type": "integer"}}},
                {"required": ["branch"], "properties": {"branch": {"type": "string"}}},
            ]
        }
    )

    seat_id: Id | None = Field(None, description="Wait for this seat (or give `branch`)")
    branch: Name | None = Field(None, description="Wait for any seat of this branch")
    start_time: Instant
    end_time: Instant = Field(
        description="After start_time, at most MAX_RESERVATION_HOURS later (half-open interval)"
    )

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.seat_id is None) == (self.branch is None):
            raise ValueError("give exactly one of seat_id and branch")
        return self

    _interval = model_validator(mode="after")(ordered_interval)  # after _one_target


class WaitlistEntryOut(BaseModel):
    id: int
    user_id: int
    seat_id: int | None = Field(description="null for a branch-level entry")
    branch: str
    start_time: UtcDatetime
    end_time: UtcDatetime
    status: WaitlistStatus
    position: int | None = Field(
        description="1-based place in its queue (creation order) while WAITING, else null"
    )
    offer_expires_at: UtcDatetime | None
    reservation_id: int | None = Field(description="The offered (HELD) reservation, if any")
    created_at: UtcDatetime


class WaitlistList(BaseModel):
    items: list[WaitlistEntryOut]
    total: int


class ClaimOut(BaseModel):
    entry: WaitlistEntryOut
    reservation: ReservationOut


class WaitlistOfferNow(BaseModel):
    """Staff: offer a seat's free time to its queues now (the seed's NotifyUsers)."""

    start_time: Instant
    end_time: Instant = Field(description="After start_time (else 422 `invalid_interval`)")

    _interval = model_validator(mode="after")(ordered_interval)


class OffersMade(BaseModel):
    offered: list[WaitlistEntryOut] = Field(description="The entries offered, in queue order")
