"""Seats and branches: queries and responses."""

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from app.models import SeatStatus
from app.schemas.common import Area, Day, Instant, Name, UtcDatetime, ordered_interval


class Page(BaseModel):
    limit: int = Field(100, ge=1, le=500, description="Page size (at most 500)")
    offset: int = Field(0, ge=0, le=2**63 - 1, description="Rows to skip")


class SeatQuery(Page):
    branch: Name | None = Field(None, description="Branch name")
    area: Area | None = None
    has_power: bool | None = None
    has_monitor: bool | None = None
    status: SeatStatus | None = None
    available_only: bool = Field(False, description="Only seats free for the interval (or now)")
    start_time: Instant | None = Field(
        None,
        description="With end_time: compute `available` for [start_time, end_time). Give both "
        "or neither, end_time after start_time (else 422 `invalid_interval`)",
    )
    end_time: Instant | None = Field(None, description="After start_time; only with start_time")

    _interval = model_validator(mode="after")(ordered_interval)


class IntervalQuery(BaseModel):
    start_time: Instant
    end_time: Instant = Field(description="After start_time (else 422 `invalid_interval`)")

    _interval = model_validator(mode="after")(ordered_interval)


class DayQuery(BaseModel):
    date: Day | None = Field(None, description="The day for `busy` (default: today, branch time)")


class Interval(BaseModel):
    start_time: UtcDatetime
    end_time: UtcDatetime


class SeatOut(BaseModel):
    id: int
    branch: str
    area: str
    label: str
    has_power: bool
    has_monitor: bool
    status: SeatStatus
    available: bool = Field(
        description="ACTIVE and free of HELD/CONFIRMED/CHECKED_IN reservations for the asked "
        "interval, or at this moment when none was asked"
    )


SeatStateWord = Literal[
    "free", "held", "booked", "occupied", "maintenance", "closed", "outside_hours"
]


class ListedSeatOut(SeatOut):
    state: SeatStateWord = Field(
        description="The seat for the asked interval (or now), in the web app's words: "
        "`maintenance` or `closed` (its status), else `occupied` (a CHECKED_IN reservation), "
        "`booked` (CONFIRMED), `held` (a HELD waitlist offer), `outside_hours` (nothing active "
        "but its branch is not open for the whole time), `free` (nothing active); when "
        "several reservations overlap the interval, the first of these that applies"
    )


class SeatList(BaseModel):
    items: list[ListedSeatOut]
    total: int


class SeatDetailOut(ListedSeatOut):
    busy: list[Interval] = Field(description="Booked intervals overlapping the day (no identities)")


class AvailabilityOut(BaseModel):
    seat_id: int
    start_time: UtcDatetime
    end_time: UtcDatetime
    available: bool
    conflicts: list[Interval]


class BranchOut(BaseModel):
    id: int
    name: str
    timezone: str = Field(description="IANA time zone of the branch's hours and days")
    total_seats: int = Field(description="All seats, whatever their status")
    available_now: int = Field(description="ACTIVE seats nobody holds at this moment")
    reserved_now: int = Field(description="Seats held by a HELD or CONFIRMED reservation now")
    occupied_now: int = Field(description="Seats whose reservation is CHECKED_IN now")
    with_power: int
    with_monitor: int
    areas: list[str]
    open_now: bool = Field(description="Inside one of the branch's openings at this moment")
    next_change_at: UtcDatetime | None = Field(
        description="The next instant the branch opens or closes; null when open around the "
        "clock with no closure ahead"
    )
