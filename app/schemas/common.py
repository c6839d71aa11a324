"""Types shared by the request/response models."""

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StringConstraints
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


# What the schema says of the text fields (JSON Schema only; the validators above and
# below enforce it): no NUL, and something besides white space (which is stripped).
_TEXT_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
_NO_NUL = r"^[^\u0000]*$"


def _text(max_length: int) -> Any:
    return Field(
        json_schema_extra={"pattern": _TEXT_PATTERN},
        description=f"At most {max_length} characters, not only white space (which is "
        "stripped); no NUL",
    )


def _at_most(max_length: int) -> BeforeValidator:
    # The limit counts the text as sent, as the schema's maxLength does; stripping comes
    # after (a 60-character label of spaces and 50 letters is too long, not 50 letters).
    def check(value: object) -> object:
        if isinstance(value, str) and len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        return value

    return BeforeValidator(check)


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_plain_text),
    _at_most(200),
    _text(200),
]
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=50),
    AfterValidator(_plain_text),
    _at_most(50),
    _text(50),
]
Area = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_plain_text),
    _at_most(100),
    _text(100),
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


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date_text(value: object) -> object:
    # Pydantic would also read `0` or `1700000000` as a date (Unix time): the schema says
    # `format: date`, so a text that is not YYYY-MM-DD is a 422.
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


# The years the schema admits (1970..8999): a pattern on the date-time text. Offsets can
# move a time across the bounds by a few hours; the validators decide those.
_YEARS = r"^(19[7-9][0-9]|[2-8][0-9]{3})-"

# A moment given by a client: with an offset (naive is a 422), between 1970 and 9000.
Instant = Annotated[
    AwareDatetime,
    AfterValidator(_reasonable_instant),
    Field(
        json_schema_extra={"pattern": _YEARS},
        description="ISO 8601 with an offset (`Z` or `+01:00`), from 1970-01-01 to before "
        "9000-01-01 (UTC)",
    ),
]
Day = Annotated[
    date,
    BeforeValidator(_iso_date_text),
    AfterValidator(_reasonable_date),
    Field(json_schema_extra={"pattern": _YEARS}, description="YYYY-MM-DD, 1970 to 8999"),
]


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


# A password being chosen: 8..72 bytes. The schema can only count characters: 8..72 of
# them, and the description says bytes (72 ASCII characters fit, 72 accented ones do not).
NewPassword = Annotated[
    str,
    AfterValidator(_plain_text),
    AfterValidator(_min_password),
    AfterValidator(_bcrypt_length),
    Field(
        json_schema_extra={"minLength": 8, "maxLength": 72, "pattern": _NO_NUL},
        description="8 to 72 bytes in UTF-8 (bcrypt's limit); no NUL",
    ),
]
# A password being checked: any non-empty string bcrypt can take.
Password = Annotated[
    str,
    Field(
        min_length=1,
        json_schema_extra={"maxLength": 72, "pattern": _NO_NUL},
        description="1 to 72 bytes in UTF-8; no NUL",
    ),
    AfterValidator(_plain_text),
    AfterValidator(_bcrypt_length),
]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# Every time in a response is UTC, serialised with a trailing Z.
UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
