"""Webhook endpoints and their deliveries (api.md, "Notifications beyond the app")."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import UtcDatetime
from app.schemas.seats import Page

WebhookEvent = Literal[
    "reservation.created",
    "reservation.cancelled",
    "reservation.checked_in",
    "reservation.no_show",
    "reservation.completed",
    "waitlist.offer",
    "seat.updated",
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=2000,
        # ASCII controls and space spelled out, not \s: JSON Schema's regex dialect and
        # pydantic's disagree on which other characters \s means (U+0085, for one).
        pattern=r"^https?://[^\x00-\x20/?#]+(?:[/?#][^\x00-\x20]*)?$",
        description="http(s) URL. Refused (422 `webhook_url_refused`) when its name does "
        "not resolve or resolves to a loopback, private, link-local or reserved address "
        "(unless WEBHOOK_ALLOW_PRIVATE=true), or it holds credentials: no JSON Schema "
        "keyword can say so",
    )
    events: list[WebhookEvent] = Field(min_length=1, max_length=7)
    description: str | None = Field(default=None, max_length=500)


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str | None
    active: bool = Field(description="false after 24 hours of failed deliveries")
    created_at: UtcDatetime
    failing_since: UtcDatetime | None = Field(
        description="Extension: since when deliveries have failed without a success"
    )
    disabled_at: UtcDatetime | None = Field(description="Extension: when it was set inactive")


class WebhookCreated(WebhookOut):
    secret: str = Field(description="`whsec_...`: shown this once, never again")


class DeliveryOut(BaseModel):
    id: int
    message_id: str = Field(description="The `webhook-id` header (the same on every retry)")
    event: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None = Field(description="HTTP status of the last attempt")
    last_attempt_at: UtcDatetime | None
    next_attempt_at: UtcDatetime | None = Field(description="Pending deliveries only")
    last_error: str | None = Field(description="Extension: why the last attempt failed")


class DeliveryQuery(Page):
    pass
