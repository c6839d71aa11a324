"""Branch hours, closures and policy: queries and responses (api.md, "Branches: ids,
hours, closures, policy")."""

from datetime import date

from pydantic import BaseModel, Field

from app.schemas.common import Day
from app.schemas.seats import BranchOut, Interval


class OpeningSpan(BaseModel):
    opens: str = Field(description="Local wall-clock time HH:MM", examples=["08:00"])
    closes: str = Field(description="HH:MM after `opens`; may be 24:00", examples=["22:00"])


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
