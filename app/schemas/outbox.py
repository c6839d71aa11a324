"""The outbox as staff see it (GET /admin/outbox, an extension) and the caller's
e-mail settings (PATCH /auth/me)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

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
    name: Name | None = None
    email_notifications: bool | None = Field(
        default=None, description="false: no e-mail at all (the in-app notifications go on)"
    )

    @model_validator(mode="after")
    def _no_null_name(self) -> "MePatch":
        for field in ("name", "email_notifications"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class MeSettingsOut(MeOut):
    email_notifications: bool = Field(description="Whether e-mail is sent to this account")
