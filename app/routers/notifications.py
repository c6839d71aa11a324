"""Notifications (token required)."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import Conn, CurrentUser, Now, PathId
from app.errors import InvalidToken, NotAuthenticated, NotFound, error_responses
from app.schemas.notifications import NotificationList, NotificationOut, NotificationQuery
from app.services import notifications as notifications_service

router = APIRouter(
    tags=["notifications"], responses=error_responses(NotAuthenticated, InvalidToken)
)


@router.get("/notifications", response_model=NotificationList)
async def list_notifications(
    query: Annotated[NotificationQuery, Query()], user: CurrentUser, conn: Conn
) -> NotificationList:
    """Your notifications, newest first (`unread_only=true` for the unread ones)."""
    return await notifications_service.list_own(conn, user_id=user.id, query=query)


@router.post(
    "/notifications/{notification_id}/read",
    response_model=NotificationOut,
    responses=error_responses(NotFound),
)
async def read_notification(
    notification_id: PathId, user: CurrentUser, conn: Conn, now: Now
) -> NotificationOut:
    """Mark one of your notifications read (reading it again keeps the first time)."""
    return await notifications_service.mark_read(
        conn, user_id=user.id, notification_id=notification_id, now=now
    )
