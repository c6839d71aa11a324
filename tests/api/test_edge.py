"""The edge (app/edge.py): one pass for what every HTTP request gets.

A cached listing is answered there, without routing: it must carry exactly the headers
the route's own answer carries (request id, security headers, RateLimit fields, CORS)
and be counted in the metrics with its route. The order of the concerns holds too:
a cross-origin 429 can be read by the browser, a preflight is not counted.
"""

from typing import Any

import asyncpg
import httpx
import pytest

from app import metrics
from tests.api.test_observability import sample
from tests.api.test_rate_limit import limited
from tests.conftest import ClientFactory
from tests.factories import add_branch, add_seat

ORIGIN = "https://app.example.edu"
# Header values that differ from one answer to the next by design.
PER_ANSWER = {"x-request-id", "ratelimit", "date"}


def lookups(result: str) -> float:
    return sample(metrics.render().decode(), "dlsms_seat_cache_lookups_total", result=result)


def requests_counted(route: str, status: str) -> float:
    text = metrics.render().decode()
    return sample(text, "dlsms_http_requests_total", method="GET", route=route, status=status)


def fixed_headers(response: httpx.Response) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.multi_items() if k not in PER_ANSWER)


@pytest.fixture
async def library(db: asyncpg.Connection) -> None:
    await add_seat(db, await add_branch(db, "Main"), "M1")


@pytest.mark.redis
@pytest.mark.parametrize(
    ("settings", "headers"),
    [
        pytest.param({}, {}, id="plain"),
        pytest.param(limited(API_RATE_BURST=10), {}, id="rate-limited"),
        pytest.param({"CORS_ORIGINS": [ORIGIN]}, {"Origin": ORIGIN}, id="cors-origin"),
        pytest.param({"CORS_ORIGINS": [ORIGIN]}, {}, id="cors-no-origin"),
        pytest.param(
            {"CORS_ORIGINS": [ORIGIN], **limited(API_RATE_BURST=10)},
            {"Origin": ORIGIN},
            id="cors-and-rate-limited",
        ),
    ],
)
async def test_a_cached_answer_carries_every_header_of_the_routes_answer(
    make_client: ClientFactory,
    redis_url: str,
    library: None,
    settings: dict[str, Any],
    headers: dict[str, str],
) -> None:
    client = await make_client(REDIS_URL=redis_url, SEAT_CACHE_SECONDS=120, **settings)
    query = {"branch": "Main", "available_only": "true"}

    misses, hits = lookups("miss"), lookups("hit")
    routed = await client.get("/seats", params=query, headers=headers)
    assert (lookups("miss") - misses, lookups("hit") - hits) == (1, 0)
    cached = await client.get("/seats", params=query, headers=headers)
    assert (lookups("miss") - misses, lookups("hit") - hits) == (1, 1)

    assert routed.status_code == cached.status_code == 200
    assert cached.content == routed.content
    assert set(cached.headers) == set(routed.headers)
    assert fixed_headers(cached) == fixed_headers(routed)
    assert cached.headers["x-request-id"] != routed.headers["x-request-id"]
    assert "content-security-policy" in cached.headers
    if "API_RATE_LIMIT" in settings:
        assert cached.headers["ratelimit"].startswith('"address";r=')
    if headers:
        assert cached.headers["access-control-allow-origin"] == ORIGIN


@pytest.mark.redis
async def test_a_cached_answer_is_counted_with_its_route(
    make_client: ClientFactory, redis_url: str, library: None
) -> None:
    client = await make_client(REDIS_URL=redis_url, SEAT_CACHE_SECONDS=120)
    before, hits = requests_counted("/seats", "200"), lookups("hit")

    for _ in range(3):
        assert (await client.get("/seats")).status_code == 200

    assert lookups("hit") - hits == 2
    assert requests_counted("/seats", "200") - before == 3


async def test_a_refused_request_from_an_allowed_origin_can_be_read_and_preflights_are_free(
    make_client: ClientFactory, library: None
) -> None:
    client = await make_client(CORS_ORIGINS=[ORIGIN], **limited(API_RATE_BURST=1))
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}

    for _ in range(3):  # not counted: the bucket still holds its one token after them
        assert (await client.options("/reservations", headers=preflight)).status_code == 200
    admitted = await client.get("/seats", headers={"Origin": ORIGIN})
    refused = await client.get("/seats", headers={"Origin": ORIGIN})

    assert admitted.status_code == 200
    assert refused.status_code == 429
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert refused.headers["x-request-id"]
    assert refused.headers["x-frame-options"] == "DENY"
    assert requests_counted("<rate limited>", "429") >= 1
