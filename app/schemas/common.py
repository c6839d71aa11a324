"""Types shared by the request/response models."""

from datetime import UTC, date, datetime
from typing import Annotated, Protocol, TypeVar

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints
from pydantic_core import PydanticCustomError

from app.errors import InvalidInterval

# Ids are positive 64-bit integers; anything else is a 422.
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


def _plain_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and a lone surrogate is not UTF-8: refuse both here
    # (422) rather than fail in the database driver.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_plain_text),
]
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=50),
    AfterValidator(_plain_text),
]
Area = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_plain_text),
]

# Times the service can store and compute with (PostgreSQL, Python and the booking
# arithmetic all agree inside this range); anything else is a 422, not a 500.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _reasonable_instant(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must be between 1970 and 9000") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError("must be between 1970 and 9000")
    return value


def _reasonable_date(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError("must be between 1970 and 9000")
    return value


# A moment given by a client: with an offset (naive is a 422), between 1970 and 9000.
Instant = Annotated[AwareDatetime, AfterValidator(_reasonable_instant)]
Day = Annotated[date, AfterValidator(_reasonable_date)]


class _Timed(Protocol):
    @property
    def start_time(self) -> datetime | None: ...
    @property
    def end_time(self) -> datetime | None: ...


TimedT = TypeVar("TimedT", bound=_Timed)


def ordered_interval(model: TimedT) -> TimedT:
    """The one "end after start" rule, for every model with ``start_time`` and ``end_time``
    (apply it as ``_interval = model_validator(mode="after")(ordered_interval)``).

    Optional pairs must come both or neither; ``end_time`` must be after ``start_time``.
    Either failure is a validation error of type ``invalid_interval``, which the handler
    in app/errors.py answers as the contract says: 422 ``{detail, code: invalid_interval}``.
    The rules that need settings or the clock stay in app/services/rules.py."""
    start, end = model.start_time, model.end_time
    if (start is None) != (end is None):
        raise PydanticCustomError(
            InvalidInterval.code, "give both start_time and end_time, or neither"
        )
    if start is not None and end is not None and end <= start:
        raise PydanticCustomError(InvalidInterval.code, "end_time must be after start_time")
    return model


def _bcrypt_length(password: str) -> str:
    # bcrypt reads at most 72 bytes; silently ignoring the rest would be worse than refusing.
    if len(password.encode()) > 72:
        raise ValueError("password must be at most 72 bytes (UTF-8)")
    return password


def _min_password(password: str) -> str:
    if len(password.encode()) < 8:
        raise ValueError("password must be at least 8 bytes")
    return password


# A password being chosen: 8..72 bytes.
NewPassword = Annotated[
    str, AfterValidator(_plain_text), AfterValidator(_min_password), AfterValidator(_bcrypt_length)
]
# A password being checked: any non-empty string bcrypt can take.
Password = Annotated[
    str, Field(min_length=1), AfterValidator(_plain_text), AfterValidator(_bcrypt_length)
]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# Every time in a response is UTC, serialised with a trailing Z.
UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
