"""Per-client API rate limit (api.md, "Limits and operations").

A token bucket per signed-in user (``API_RATE_LIMIT``, ``API_RATE_BURST``) and per client
address for callers without a valid token (``API_RATE_LIMIT_ANONYMOUS``): shared by every
instance through Redis, per process without it or while it is down. Past it, 429
``rate_limited`` with ``Retry-After``; every counted answer carries the IETF draft's
``RateLimit-Policy`` and ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers-10):

    RateLimit-Policy: "user";q=100;w=60     (the configured rate: q requests per w seconds)
    RateLimit: "user";r=17;t=4              (r requests left now; t s until the bucket is full)

Not counted (and without the fields): health, readiness, metrics, the open streams, and
the web app's static files (a page load fetches several; they cost nothing to serve).

Applied by the edge (app/edge.py), after the body limit and CORS preflights (a browser can
read the 429; preflights are not counted). The client is the one ProxyHeadersMiddleware
(outside the edge) established: the peer, or the address a trusted proxy forwarded.
IPv6 clients are counted per /64, the block one host gets. Tokens are verified through
the app's TokenVerifier (app/security.py), which remembers valid ones: identifying the
user is a dictionary lookup.
"""

import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import Scope

from app import apidocs, fastpath, metrics, sessions
from app.cache import SeatCache
from app.clock import Clock
from app.errors import DomainError, RateLimited, error_response
from app.security import TokenVerifier
from app.tokenbucket import ADMIT_ONLY_SCRIPT, Decision, MemoryBuckets, Policy, decide, redis_key

log = logging.getLogger(__name__)

EXEMPT_PATHS = frozenset(
    {"/health", "/ready", "/metrics", "/seats/stream", "/notifications/stream"}
)
EXEMPT_PREFIXES = ("/static/",)
# After a Redis error, count in memory for this long before trying Redis again: a down
# Redis must not add its connect timeout to every request.
_REDIS_PAUSE_SECONDS = 5.0


class ApiLimiter:
    """Decides whether a request may go on, and with which bucket it was counted."""

    def __init__(
        self,
        *,
        user: Policy,
        anonymous: Policy | None,
        tokens: TokenVerifier,
        redis: Redis | None,
        cache: SeatCache,
        clock: Clock,
    ) -> None:
        self.user = user
        self.anonymous = anonymous
        self._tokens = tokens
        self._redis = redis
        self._cache = cache
        self._clock = clock
        self._admit = redis.register_script(ADMIT_ONLY_SCRIPT) if redis else None
        self._memory = MemoryBuckets()
        self._redis_paused_until = 0.0

    async def admit(self, scope: Scope) -> tuple[Policy, Decision] | None:
        """The bucket this HTTP request was counted in and the verdict; None when the
        caller is not limited."""
        client = scope.get("client")
        bucket = self._bucket(_token_of(scope), client[0] if client else None)
        if bucket is None:
            return None
        return bucket[0], await self._decide(scope, *bucket)

    async def admit_call(
        self, token: str | None, address: Callable[[], Awaitable[str]]
    ) -> tuple[Policy, Decision] | None:
        """The same for a gRPC call: its bearer token, and its client address, asked for
        only when the call has no valid token (working it out costs a proxy-header pass)."""
        user_id = self._user_of(token) if token is not None else None
        if user_id is not None:
            bucket: tuple[Policy, str] | None = (self.user, str(user_id))
        else:
            bucket = self._bucket(None, await address()) if self.anonymous is not None else None
        if bucket is None:
            return None
        return bucket[0], await self._decide(None, *bucket)

    def _bucket(self, token: str | None, host: str | None) -> tuple[Policy, str] | None:
        user_id = self._user_of(token) if token is not None else None
        if user_id is not None:
            return self.user, str(user_id)
        if self.anonymous is not None:
            return self.anonymous, _address_key(host)
        return None

    async def _decide(self, scope: Scope | None, policy: Policy, client: str) -> Decision:
        if self._admit is None or time.monotonic() < self._redis_paused_until:
            return self._memory.admit(policy, client)
        try:
            if scope is not None and fastpath.is_cached_listing(scope) and self._cache.enabled:
                # One round trip for both: the bucket, then the cached answer.
                slot = fastpath.slot_of(scope)
                decision, lookup = await self._cache.admit_and_lookup(
                    policy, client, slot, self._clock.now()
                )
                if lookup is not None:
                    fastpath.remember_lookup(scope, lookup)
                return decision
            admitted, wait, full_in = await self._admit(
                keys=[redis_key(policy, client)], args=list(policy.micros)
            )
            return decide(policy, bool(admitted), wait, full_in)
        except RedisError as exc:
            if time.monotonic() >= self._redis_paused_until:
                log.warning(
                    "rate limit: Redis unavailable (%s: %s); counting per process for %.0f s",
                    type(exc).__name__,
                    exc,
                    _REDIS_PAUSE_SECONDS,
                )
            self._redis_paused_until = time.monotonic() + _REDIS_PAUSE_SECONDS
            return self._memory.admit(policy, client)

    def _user_of(self, token: str) -> int | None:
        """The signed-in user's id, when ``token`` is valid."""
        try:
            return self._tokens.user(token).id
        except DomainError:
            return None  # counted by address; the route answers 401 if it needs a user


