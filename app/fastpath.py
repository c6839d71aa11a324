"""Cached seat listings answered before the framework: the finals-week hot path.

``GET /seats`` and ``GET /branches`` are what everyone refreshes at once. When Redis
holds a valid answer, this pure ASGI middleware sends it straight away: no routing,
no dependency injection, no validation, no response model. That is safe because an
answer is only ever stored by the routes themselves, after FastAPI validated the
very same query string (the key is the normalised raw query), so a hit is for a
query already known to be valid. A miss (or no Redis) goes on to the routes, which
reuse this lookup (``LOOKUP_SCOPE_KEY``) rather than asking Redis twice.
"""

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

from app import metrics
from app.cache import Lookup, SeatCache
from app.clock import Clock

CACHED_PATHS = frozenset({"/seats", "/branches"})
LOOKUP_SCOPE_KEY = "dlsms.seat_cache_lookup"


def listing_key(path: str, query_string: bytes) -> tuple[str, str | None]:
    """The cache key of a listing request, and the branch it is about (None: all).

    Parameters are sorted so that their order does not matter; repeated ones keep their
    order (FastAPI reads the last), so the key still tells them apart."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    branch = next((v for k, v in reversed(pairs) if k == "branch"), None)
    return f"{path}?{urlencode(sorted(pairs, key=lambda kv: kv[0]))}", branch


class CachedListingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in CACHED_PATHS:
            await self.app(scope, receive, send)
            return
        state = cast(dict[str, Any], scope.get("state") or {})
        cache: SeatCache | None = state.get("cache")
        clock: Clock | None = state.get("clock")
        if cache is None or clock is None or not cache.enabled:
            await self.app(scope, receive, send)
            return
        key, branch = listing_key(scope["path"], scope["query_string"])
        lookup = await cache.lookup(branch=branch, query=key, now=clock.now())
        if lookup.body is None:
            scope[LOOKUP_SCOPE_KEY] = lookup
            await self.app(scope, receive, send)
            return
        scope[metrics.ROUTE_SCOPE_KEY] = scope["path"]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(lookup.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": lookup.body})


@dataclass(frozen=True)
class ListingSlot:
    """Where a listing request's answer lives in the cache."""

    key: str
    branch: str | None  # as written in the query string
    lookup: Lookup | None  # the middleware's miss, if it looked

    def storable_for(self, validated_branch: str | None) -> bool:
        # Store only when the scope the middleware reads is the branch the answer is
        # about ("Main " and "Main" are one branch but two scopes; one is never bumped).
        return self.branch == validated_branch


def listing_slot(scope: Scope) -> ListingSlot:
    key, branch = listing_key(scope["path"], scope["query_string"])
    found = scope.get(LOOKUP_SCOPE_KEY)
    return ListingSlot(key, branch, found if isinstance(found, Lookup) else None)
