"""Seat suggestions: the query and the answer of GET /seats/suggest."""

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError

from app.errors import InvalidInterval
from app.schemas.common import Area, Instant, Name, UtcDatetime
from app.schemas.seats import ListedSeatOut


def _at_least_15(minutes: int) -> int:
    # A duration is an interval: out of range is the contract's 422 invalid_interval, as
    # the upper bound (which needs the settings) is in app/services/suggest.py.
    if minutes < 15:
        raise PydanticCustomError(InvalidInterval.code, "duration_minutes must be at least 15")
    return minutes


class SuggestQuery(BaseModel):
    branch: Name | None = Field(
        None, description="Branch name: only its seats (an unknown name: no items, as GET /seats)"
    )
    area: Area | None = Field(None, description="Preferred area (ranks first, does not filter)")
    has_power: bool | None = Field(
        None, description="Preferred: with (true) or without (false) a power socket"
    )
    has_monitor: bool | None = Field(
        None, description="Preferred: with (true) or without (false) a monitor"
    )
    start_time: Instant | None = Field(
        None,
        description="Default now; not in the past (60 s of clock skew allowed) nor beyond "
        "BOOKING_HORIZON_DAYS, else 422 `invalid_interval`",
    )
    duration_minutes: Annotated[
        int,
        AfterValidator(_at_least_15),
        Field(
            json_schema_extra={"minimum": 15},
            description="15 to MAX_RESERVATION_HOURS x 60, else 422 `invalid_interval`",
        ),
    ] = 120
    limit: int = Field(5, ge=1, le=20, description="At most this many suggestions (1 to 20)")


class SuggestionOut(BaseModel):
    seat: ListedSeatOut = Field(description="The seat as GET /seats lists it, for this interval")
    start_time: UtcDatetime = Field(
        description="The asked start, or (when no seat is free for all of the asked interval) "
        "the earliest time today at which this seat is"
    )
    end_time: UtcDatetime = Field(description="start_time + duration_minutes")
    free_until: UtcDatetime | None = Field(
        description="When the seat stops being bookable after end_time: its next reservation "
        "or the branch's closing time, whichever is first; null when neither comes within "
        "24 hours after end_time"
    )
    score: float = Field(description="Higher is better; only the order means anything")
    reasons: list[str] = Field(description="Why it is suggested, in sentences for the student")


class SuggestionList(BaseModel):
    items: list[SuggestionOut]
