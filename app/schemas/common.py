"""Types shared by the request/response models."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

# Ids are positive 64-bit integers; anything else is a 422.
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Area = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


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
NewPassword = Annotated[str, AfterValidator(_min_password), AfterValidator(_bcrypt_length)]
# A password being checked: any non-empty string bcrypt can take.
Password = Annotated[str, Field(min_length=1), AfterValidator(_bcrypt_length)]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# Every time in a response is UTC, serialised with a trailing Z.
UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
