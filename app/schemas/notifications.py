"""Notifications: responses."""

from typing import Any

from pydantic import BaseModel, Field

from app.models import NotificationType
from app.schemas.common import UtcDatetime
from app.schemas.seats import Page


class NotificationQuery(Page):
    unread_only: bool = False


class NotificationOut(BaseModel):
    id: int
    type: NotificationType
    data: dict[str, Any] = Field(description="The ids and times the event is about")
    created_at: UtcDatetime
    read_at: UtcDatetime | None


class NotificationList(BaseModel):
    items: list[NotificationOut]
    total: int
