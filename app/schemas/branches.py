"""Branch hours, closures and policy: queries and responses (api.md, "Branches: ids,
hours, closures, policy")."""

from datetime import date
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.errors import InvalidInterval
from app.schemas.common import Day, UtcDatetime
from app.schemas.reservations import SeatRef
from app.schemas.seats import BranchOut, Interval
from app.services import openings

_OPENS = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_CLOSES = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"


def _date_text(value: object) -> object:
    # In a JSON body a date is text: not a number read as Unix time.
    if not isinstance(value, str):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


BodyDay = Annotated[Day, BeforeValidator(_date_text)]


class OpeningSpan(BaseModel):
    opens: str = Field(
        description="Local wall-clock time HH:MM", examples=["08:00"], pattern=_OPENS
    )
    closes: str = Field(
        description="HH:MM after `opens`; may be 24:00", examples=["22:00"], pattern=_CLOSES
    )


class WeeklyHours(BaseModel):
    """Local intervals per weekday, sorted, not overlapping; an empty day is closed."""

    monday: list[OpeningSpan]
    tuesday: list[OpeningSpan]
    wednesday: list[OpeningSpan]
    thursday: list[OpeningSpan]
    friday: list[OpeningSpan]
    saturday: list[OpeningSpan]
    sunday: list[OpeningSpan]


class PolicyOut(BaseModel):
    """The rules in force at the branch: its own values, else the global settings."""

    max_reservation_hours: float
    booking_horizon_days: float
    checkin_early_minutes: float
    grace_minutes: float
    claim_minutes: float
    max_bookings_per_day: int | None = Field(description="Per student and local day; null: none")
    max_hours_per_week: float | None = Field(description="Per student and ISO week; null: none")


class BranchDetailOut(BranchOut):
    hours: WeeklyHours
    policy: PolicyOut


class HoursQuery(BaseModel):
    from_: Day | None = Field(
        None, alias="from", description="First local date (default: today at the branch)"
    )
    to: Day | None = Field(
        None,
        description="Last local date, inclusive (default: `from` and the six days after); "
        "at most 62 days in all, else 422 `invalid_interval`",
    )


class ClosureNote(BaseModel):
    reason: str


class DayHoursOut(BaseModel):
    date: date
    open: list[Interval] = Field(description="The day's openings as UTC instants")
    closure: ClosureNote | None = Field(description="The closure deciding this day, if any")


class BranchHoursOut(BaseModel):
    branch_id: int
    timezone: str
    days: list[DayHoursOut]


def _valid_spans(spans: list[OpeningSpan]) -> list[OpeningSpan]:
    openings.parse_spans([span.model_dump() for span in spans])  # raises ValueError
    return spans


Spans = Annotated[list[OpeningSpan], AfterValidator(_valid_spans)]


class WeeklyIn(BaseModel):
    """The weekly template to set; a day left out is closed. Each day's intervals open
    before they close, are sorted and do not overlap (else 422)."""

    model_config = ConfigDict(extra="forbid")

    monday: Spans = []
    tuesday: Spans = []
    wednesday: Spans = []
    thursday: Spans = []
    friday: Spans = []
    saturday: Spans = []
    sunday: Spans = []


class HoursPut(BaseModel):
    weekly: WeeklyIn
    cancel_conflicting: StrictBool = Field(
        False, description="Cancel the reservations that no longer fit (else only listed)"
    )


class ConflictOut(BaseModel):
    """A reservation the new hours do not hold: enough for staff to decide."""

    id: int
    user_id: int
    seat: SeatRef
    start_time: UtcDatetime
    end_time: UtcDatetime
    status: str


class HoursChangeOut(BaseModel):
    branch_id: int
    hours: WeeklyHours
    conflicts: list[int] = Field(
        description="Active reservations that have not ended and no longer fit the hours "
        "(cancelled with `cancel_conflicting`)"
    )
    conflicting: list[ConflictOut] = Field(
        description="(An extension) the same reservations with their seat and times"
    )


class ClosureCreate(BaseModel):
    date_from: BodyDay
    date_to: BodyDay = Field(
        description="Inclusive; not before date_from (else 422 `invalid_interval`)"
    )
    reason: str = Field(min_length=1, max_length=200, description="Told to whoever it cancels")
    open: Spans | None = Field(None, description="Special hours instead of closed all day")

    @model_validator(mode="after")
    def _ordered(self) -> "ClosureCreate":
        if self.date_to < self.date_from:
            # The contract's 422 `invalid_interval`, as for start_time/end_time.
            raise PydanticCustomError(InvalidInterval.code, "date_to must not be before date_from")
        return self


class ClosureQuery(BaseModel):
    from_: Day | None = Field(None, alias="from", description="Closures ending on or after")
    to: Day | None = Field(None, description="Closures starting on or before")


class ClosureOut(BaseModel):
    id: int
    branch_id: int
    date_from: date
    date_to: date
    reason: str
    open: list[OpeningSpan] | None
    cancelled: list[int] = Field(description="The reservations this closure cancelled")


_BACK_TO_GLOBAL = "; null: back to the global setting"


class PolicyPut(BaseModel):
    """The policy fields to change; a field left out stays as it is, `null` returns it to
    the global setting (quotas: none)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_reservation_hours: float | None = Field(
        None, gt=0, le=168, description="Longest reservation" + _BACK_TO_GLOBAL
    )
    booking_horizon_days: float | None = Field(
        None, gt=0, le=366, description="How far ahead one can book" + _BACK_TO_GLOBAL
    )
    checkin_early_minutes: float | None = Field(
        None, ge=0, le=1440, description="Check-in opens this early" + _BACK_TO_GLOBAL
    )
    grace_minutes: float | None = Field(
        None, ge=0, le=1440, description="Check-in closes this late, then no-show" + _BACK_TO_GLOBAL
    )
    claim_minutes: float | None = Field(
        None, gt=0, le=1440, description="Time to claim a waitlist offer" + _BACK_TO_GLOBAL
    )
    max_bookings_per_day: int | None = Field(
        None, ge=0, le=1000,
        description="Reservations per student starting on one local day" + _BACK_TO_GLOBAL,
    )  # fmt: skip
    max_hours_per_week: float | None = Field(
        None, ge=0, le=168,
        description="Booked hours per student in one ISO week, local time" + _BACK_TO_GLOBAL,
    )  # fmt: skip

    @field_validator("*", mode="before")
    @classmethod
    def _json_number(cls, value: object) -> object:
        # A JSON number: not a boolean (Python's bool is an int) nor a numeric string;
        # 141.0 stays an integer, as in JSON Schema.
        if isinstance(value, bool | str):
            raise ValueError("must be a JSON number")
        return value


class QuotaUse(BaseModel):
    limit: float | None = Field(description="The branch's quota; null: none")
    used: float = Field(description="Used so far (cancelled reservations give it back)")


class QuotaUseOut(BaseModel):
    """The caller's use of a branch's quotas on a local day and in its ISO week."""

    branch_id: int
    date: date
    iso_week: str = Field(examples=["2026-W49"])
    bookings_per_day: QuotaUse = Field(description="`max_bookings_per_day`")
    hours_per_week: QuotaUse = Field(description="`max_hours_per_week`")


class QuotaQuery(BaseModel):
    date: Day | None = Field(None, description="A local date (default: today at the branch)")
