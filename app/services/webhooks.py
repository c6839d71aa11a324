"""Webhooks (api.md, "Notifications beyond the app"), per the Standard Webhooks spec.

Staff register endpoints (a URL, the events it takes); each gets a ``whsec_`` secret,
shown once. An event of a unit of work (app/services/notify.py collects them) becomes,
in the event's own transaction, one outbox row per active endpoint taking it
(app/db/webhooks.py): nothing is sent for a rolled-back change. The delivery job
(app/jobs/webhooks.py) posts them, signed, and retries for 24 hours.

Targets: an ``http(s)`` URL whose name resolves only to public addresses, unless
``WEBHOOK_ALLOW_PRIVATE=true``. The check is made when the endpoint is registered and
again at every delivery (DNS rebinding: a name may resolve elsewhere later), and the
delivery connects to the very address that was checked (``resolve_target``).

Which events anyone takes: every process keeps a hint, ``SUBSCRIBED``, read again when
a unit of work starts and it is older than ``HINT_TTL`` (1 s; at once on this process's
own admin calls). A unit of work no endpoint hears about stays on its fast path (a
booking's single statement, no transaction); otherwise it is one transaction and its
events one INSERT. An endpoint registered on another instance hears of events there
from at most ``HINT_TTL`` later.
"""

import asyncio
import base64
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args
from urllib.parse import urlsplit

from app.db import admin as admin_db
from app.db import webhooks as webhooks_db
from app.db.pool import Connection
from app.errors import DomainError, NotFound
from app.schemas.webhooks import (
    DeliveryOut,
    DeliveryQuery,
    WebhookCreate,
    WebhookCreated,
    WebhookEvent,
    WebhookOut,
)
from app.services import outbox as outbox_service
from app.settings import Settings
from app.timeutil import iso_z

EVENTS: tuple[str, ...] = get_args(WebhookEvent)  # in the spec's order
HINT_TTL = 1.0  # seconds
RESOLVE_TIMEOUT = 5.0  # seconds


class WebhookUrlRefused(DomainError):
    status_code, code, default_detail = 422, "webhook_url_refused", "This URL cannot be used"


class UnsafeTarget(Exception):
    """The URL's name does not resolve, or resolves to an address not allowed."""


