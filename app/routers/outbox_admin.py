"""Staff visibility into the outbox (an extension to the contract): what waits, what
went out, and what was given up (dead) and why."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import AdminUser, Conn
from app.errors import Forbidden, InvalidToken, NotAuthenticated, error_responses
from app.schemas.outbox import OutboxList, OutboxQuery
from app.services import outbox as outbox_service

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses=error_responses(NotAuthenticated, InvalidToken, Forbidden),
)


@router.get("/outbox", response_model=OutboxList)
async def list_outbox(
    query: Annotated[OutboxQuery, Query()], admin: AdminUser, conn: Conn
) -> OutboxList:
    """Extension: outgoing messages (e-mail; later webhooks), newest first, optionally of
    one status: `pending` (waiting or being retried: `attempts`, `next_attempt_at`,
    `last_error`), `sent`, or `dead` (refused for good, or still failing 24 hours after
    it was queued; never sent). Sent messages are kept for 7 days."""
    return await outbox_service.list_messages(conn, query)
