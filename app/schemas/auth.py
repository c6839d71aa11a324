"""Auth requests and responses."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from app.errors import ErrorBody, ValidationErrorBody
from app.models import Role
from app.schemas.common import Label, Name, NewPassword, Password, UtcDatetime


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    student_id: Label
    name: Name
    password: NewPassword = Field(description="8 to 72 bytes in UTF-8 (bcrypt's limit); no NUL")
    email: EmailStr | None = Field(default=None, max_length=254)


class LoginIn(BaseModel):
    student_id: Label
    password: Password


class TokenForm(BaseModel):
    """OAuth2 password flow (Swagger's Authorize button): ``username`` is the student_id."""

    username: Label
    password: Password
    grant_type: str | None = None
    scope: str = ""


class VerifyIn(BaseModel):
    # No min_length: an empty token is an invalid token (401), not malformed input (422).
    token: str = Field(
        max_length=4096, description="The JWT to check; an empty or bad one is 401 invalid_token"
    )


class UserOut(BaseModel):
    id: int
    student_id: str
    name: str
    email: str | None
    role: Role
    created_at: UtcDatetime


class MeOut(UserOut):
    suspended_until: UtcDatetime | None = Field(
        description="End of a fair-use booking suspension; null when not suspended"
    )


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (OAuth2 token type, not a secret)
    expires_at: UtcDatetime
    user: UserOut


class VerifyOut(BaseModel):
    valid: Literal[True] = True
    user_id: int
    student_id: str
    role: Role
    expires_at: UtcDatetime


class OAuth2ErrorBody(ErrorBody):
    """A refused ``/auth/token``: ours, plus RFC 6749's error fields."""

    error: Literal["invalid_grant", "invalid_request"]
    error_description: str


class OAuth2ValidationErrorBody(ValidationErrorBody):
    """A malformed ``/auth/token`` form: FastAPI's shape, plus RFC 6749's error fields."""

    error: Literal["invalid_request"]
    error_description: str