# --- targets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedTarget:
    scheme: str
    host: str  # the name, for the Host header and TLS (SNI, certificate)
    port: int
    address: str  # the checked IP address to connect to
    path: str  # path and query

    @property
    def connect_url(self) -> str:
        """The URL with the checked address in place of the name."""
        ip = ipaddress.ip_address(self.address)
        literal = f"[{ip}]" if ip.version == 6 else str(ip)
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (tests replace this to act as DNS)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def parse_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL; UnsafeTarget if it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget("the URL must be http:// or https://")
    if not parts.hostname:
        raise UnsafeTarget("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("the URL must not hold credentials")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


async def resolve_target(url: str, *, allow_private: bool) -> ResolvedTarget:
    """Resolve the URL's name and check every address; the first one to connect to.
    Any address not public refuses the whole name (unless ``allow_private``)."""
    scheme, host, port, path = parse_url(url)
    try:
        addresses = await asyncio.wait_for(resolve(host, port), RESOLVE_TIMEOUT)
    except TimeoutError as exc:
        raise UnsafeTarget(f"{host} did not resolve within {RESOLVE_TIMEOUT:.0f} s") from exc
    except (OSError, UnicodeError) as exc:
        raise UnsafeTarget(f"{host} does not resolve: {exc}") from exc
    if not addresses:
        raise UnsafeTarget(f"{host} does not resolve")
    if not allow_private:
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            raise UnsafeTarget(
                f"{host} resolves to {refused[0]}, a loopback, private, link-local or "
                "reserved address (WEBHOOK_ALLOW_PRIVATE=true allows it)"
            )
    return ResolvedTarget(scheme, host, port, addresses[0], path)


# --- writing ----------------------------------------------------------------------------


class Hint:
    """The events some active endpoint takes, as this process last heard."""

    def __init__(self) -> None:
        self.events: set[str] = set()
        self.at = float("-inf")

    def set(self, events: set[str]) -> None:
        self.events, self.at = set(events), time.monotonic()

    def add(self, events: list[str]) -> None:
        self.events |= set(events)

    def wanted(self, event: str) -> bool:
        return event in self.events


SUBSCRIBED = Hint()


async def refresh_hint(conn: Connection) -> None:
    SUBSCRIBED.set(await webhooks_db.subscribed(conn))


async def any_wanted(conn: Connection) -> bool:
    """Whether some active endpoint takes some event (the hint, read again if stale)."""
    if time.monotonic() - SUBSCRIBED.at > HINT_TTL:
        await refresh_hint(conn)
    return bool(SUBSCRIBED.events)


def event_data(**data: Any) -> dict[str, Any]:
    return {k: iso_z(v) if isinstance(v, datetime) else v for k, v in data.items()}


async def write(
    conn: Connection, events: list[tuple[str, dict[str, Any]]], *, now: datetime
) -> int:
    """Queue the deliveries of a transaction's events (one statement); the rows made."""
    return await webhooks_db.queue(conn, events, now=now, stamp=iso_z(now))


def queued_metric(count: int) -> None:
    """dlsms_outbox_queued_total{channel="webhook"} (the e-mail channel's counter)."""
    outbox_service.queued_metric("webhook", count)


# --- staff ------------------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _audited(row: Any) -> dict[str, Any]:
    """What the audit log keeps of an endpoint (never its secret)."""
    return {"url": row["url"], "events": list(row["events"]), "description": row["description"]}


async def create(
    conn: Connection, settings: Settings, data: WebhookCreate, *, actor_id: int, now: datetime
) -> WebhookCreated:
    try:
        await resolve_target(data.url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE)
    except UnsafeTarget as exc:
        raise WebhookUrlRefused(str(exc)) from exc
    events: list[str] = [e for e in EVENTS if e in data.events]  # spec order, once each
    async with conn.transaction():
        row = await webhooks_db.insert_endpoint(
            conn, url=data.url, events=events, description=data.description,
            secret=new_secret(), now=now,
        )  # fmt: skip
        await admin_db.audit(
            conn, actor_id=actor_id, action="webhook.create", entity="webhook",
            entity_id=row["id"], before=None, after=_audited(row), now=now,
        )  # fmt: skip
    SUBSCRIBED.add(events)
    return WebhookCreated.model_validate(dict(row))


async def list_all(conn: Connection) -> list[WebhookOut]:
    return [WebhookOut.model_validate(dict(r)) for r in await webhooks_db.list_endpoints(conn)]


async def get(conn: Connection, endpoint_id: int) -> WebhookOut:
    row = await webhooks_db.get_endpoint(conn, endpoint_id)
    if row is None:
        raise NotFound("No such webhook endpoint")
    return WebhookOut.model_validate(dict(row))


async def delete(conn: Connection, endpoint_id: int, *, actor_id: int, now: datetime) -> None:
    async with conn.transaction():
        row = await webhooks_db.get_endpoint(conn, endpoint_id)
        if row is None or not await webhooks_db.delete_endpoint(conn, endpoint_id):
            raise NotFound("No such webhook endpoint")
        await admin_db.audit(
            conn, actor_id=actor_id, action="webhook.delete", entity="webhook",
            entity_id=endpoint_id, before=_audited(row), after=None, now=now,
        )  # fmt: skip


async def deliveries(conn: Connection, endpoint_id: int, query: DeliveryQuery) -> list[DeliveryOut]:
    if await webhooks_db.get_endpoint(conn, endpoint_id) is None:
        raise NotFound("No such webhook endpoint")
    rows, _ = await webhooks_db.deliveries(
        conn, endpoint_id, limit=query.limit, offset=query.offset
    )
    return [DeliveryOut.model_validate(dict(r)) for r in rows]
