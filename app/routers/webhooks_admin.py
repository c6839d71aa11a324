"""Webhook endpoints (api.md, "Notifications beyond the app"): staff register, list and
remove them, and read each one's delivery log."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.deps import AdminUser, Conn, Now, PathId, SettingsDep
from app.errors import Forbidden, InvalidToken, NotAuthenticated, NotFound, error_responses
from app.schemas.webhooks import (
    DeliveryOut,
    DeliveryQuery,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
)
from app.services import webhooks as webhooks_service
from app.services.webhooks import WebhookUrlRefused

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses=error_responses(NotAuthenticated, InvalidToken, Forbidden),
)


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    responses=error_responses(WebhookUrlRefused),
)
async def create_webhook(
    body: WebhookCreate, admin: AdminUser, conn: Conn, settings: SettingsDep, now: Now
) -> WebhookCreated:
    """Register an endpoint for some events. The answer holds its signing `secret`
    (`whsec_...`), shown this once. A URL whose name resolves to a loopback, private,
    link-local or reserved address is refused (422 `webhook_url_refused`) unless
    `WEBHOOK_ALLOW_PRIVATE=true`; it is checked again at every delivery."""
    return await webhooks_service.create(conn, settings, body, actor_id=admin.id, now=now)


@router.get("/webhooks", response_model=list[WebhookOut])
async def list_webhooks(admin: AdminUser, conn: Conn) -> list[WebhookOut]:
    """Every endpoint, oldest first (never its secret); `active` is false for one set
    inactive after 24 hours of failed deliveries."""
    return await webhooks_service.list_all(conn)


@router.get(
    "/webhooks/{webhook_id}", response_model=WebhookOut, responses=error_responses(NotFound)
)
async def get_webhook(webhook_id: PathId, admin: AdminUser, conn: Conn) -> WebhookOut:
    """Extension: one endpoint (never its secret)."""
    return await webhooks_service.get(conn, webhook_id)


@router.delete("/webhooks/{webhook_id}", status_code=204, responses=error_responses(NotFound))
async def delete_webhook(webhook_id: PathId, admin: AdminUser, conn: Conn, now: Now) -> Response:
    """Remove an endpoint and its delivery log; what it had pending is never sent."""
    await webhooks_service.delete(conn, webhook_id, actor_id=admin.id, now=now)
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=list[DeliveryOut],
    responses=error_responses(NotFound),
)
async def list_deliveries(
    webhook_id: PathId, query: Annotated[DeliveryQuery, Query()], admin: AdminUser, conn: Conn
) -> list[DeliveryOut]:
    """The endpoint's deliveries, newest first: `pending` (waiting or being retried),
    `delivered` (a 2xx answer) or `failed` (given up after 24 hours, or the endpoint was
    set inactive). `message_id` is the `webhook-id` header. Delivered ones are kept for
    7 days."""
    return await webhooks_service.deliveries(conn, webhook_id, query)