def _token_of(scope: Scope) -> str | None:
    """The bearer token, else the session cookie's (as the routes read them)."""
    cookie_header = None
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
        elif name == b"cookie":
            cookie_header = value.decode("latin-1")
    if cookie_header is None:
        return None
    token: str | None = cookie_parser(cookie_header).get(sessions.SESSION_COOKIE)
    return token or None


def _address_key(host: str | None) -> str:
    """The bucket of a client address: IPv6 per /64, the block one host gets."""
    if host is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


def header_fields(policy: Policy, decision: Decision) -> list[tuple[bytes, bytes]]:
    name = policy.name
    full_in = math.ceil(decision.full_in)
    return [
        (b"ratelimit-policy", f'"{name}";q={policy.rate};w={policy.period}'.encode()),
        (b"ratelimit", f'"{name}";r={decision.remaining};t={full_in}'.encode()),
    ]


def refusal(scope: Scope, policy: Policy, decision: Decision) -> Response:
    """The 429 for a request its bucket refused (counted in dlsms_rate_limited_total)."""
    metrics.RATE_LIMITED.labels(policy.name).inc()
    scope[metrics.ROUTE_SCOPE_KEY] = "<rate limited>"
    retry_after = max(1, math.ceil(decision.retry_after))
    refused = RateLimited(
        retry_after,
        what="requests",
        headers={k.decode(): v.decode() for k, v in header_fields(policy, decision)},
    )
    return error_response(refused)


async def admit(scope: Scope) -> tuple[Policy, Decision] | None:
    """The bucket this request was counted in and the verdict; None when it is not
    counted (exempt paths, no limit configured, a caller without a bucket)."""
    if exempt(scope["path"]):
        return None
    state = cast(dict[str, Any], scope.get("state") or {})
    limiter: ApiLimiter | None = state.get("api_limiter")
    return await limiter.admit(scope) if limiter is not None else None


def document_rate_limit(app: FastAPI) -> None:
    """Name 429 ``rate_limited`` and the RateLimit fields in the OpenAPI schema on every
    counted operation, without repeating them in each router."""
    apidocs.amend_schema(app, _add_rate_limit_responses)


_FIELDS_DOC = {
    "RateLimit-Policy": {
        "description": 'The client\'s bucket: `"user"` or `"address"`, q requests per w s',
        "schema": {"type": "string", "example": '"user";q=100;w=60'},
    },
    "RateLimit": {
        "description": "Requests left now (r) and seconds until the bucket is full (t)",
        "schema": {"type": "string", "example": '"user";r=19;t=1'},
    },
}


def _add_rate_limit_responses(schema: dict[str, Any]) -> None:
    description = (
        f"`{RateLimited.code}`: too many requests from this user (API_RATE_LIMIT) or, "
        "without a token, this address (API_RATE_LIMIT_ANONYMOUS); wait Retry-After seconds"
    )
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    headers = {
        "Retry-After": {
            "description": "Seconds until a request is admitted again",
            "schema": {"type": "integer"},
        },
        **_FIELDS_DOC,
    }
    for path, operations in schema.get("paths", {}).items():
        if exempt(path):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            existing = responses.get("429")
            if existing is None:
                responses["429"] = {"description": description, "content": body}
            else:
                existing["description"] = f"{existing.get('description', '')} / {description}"
            responses["429"]["headers"] = headers
