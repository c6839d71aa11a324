"""Per-client API rate limit (api.md, "Limits and operations"; app/apilimit.py).

Real time and real Redis: a bucket of ``burst`` tokens refilled at one a second is
drained, refused, and refilled by waiting."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from app.settings import Settings
from tests.conftest import REPO_ROOT, ClientFactory, make_settings
from tests.factories import Student, add_branch, add_seat, add_student, assert_error
from tests.ops.support import PrivateRedis
from tests.ops.support import private_redis as private_redis  # the fixture
from tests.realtime.servers import Servers, open_stream
from tests.realtime.servers import servers as servers

ONE_A_SECOND = "60/minute"
STYLESHEET = next((REPO_ROOT / "app/web/static/css").glob("*.css")).name


def limited(**overrides: Any) -> dict[str, Any]:
    """Settings with the limit on: one token a second, two saved up (users and addresses)."""
    return {
        "API_RATE_LIMIT": ONE_A_SECOND,
        "API_RATE_BURST": 2,
        "API_RATE_LIMIT_ANONYMOUS": ONE_A_SECOND,
        **overrides,
    }


def remaining(response: httpx.Response) -> int:
    """``r`` of the RateLimit field."""
    params = dict(p.split("=") for p in response.headers["RateLimit"].split(";")[1:])
    return int(params["r"])


def assert_refused(response: httpx.Response, policy: str) -> None:
    body = assert_error(response, 429, "rate_limited")
    assert "Too many requests" in body["detail"], body
    assert response.headers["Retry-After"] == "1"  # the next token is under a second away
    assert response.headers["RateLimit"].startswith(f'"{policy}";r=0;')


@pytest.fixture
async def student(db: asyncpg.Connection) -> Student:
    return await add_student(db, "s-limit")


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "memory"])
async def test_a_users_bucket_holds_the_burst_and_refills_at_the_rate(
    make_client: ClientFactory, student: Student, redis_url: str, shared: bool
) -> None:
    client = await make_client(**limited(REDIS_URL=redis_url if shared else None))

    first = await client.get("/reservations", headers=student.headers)
    second = await client.get("/reservations", headers=student.headers)
    third = await client.get("/reservations", headers=student.headers)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["RateLimit-Policy"] == '"user";q=60;w=60'
    assert [remaining(first), remaining(second)] == [1, 0]
    assert_refused(third, "user")
    assert third.headers["RateLimit-Policy"] == '"user";q=60;w=60'

    await asyncio.sleep(1.1)  # one token back, not two
    assert (await client.get("/reservations", headers=student.headers)).status_code == 200
    assert_refused(await client.get("/reservations", headers=student.headers), "user")


async def test_every_counted_answer_carries_the_fields_errors_too(
    make_client: ClientFactory, student: Student
) -> None:
    client = await make_client(**limited(API_RATE_BURST=5))

    missing = await client.get("/reservations/999999", headers=student.headers)
    invalid = await client.post("/reservations", headers=student.headers, json={})

    assert missing.status_code == 404
    assert invalid.status_code == 422
    for response in (missing, invalid):
        assert response.headers["RateLimit-Policy"] == '"user";q=60;w=60'
    assert [remaining(missing), remaining(invalid)] == [4, 3]


async def test_two_instances_share_one_bucket(
    make_client: ClientFactory, student: Student, redis_url: str
) -> None:
    one = await make_client(**limited(REDIS_URL=redis_url, API_RATE_BURST=4))
    two = await make_client(**limited(REDIS_URL=redis_url, API_RATE_BURST=4))

    answers = [
        await instance.get("/reservations", headers=student.headers)
        for instance in (one, two, one, two, one, two)
    ]

    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429, 429]
    assert [remaining(a) for a in answers[:4]] == [3, 2, 1, 0]


async def test_callers_without_a_token_are_counted_per_forwarded_address(
    make_client: ClientFactory, student: Student, redis_url: str, db: asyncpg.Connection
) -> None:
    await add_branch(db, "Main")
    # The test client's peer is 127.0.0.1: a proxy trusted to forward the client address.
    client = await make_client(**limited(REDIS_URL=redis_url, FORWARDED_ALLOW_IPS="127.0.0.1"))

    def from_address(address: str) -> dict[str, str]:
        return {"X-Forwarded-For": address}

    a = [await client.get("/branches", headers=from_address("10.0.0.1")) for _ in range(3)]
    b = await client.get("/branches", headers=from_address("10.0.0.2"))
    # A token that is not valid does not make its bearer a user: counted by address.
    forged = {**from_address("10.0.0.2"), "Authorization": "Bearer not-a-token"}
    c = await client.get("/branches", headers=forged)
    d = await client.get("/branches", headers=from_address("10.0.0.2"))
    # A signed-in user behind an exhausted address has a bucket of their own.
    user = await client.get("/branches", headers={**from_address("10.0.0.1"), **student.headers})

    assert [r.status_code for r in a] == [200, 200, 429]
    assert a[0].headers["RateLimit-Policy"] == '"address";q=60;w=60'
    assert_refused(a[2], "address")
    assert b.status_code == 200 and remaining(b) == 1
    assert remaining(c) == 0  # the route may not care about tokens; the limit does
    assert_refused(d, "address")
    assert user.status_code == 200 and remaining(user) == 1


async def test_health_readiness_metrics_and_static_files_are_not_counted(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    await add_branch(db, "Main")
    client = await make_client(**limited(API_RATE_BURST=1))

    for _ in range(3):
        for path in ("/health", "/ready", "/metrics", f"/static/css/{STYLESHEET}"):
            response = await client.get(path)
            assert response.status_code == 200, path
            assert "RateLimit" not in response.headers, path

    counted = await client.get("/branches")
    assert counted.status_code == 200 and remaining(counted) == 0  # the first token
    assert_refused(await client.get("/branches"), "address")


async def test_open_streams_are_not_counted(
    db: asyncpg.Connection, servers: Servers, student: Student
) -> None:
    await add_seat(db, await add_branch(db, "Main"), "A1")
    server = await servers.start(**limited(API_RATE_BURST=1))
    for _ in range(3):
        async with open_stream(server.client, "/seats/stream"):
            pass
        async with open_stream(server.client, "/notifications/stream", headers=student.headers):
            pass
    # Both buckets are still full: one token each.
    user = await server.client.get("/reservations", headers=student.headers)
    anonymous = await server.client.get("/branches")
    assert user.status_code == 200 and remaining(user) == 0
    assert anonymous.status_code == 200 and remaining(anonymous) == 0


async def test_a_cached_listing_is_limited_in_the_same_round_trip_as_its_read(
    make_client: ClientFactory, student: Student, redis_url: str, db: asyncpg.Connection
) -> None:
    await add_seat(db, await add_branch(db, "Main"), "A1")
    client = await make_client(**limited(REDIS_URL=redis_url, API_RATE_BURST=10))
    assert (await client.get("/seats", headers=student.headers)).status_code == 200  # cached

    database = int(redis_url.rsplit("/", 1)[1])
    commands = await _commands_during(
        redis_url, database, lambda: client.get("/seats", headers=student.headers), times=3
    )

    assert commands == ["EVALSHA"] * 3, commands


async def _commands_during(
    redis_url: str,
    database: int,
    request: Callable[[], Awaitable[httpx.Response]],
    *,
    times: int,
) -> list[str]:
    """The commands Redis ran on ``database`` while ``request()`` was answered ``times``."""
    watcher, marker = Redis.from_url(redis_url), Redis.from_url(redis_url)
    await marker.ping()  # its connection is open (and SELECTed) before watching begins
    seen: list[str] = []
    async with watcher.monitor() as monitor:
        for _ in range(times):
            response = await request()
            assert response.status_code == 200, response.text
            assert "RateLimit" in response.headers
        await marker.echo("done")  # the end of what to look at
        async for command in monitor.listen():
            if command["command"].startswith("ECHO"):
                break
            # Commands a script runs are shown too, marked as the script's.
            if command["db"] == database and command.get("client_type") != "lua":
                seen.append(command["command"].split(" ", 1)[0].upper())
    await watcher.aclose()
    await marker.aclose()
    return seen


async def test_redis_going_down_leaves_per_process_limits_and_no_errors(
    make_client: ClientFactory, student: Student, private_redis: PrivateRedis
) -> None:
    client = await make_client(**limited(REDIS_URL=private_redis.url, API_RATE_BURST=3))
    shared = [await client.get("/reservations", headers=student.headers) for _ in range(2)]
    assert [remaining(r) for r in shared] == [2, 1]

    private_redis.stop()
    # This process's own bucket (full: it never counted while Redis answered).
    alone = [await client.get("/reservations", headers=student.headers) for _ in range(4)]

    assert [r.status_code for r in alone] == [200, 200, 200, 429]
    assert [remaining(r) for r in alone[:3]] == [2, 1, 0]


async def test_without_a_token_a_whole_campus_behind_one_address_gets_more() -> None:
    settings = make_settings("postgresql://unused", API_RATE_LIMIT="100/minute")
    user, address = settings.user_rate_policy, settings.address_rate_policy
    assert user is not None and address is not None
    assert (user.rate, user.period, user.burst) == (100, 60, 20)
    # 1000/minute, holding as many seconds of its rate (12 s) as the user's bucket: 200.
    assert (address.rate, address.period, address.burst) == (1000, 60, 200)


@pytest.mark.parametrize(
    ("values", "on", "anonymous"),
    [
        ({"API_RATE_LIMIT": "0"}, False, False),
        ({"API_RATE_LIMIT": "5/second", "API_RATE_LIMIT_ANONYMOUS": "0"}, True, False),
        ({"API_RATE_LIMIT": " 5 per second "}, True, True),
    ],
)
def test_zero_turns_a_limit_off(values: dict[str, str], on: bool, anonymous: bool) -> None:
    settings = make_settings("postgresql://unused", **values)
    assert (settings.user_rate_policy is not None) is on
    assert (settings.address_rate_policy is not None) is anonymous


@pytest.mark.parametrize("name", ["API_RATE_LIMIT", "API_RATE_LIMIT_ANONYMOUS"])
def test_a_rate_that_means_nothing_is_refused_at_startup(name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings(DLSMS_ENV="development", **{name: "lots"})  # type: ignore[arg-type]


async def test_the_schema_names_the_429_on_counted_operations_only(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    booking = paths["/reservations"]["post"]["responses"]["429"]
    login = paths["/auth/login"]["post"]["responses"]["429"]

    assert "rate_limited" in booking["description"]
    assert set(booking["headers"]) == {"Retry-After", "RateLimit", "RateLimit-Policy"}
    assert "API_RATE_LIMIT" in login["description"]  # beside the failed-login limit's
    assert "429" not in paths["/health"]["get"]["responses"]
    assert "429" not in paths["/seats/stream"]["get"]["responses"]
