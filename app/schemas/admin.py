"""Administration: requests and responses."""

from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.models import ReservationStatus, Role, SeatStatus
from app.schemas.common import Area, Id, Instant, Label, Name, UtcDatetime, ordered_interval
from app.schemas.seats import Page
from app.settings import is_iana_timezone


def _iana(name: str) -> str:
    if not is_iana_timezone(name):
        raise ValueError(f"unknown IANA time zone {name!r} (e.g. Europe/Berlin)")
    return name


# The schema lists the zones this server knows (its tzdata), so clients can offer a choice.
TimeZoneName = Annotated[
    str,
    Field(max_length=64, json_schema_extra={"enum": sorted(available_timezones())}),
    AfterValidator(_iana),
]


class BranchCreate(BaseModel):
    name: Name
    timezone: TimeZoneName = Field("UTC", description="IANA time zone name, e.g. Europe/Berlin")


class BranchAdminOut(BaseModel):
    id: int
    name: str
    timezone: str
    created_at: UtcDatetime


class SeatCreate(BaseModel):
    branch: Name
    area: Area
    label: Label
    has_power: bool = False
    has_monitor: bool = False


class SeatPatch(BaseModel):
    """Any subset of the editable fields; `status` MAINTENANCE or CLOSED cancels the seat's
    active reservations that have not ended and withdraws its waitlist offers."""

    model_config = ConfigDict(extra="forbid")

    area: Area | None = None
    label: Label | None = None
    has_power: bool | None = None
    has_monitor: bool | None = None
    status: SeatStatus | None = None


class AdminReservationQuery(Page):
    seat_id: Id | None = None
    user_id: Id | None = None
    status: ReservationStatus | None = None
    start_time: Instant | None = Field(
        None,
        description="Only reservations overlapping [start_time, end_time). Give both or "
        "neither, end_time after start_time (else 422 `invalid_interval`)",
    )
    end_time: Instant | None = Field(None, description="After start_time; only with start_time")

    _interval = model_validator(mode="after")(ordered_interval)


class StatsQuery(BaseModel):
    branch: Name | None = None
    start_time: Instant
    end_time: Instant = Field(description="After start_time (else 422 `invalid_interval`)")

    _interval = model_validator(mode="after")(ordered_interval)


class HourCount(BaseModel):
    hour: int = Field(ge=0, le=23, description="Hour of day in the branch's time zone")
    reservations: int = Field(description="Reservations starting in that hour")


class BranchStats(BaseModel):
    branch: str
    reservations: int = Field(description="Reservations starting in [start_time, end_time)")
    checked_in: int = Field(description="Those ever checked in (CHECKED_IN or COMPLETED)")
    no_shows: int = Field(description="Those that ended NO_SHOW")
    no_show_rate: float = Field(
        ge=0, le=1, description="no_shows / (checked_in + no_shows); 0 when both are 0"
    )
    cancelled: int = Field(description="Those CANCELLED (by the student, staff or expiry)")
    utilization: float = Field(
        ge=0,
        le=1,
        description="Hours of checked-in reservations (final interval, clipped to the window) "
        "over the branch's ACTIVE seats x the window's hours (seats counted as they are now); "
        "capped at 1",
    )
    by_hour: list[HourCount] = Field(
        description="Extension (for the web app's chart): the same reservations by the hour "
        "of day their start falls in, in the branch's time zone; 24 rows, hours 0..23"
    )


class StatsOut(BaseModel):
    start_time: UtcDatetime
    end_time: UtcDatetime
    branches: list[BranchStats]


class UserQuery(BaseModel):
    student_id: Label = Field(description="The student ID people sign in with (exact match)")


class UserBriefOut(BaseModel):
    id: int
    student_id: str
    name: str
    role: Role


class AuditOut(BaseModel):
    id: int
    actor_id: int = Field(description="The admin who made the change")
    action: str = Field(description="e.g. branch.create, seat.create, seat.update, checkin")
    entity: str
    entity_id: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: UtcDatetime


class AuditList(BaseModel):
    items: list[AuditOut]
    total: int
