"""The outbox as staff see it (GET /admin/outbox, an extension) and the caller's
e-mail settings (PATCH /auth/me)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictBool

from app.schemas.auth import MeOut
from app.schemas.common import Name, UtcDatetime
from app.schemas.seats import Page


class OutboxQuery(Page):
    status: Literal["pending", "sent", "dead"] | None = Field(
        None, description="Only messages in this status (all when absent)"
    )


class OutboxMessageOut(BaseModel):
    id: int
    channel: Literal["email", "webhook"]
    kind: str | None = Field(description="What the message is about (e.g. `waitlist_offer`)")
    status: Literal["pending", "sent", "dead"]
    attempts: int
    next_attempt_at: UtcDatetime
    created_at: UtcDatetime
    sent_at: UtcDatetime | None
    last_error: str | None
    recipient: str | None = Field(description="The e-mail address (e-mail messages)")
    subject: str | None = Field(description="The subject line (e-mail messages)")


class OutboxList(BaseModel):
    items: list[OutboxMessageOut]
    total: int


class MePatch(BaseModel):
    """Fields to change; an absent field is left as it is, ``email: null`` removes it."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr | None = Field(default=None, max_length=254)
    # Absent: kept (the default is never validated); null is refused like any non-string.
    name: Name = Field(default=None)  # type: ignore[assignment]
    email_notifications: StrictBool = Field(  # type: ignore[assignment]
        default=None, description="false: no e-mail at all (the in-app notifications go on)"
    )


class MeSettingsOut(MeOut):
    email_notifications: bool = Field(description="Whether e-mail is sent to this account")
