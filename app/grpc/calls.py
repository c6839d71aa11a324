"""What every servicer needs from a call: the process's state, the caller (the same
JWT check as HTTP's ``CurrentUser``), the client's address and the clock."""

import math
from datetime import datetime
from typing import Any, cast

import grpc
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import metrics
from app.apilimit import header_fields
from app.errors import Forbidden, NotAuthenticated, RateLimited
from app.models import TokenUser
from app.state import AppState

Context = grpc.aio.ServicerContext[Any, Any]


class Servicer:
    """Base of the servicers: the lifespan's state, shared with the HTTP side."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def now(self) -> datetime:
        return self.state["clock"].now()

    def user(self, context: Context) -> TokenUser:
        """The caller, from metadata ``authorization: Bearer <token>``."""
        token = bearer_token(context)
        if token is None:
            raise NotAuthenticated()
        return self.state["tokens"].user(token)

    def admin(self, context: Context) -> TokenUser:
        user = self.user(context)
        if not user.is_admin:
            raise Forbidden("This needs the admin role")
        return user


async def admit(state: AppState, context: Context) -> None:
    """Count a unary call against its client's bucket, as HTTP counts a request (api.md,
    "Limits and operations"); past it, ``RateLimited`` (``RESOURCE_EXHAUSTED`` with
    ``RetryInfo``). The bucket's state goes out as initial metadata, HTTP's fields."""
    limiter = state["api_limiter"]
    if limiter is None:
        return
    trusted = state["settings"].FORWARDED_ALLOW_IPS
    verdict = await limiter.admit_call(
        bearer_token(context), lambda: client_address(context, trusted)
    )
    if verdict is None:
        return
    policy, decision = verdict
    fields = header_fields(policy, decision)
    await context.send_initial_metadata([(k.decode(), v.decode()) for k, v in fields])
    if not decision.admitted:
        metrics.RATE_LIMITED.labels(policy.name).inc()
        raise RateLimited(max(1, math.ceil(decision.retry_after)), what="requests")


def bearer_token(context: Context) -> str | None:
    """The token of a ``Bearer`` authorization, else None (as OAuth2PasswordBearer)."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None
            return token.strip()
    return None


async def client_address(context: Context, trusted_proxies: list[str]) -> str:
    """The caller's address as the HTTP side would see it: the peer, or the client that a
    trusted proxy (FORWARDED_ALLOW_IPS) names in ``x-forwarded-for``, decided by the very
    middleware create_app installs for HTTP (one rule for both interfaces)."""
    headers = [
        (b"x-forwarded-for", value.encode("latin-1") if isinstance(value, str) else value)
        for key, value in context.invocation_metadata() or ()
        if key == "x-forwarded-for"
    ]
    seen: list[str] = []

    async def capture(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])

    middleware = ProxyHeadersMiddleware(cast(Any, capture), trusted_hosts=trusted_proxies)
    scope = {"type": "http", "client": (_peer_host(context), 0), "headers": headers}
    await middleware(cast(Any, scope), _never, _never)
    return seen[0]


async def _never(*_: Any) -> Any:
    raise AssertionError("not an ASGI request")


def _peer_host(context: Context) -> str:
    """``ipv4:10.0.0.1:5555`` -> ``10.0.0.1``; ``ipv6:[::1]:5555`` -> ``::1``."""
    peer = context.peer() or "unknown"
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host = rest.rsplit(":", 1)[0].replace("%5B", "[").replace("%5D", "]")
        return host.strip("[]")
    return peer
