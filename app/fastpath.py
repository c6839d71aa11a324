"""Cached seat listings answered before the framework: the finals-week hot path.

``GET /seats`` and ``GET /branches`` are what everyone refreshes at once. When Redis
holds a valid answer, the edge (app/edge.py) sends it straight away: no routing,
no dependency injection, no validation, no response model. That is safe because an
answer is only ever stored by the routes themselves, after FastAPI validated the
very same query string (the key is the normalised raw query), so a hit is for a
query already known to be valid. A miss (or no Redis) goes on to the routes, which
reuse this lookup (``request_slot``) rather than asking Redis twice. Keys and the
rule for storing are app/cache.py's.
"""

from typing import Any, cast

from starlette.types import Scope

from app import metrics
from app.cache import ListingSlot, Lookup, SeatCache, listing_slot
from app.clock import Clock

CACHED_PATHS = frozenset({"/seats", "/branches"})
_LOOKUP_SCOPE_KEY = "dlsms.seat_cache_lookup"
_CONTENT_TYPE = (b"content-type", b"application/json")


async def cached_answer(scope: Scope) -> bytes | None:
    """The stored answer to this cached listing request, or None (a miss, handed on to
    the route through the scope, or no cache)."""
    state = cast(dict[str, Any], scope.get("state") or {})
    cache: SeatCache | None = state.get("cache")
    clock: Clock | None = state.get("clock")
    if cache is None or clock is None or not cache.enabled:
        return None
    # The rate limiter may have read it already, in its own round trip (app/apilimit.py).
    lookup = scope.get(_LOOKUP_SCOPE_KEY) or await cache.read(slot_of(scope), clock.now())
    if lookup.body is None:
        scope[_LOOKUP_SCOPE_KEY] = lookup
        return None
    scope[metrics.ROUTE_SCOPE_KEY] = scope["path"]
    return lookup.body


def answer_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    """The headers of a cached answer, as the route sends them."""
    return [_CONTENT_TYPE, (b"content-length", b"%d" % len(body))]


def is_cached_listing(scope: Scope) -> bool:
    """Whether this request is a listing that may be answered from the cache."""
    return scope["method"] == "GET" and scope["path"] in CACHED_PATHS


def slot_of(scope: Scope) -> ListingSlot:
    return listing_slot(scope["path"], scope["query_string"])


def remember_lookup(scope: Scope, lookup: Lookup) -> None:
    """Hand a lookup made for this request to the fast path (and, on a miss, the route)."""
    scope[_LOOKUP_SCOPE_KEY] = lookup


def request_slot(scope: Scope) -> ListingSlot:
    """The request's cache slot, carrying the lookup the edge made (a miss) so that the
    route does not ask Redis twice."""
    found = scope.get(_LOOKUP_SCOPE_KEY)
    return listing_slot(
        scope["path"], scope["query_string"], found if isinstance(found, Lookup) else None
    )
