"""The seat-listing cache (app/cache.py) over HTTP and on its own, against a real Redis.

What must hold: a listing or branch count never shows a seat as it was before a write
that has been answered (booking, cancel, check-in, check-out, a sweep), on any instance; an
answer about "now" is not served past the next start or end of a reservation; a dead Redis
costs nothing but a warning.
"""

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request
from redis.asyncio import Redis

from app.cache import Computed, SeatCache, listing_slot
from app.deps import app_state
from app.jobs import sweeps
from app.models import Role
from app.security import encode_token
from app.services import seats as seats_service
from app.tokenbucket import Policy
from tests.api.test_seats import at, book
from tests.conftest import TEST_JWT_SECRET, ClientFactory, bearer
from tests.factories import FrozenClock, add_branch, add_seat, add_user, iso
from tests.ops.support import PrivateRedis
from tests.ops.support import private_redis as private_redis  # the fixture

NOW = at(9, 30)
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"
KEY_PREFIX = "dlsms:seats:v3:"


@dataclass(frozen=True)
class Library:
    m1: int  # Main
    m2: int  # Main, has_power false like m1
    s1: int  # Science
    student: dict[str, str]  # Authorization header of a student


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def library(db: asyncpg.Connection) -> Library:
    main = await add_branch(db, "Main")
    science = await add_branch(db, "Science")
    m1 = await add_seat(db, main, "M1")
    m2 = await add_seat(db, main, "M2")
    s1 = await add_seat(db, science, "S1")
    user_id = await add_user(db, "S2000001")
    token, _ = encode_token(
        secret=TEST_JWT_SECRET,
        user_id=user_id,
        student_id="S2000001",
        role=Role.STUDENT,
        now=datetime.now(UTC),
        ttl=timedelta(hours=1),
    )
    return Library(m1=m1, m2=m2, s1=s1, student=bearer(token))


# A long TTL so that only invalidation and the validity window can end a cached answer
# while a test runs, however slow the machine.
CACHE_SECONDS = 120


@pytest.fixture
async def cached(
    make_client: ClientFactory, redis_url: str, clock: FrozenClock
) -> httpx.AsyncClient:
    """A client for an app with the Redis cache, its clock frozen at ``clock``."""
    return await make_client(clock=clock, REDIS_URL=redis_url, SEAT_CACHE_SECONDS=CACHE_SECONDS)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def seat_cache_keys(redis: Redis) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=KEY_PREFIX + "*")]


async def listed(client: httpx.AsyncClient, seat_id: int, **params: Any) -> dict[str, Any] | None:
    """The seat as GET /seats lists it with these parameters, or None when it is not listed."""
    response = await client.get("/seats", params=params)
    assert response.status_code == 200, response.text
    seats = {seat["id"]: seat for seat in response.json()["items"]}
    return seats.get(seat_id)


async def branch_counts(client: httpx.AsyncClient, name: str = "Main") -> dict[str, Any]:
    response = await client.get("/branches")
    assert response.status_code == 200, response.text
    [branch] = [b for b in response.json() if b["name"] == name]
    return {k: v for k, v in branch.items() if k in counts(0)}


def counts(available: int, reserved: int = 0, occupied: int = 0, power: int = 0) -> dict[str, int]:
    """Counts of the Main branch of ``library`` (two seats)."""
    return {
        "total_seats": 2,
        "available_now": available,
        "reserved_now": reserved,
        "occupied_now": occupied,
        "with_power": power,
        "with_monitor": 0,
    }


async def reserve(
    client: httpx.AsyncClient,
    library: Library,
    seat_id: int,
    start: datetime,
    end: datetime,
    **headers: str,
) -> dict[str, Any]:
    response = await client.post(
        "/reservations",
        json={"seat_id": seat_id, "start_time": iso(start), "end_time": iso(end)},
        headers={**library.student, **headers},
    )
    assert response.status_code == 201, response.text
    reservation: dict[str, Any] = response.json()
    return reservation


def interval(start: datetime, end: datetime) -> dict[str, str]:
    return {"start_time": iso(start), "end_time": iso(end)}


# --- writes over HTTP invalidate what the cache holds ---------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("idempotency_key", [None, "book-m1-once"])
async def test_booking_drops_the_seat_from_the_next_cached_available_listing(
    cached: httpx.AsyncClient, library: Library, redis: Redis, idempotency_key: str | None
) -> None:
    before = await cached.get("/seats", params={"available_only": "true"})
    assert [s["id"] for s in before.json()["items"]] == [library.m1, library.m2, library.s1]
    assert await seat_cache_keys(redis)  # the answer is in Redis now

    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    await reserve(cached, library, library.m1, NOW, NOW + timedelta(hours=1), **headers)

    after = await cached.get("/seats", params={"available_only": "true"})
    assert after.json() == {
        "items": [s for s in before.json()["items"] if s["id"] != library.m1],
        "total": 2,
    }


@pytest.mark.redis
async def test_booking_marks_the_seat_busy_in_the_next_cached_interval_listing(
    cached: httpx.AsyncClient, library: Library
) -> None:
    asked = interval(at(10), at(11))
    assert (await listed(cached, library.m1, **asked)) == {
        "id": library.m1,
        "branch": "Main",
        "area": "Quiet",
        "label": "M1",
        "has_power": False,
        "has_monitor": False,
        "status": "ACTIVE",
        "available": True,
        "state": "free",
    }

    await reserve(cached, library, library.m1, at(10, 30), at(11, 30))

    assert (await listed(cached, library.m1, **asked) or {})["available"] is False
    assert (await listed(cached, library.m2, **asked) or {})["available"] is True


@pytest.mark.redis
async def test_booking_updates_the_next_cached_branch_counts(
    cached: httpx.AsyncClient, library: Library
) -> None:
    assert await branch_counts(cached) == counts(available=2)
    science = await branch_counts(cached, "Science")

    await reserve(cached, library, library.m1, NOW, NOW + timedelta(hours=1))

    assert await branch_counts(cached) == counts(available=1, reserved=1)
    assert await branch_counts(cached, "Science") == science


@pytest.mark.redis
async def test_cancelling_frees_the_seat_in_the_very_next_listing_and_branch_counts(
    cached: httpx.AsyncClient, library: Library
) -> None:
    reservation = await reserve(cached, library, library.m1, NOW, NOW + timedelta(hours=1))
    asked = interval(NOW, NOW + timedelta(hours=1))
    assert await listed(cached, library.m1, branch="Main", available_only="true") is None
    assert (await listed(cached, library.m1, **asked) or {})["available"] is False
    assert await branch_counts(cached) == counts(available=1, reserved=1)

    response = await cached.delete(f"/reservations/{reservation['id']}", headers=library.student)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CANCELLED"

    assert await listed(cached, library.m1, branch="Main", available_only="true") is not None
    assert (await listed(cached, library.m1, **asked) or {})["available"] is True
    assert await branch_counts(cached) == counts(available=2)


@pytest.mark.redis
async def test_checkin_moves_the_seat_from_reserved_now_to_occupied_now(
    cached: httpx.AsyncClient, library: Library
) -> None:
    reservation = await reserve(cached, library, library.m1, NOW, NOW + timedelta(hours=1))
    assert await branch_counts(cached) == counts(available=1, reserved=1)

    response = await cached.post(
        f"/reservations/{reservation['id']}/checkin", headers=library.student
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CHECKED_IN"

    assert await branch_counts(cached) == counts(available=1, occupied=1)


@pytest.mark.redis
async def test_checkout_frees_the_rest_of_the_interval_in_the_next_listings(
    cached: httpx.AsyncClient, library: Library, clock: FrozenClock
) -> None:
    reservation = await reserve(cached, library, library.m1, NOW, at(11, 30))
    checkin = await cached.post(
        f"/reservations/{reservation['id']}/checkin", headers=library.student
    )
    assert checkin.status_code == 200, checkin.text
    clock.set(at(10))
    rest = interval(at(10), at(11, 30))
    assert (await listed(cached, library.m1, **rest) or {})["available"] is False
    assert await listed(cached, library.m1, available_only="true") is None
    assert await branch_counts(cached) == counts(available=1, occupied=1)

    response = await cached.post(
        f"/reservations/{reservation['id']}/checkout", headers=library.student
    )
    assert response.status_code == 200, response.text
    assert response.json()["end_time"] == iso(at(10))

    assert (await listed(cached, library.m1, **rest) or {})["available"] is True
    assert await listed(cached, library.m1, available_only="true") is not None
    assert await branch_counts(cached) == counts(available=2)


@pytest.mark.redis
async def test_a_booking_on_one_instance_invalidates_listings_cached_by_another(
    make_client: ClientFactory, redis_url: str, clock: FrozenClock, library: Library
) -> None:
    first, second = [
        await make_client(clock=clock, REDIS_URL=redis_url, SEAT_CACHE_SECONDS=CACHE_SECONDS)
        for _ in range(2)
    ]
    asked = interval(at(10), at(11))
    assert await listed(first, library.m1, available_only="true") is not None
    assert (await listed(first, library.m1, **asked) or {})["available"] is True
    assert await branch_counts(first) == counts(available=2)

    await reserve(second, library, library.m1, NOW, at(11))

    assert await listed(first, library.m1, available_only="true") is None
    assert (await listed(first, library.m1, **asked) or {})["available"] is False
    assert await branch_counts(first) == counts(available=1, reserved=1)


@pytest.mark.redis
async def test_listings_are_served_from_redis_until_a_write_invalidates_them(
    cached: httpx.AsyncClient,
    make_client: ClientFactory,
    clock: FrozenClock,
    library: Library,
    db: asyncpg.Connection,
    redis: Redis,
) -> None:
    assert (await listed(cached, library.m1, branch="Main") or {})["has_power"] is False
    assert await branch_counts(cached) == counts(available=2, power=0)
    assert any(key.startswith(KEY_PREFIX.encode()) for key in await seat_cache_keys(redis))

    # A change the service did not make, so nothing invalidates the cached answers.
    await db.execute("UPDATE seats SET has_power = NOT has_power WHERE id = $1", library.m1)

    assert (await listed(cached, library.m1, branch="Main") or {})["has_power"] is False
    assert await branch_counts(cached) == counts(available=2, power=0)
    uncached = await make_client(clock=clock)
    assert (await listed(uncached, library.m1, branch="Main") or {})["has_power"] is True
    assert await branch_counts(uncached) == counts(available=2, power=1)

    await reserve(cached, library, library.m2, at(10), at(11))  # a write to the Main branch

    assert (await listed(cached, library.m1, branch="Main") or {})["has_power"] is True
    assert await branch_counts(cached) == counts(available=2, power=1)


@pytest.mark.redis
async def test_a_cached_answer_is_byte_for_byte_the_routes_answer(
    cached: httpx.AsyncClient, library: Library
) -> None:
    first = await cached.get("/seats", params={"branch": "Main", "limit": 5})
    again = await cached.get("/seats", params={"limit": 5, "branch": "Main"})  # other order

    assert again.status_code == first.status_code == 200
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"] == "application/json"
    assert again.headers["x-request-id"]


@pytest.mark.redis
async def test_an_invalid_query_is_never_answered_from_the_cache(
    cached: httpx.AsyncClient, library: Library
) -> None:
    for _ in range(2):
        response = await cached.get("/seats", params={"limit": 0})
        assert response.status_code == 422


@pytest.mark.redis
async def test_a_branch_written_with_spaces_is_not_served_stale_after_a_booking(
    cached: httpx.AsyncClient, library: Library
) -> None:
    # " Main " is validated to "Main", but it is another cache key: an answer kept under
    # it would never be invalidated by a change to Main.
    assert await listed(cached, library.m1, branch=" Main ", available_only="true") is not None

    await reserve(cached, library, library.m1, NOW, at(11))

    assert await listed(cached, library.m1, branch=" Main ", available_only="true") is None


@pytest.mark.redis
@pytest.mark.parametrize(
    ("start", "end", "available_before"),
    [
        pytest.param(at(9, 40), at(10, 40), True, id="reservation-starts"),
        pytest.param(at(9), at(9, 40), False, id="reservation-ends"),
    ],
)
async def test_an_answer_about_now_is_not_served_past_the_next_start_or_end(
    cached: httpx.AsyncClient,
    clock: FrozenClock,
    library: Library,
    db: asyncpg.Connection,
    start: datetime,
    end: datetime,
    available_before: bool,
) -> None:
    # In the database before the first listing: no write can invalidate anything later.
    await book(db, library.m1, start, end)
    reserved = 0 if available_before else 1

    assert (await listed(cached, library.m1) or {})["available"] is available_before
    assert await branch_counts(cached) == counts(available=1 + available_before, reserved=reserved)
    # A marker only the database knows: the answers below show it once they are recomputed.
    await db.execute("UPDATE seats SET has_power = true WHERE id = $1", library.m2)

    clock.set(at(9, 40) - timedelta(seconds=1))
    assert (await listed(cached, library.m1) or {})["available"] is available_before
    assert (await listed(cached, library.m2) or {})["has_power"] is False  # still cached
    assert await branch_counts(cached) == counts(available=1 + available_before, reserved=reserved)

    clock.set(at(9, 40))
    assert (await listed(cached, library.m1) or {})["available"] is not available_before
    assert (await listed(cached, library.m2) or {})["has_power"] is True
    assert await branch_counts(cached) == counts(
        available=2 - available_before, reserved=1 - reserved, power=1
    )


def with_sweep_route(clock: FrozenClock) -> Callable[[FastAPI], None]:
    """POST /_test/sweep: the background sweeps, once, at ``clock``."""

    def hook(app: FastAPI) -> None:
        @app.post("/_test/sweep")
        async def sweep(request: Request) -> dict[str, int]:
            state = app_state(request)
            result = await sweeps.run_all(
                state["pool"], state["publisher"], state["settings"], now=clock.now()
            )
            return dataclasses.asdict(result)

    return hook


@pytest.mark.redis
@pytest.mark.parametrize(
    ("status", "offer_expires_at", "swept"),
    [
        pytest.param("CONFIRMED", None, "no_shows", id="no-show"),
        pytest.param("HELD", at(9, 25), "expired_offers", id="expired-offer"),
    ],
)
async def test_a_sweep_on_another_instance_frees_the_seat_in_cached_listings(
    cached: httpx.AsyncClient,
    make_client: ClientFactory,
    redis_url: str,
    clock: FrozenClock,
    library: Library,
    db: asyncpg.Connection,
    status: str,
    offer_expires_at: datetime | None,
    swept: str,
) -> None:
    # Due for the sweep at 09:30 (no check-in by 09:15; offer expired at 09:25), but active
    # until it runs, and nothing starts or ends before 11:00 to end the cached answers.
    await db.execute(
        "INSERT INTO reservations (user_id, seat_id, start_time, end_time, status, "
        "offer_expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        await add_user(db, "S2000002"),
        library.m1,
        at(9),
        at(11),
        status,
        offer_expires_at,
    )
    sweeper = await make_client(app_hook=with_sweep_route(clock), clock=clock, REDIS_URL=redis_url)
    assert await listed(cached, library.m1, available_only="true") is None
    assert await branch_counts(cached) == counts(available=1, reserved=1)

    response = await sweeper.post("/_test/sweep")
    assert response.status_code == 200, response.text
    assert response.json()[swept] == 1

    assert await listed(cached, library.m1, available_only="true") is not None
    assert await branch_counts(cached) == counts(available=2)


# --- Redis down ---------------------------------------------------------------------------


async def test_everything_answers_quickly_and_a_warning_names_the_cache_when_redis_is_down(
    make_client: ClientFactory,
    clock: FrozenClock,
    library: Library,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    client = await make_client(clock=clock, REDIS_URL=DEAD_REDIS_URL)

    assert await listed(client, library.m1, available_only="true") is not None
    assert await branch_counts(client) == counts(available=2)
    reservation = await reserve(client, library, library.m1, NOW, NOW + timedelta(hours=1))
    assert await listed(client, library.m1, available_only="true") is None
    assert await branch_counts(client) == counts(available=1, reserved=1)
    response = await client.delete(f"/reservations/{reservation['id']}", headers=library.student)
    assert response.status_code == 200, response.text
    assert await listed(client, library.m1, available_only="true") is not None
    assert await branch_counts(client) == counts(available=2)

    assert time.monotonic() - started < 5
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "app.cache" and r.levelno == logging.WARNING
    ]
    assert warnings
    assert "cache" in warnings[0].lower()


# --- SeatCache on its own -----------------------------------------------------------------


@pytest.fixture
async def seat_cache(redis: Redis) -> SeatCache:
    return SeatCache(redis, ttl_seconds=CACHE_SECONDS)


async def hit(cache: SeatCache, branch: str | None, *, now: datetime = NOW) -> bytes | None:
    return (await cache.lookup(branch=branch, query="q", now=now)).body


async def remember(cache: SeatCache, branch: str | None, body: bytes) -> None:
    lookup = await cache.lookup(branch=branch, query="q", now=NOW)
    await cache.store(lookup, body, now=NOW, valid_until=None)


@pytest.mark.redis
async def test_cache_lookup_misses_until_an_answer_is_stored_then_hits(
    seat_cache: SeatCache,
) -> None:
    lookup = await seat_cache.lookup(branch="Main", query="q", now=NOW)
    assert lookup.body is None
    assert lookup.generation is not None

    await seat_cache.store(lookup, b'{"items": []}', now=NOW, valid_until=None)

    assert await hit(seat_cache, "Main") == b'{"items": []}'
    assert (await seat_cache.lookup(branch="Main", query="other", now=NOW)).body is None
    assert await hit(seat_cache, "Science") is None


async def test_lookups_survive_a_server_that_lost_the_scripts(
    private_redis: PrivateRedis,
) -> None:
    """The lookups run EVALSHA straight on a connection (SeatCache._run): a server that
    no longer holds the scripts (restarted, flushed) is given them again, and the
    connection that heard NOSCRIPT goes on serving."""
    redis = Redis.from_url(private_redis.url, max_connections=1)
    try:
        cache = SeatCache(redis, ttl_seconds=CACHE_SECONDS)
        await remember(cache, "Main", b"main")
        policy = Policy("address", rate=60, period=60, burst=5)
        slot = listing_slot("/seats", b"branch=Main")
        for _ in range(2):
            await redis.script_flush()
            assert await hit(cache, "Main") == b"main"
            await redis.script_flush()
            decision, lookup = await cache.admit_and_lookup(policy, "10.0.0.1", slot, NOW)
            assert decision.admitted
            assert lookup is not None and lookup.generation is not None
        assert cache.enabled
    finally:
        await redis.aclose()


@pytest.mark.redis
async def test_seats_changed_invalidates_the_branch_and_all_branches_but_not_other_branches(
    seat_cache: SeatCache,
) -> None:
    await remember(seat_cache, "Main", b"main")
    await remember(seat_cache, "Science", b"science")
    await remember(seat_cache, None, b"all")

    await seat_cache.seats_changed({"Main"})

    assert await hit(seat_cache, "Main") is None
    assert await hit(seat_cache, None) is None
    assert await hit(seat_cache, "Science") == b"science"


@pytest.mark.redis
@pytest.mark.parametrize("branch", ["Main", None])
async def test_an_answer_computed_before_an_invalidation_is_never_served_after_it(
    seat_cache: SeatCache, redis: Redis, branch: str | None
) -> None:
    # Reader: looks up (miss) and queries PostgreSQL; meanwhile a booking commits and
    # invalidates; the reader then stores what it computed from the older snapshot.
    lookup = await seat_cache.lookup(branch=branch, query="q", now=NOW)
    await SeatCache(redis, ttl_seconds=CACHE_SECONDS).seats_changed({"Main"})
    await seat_cache.store(lookup, b"seat free (stale)", now=NOW, valid_until=None)

    assert await hit(seat_cache, branch) is None


@pytest.mark.redis
async def test_a_lost_generation_never_brings_back_an_answer_stored_before_it(
    seat_cache: SeatCache, redis: Redis
) -> None:
    # A flush or an eviction loses the generations; a recreated one must not equal any
    # generation an old answer was stored under.
    first = await seat_cache.lookup(branch="Main", query="q", now=NOW)
    await seat_cache.store(first, b"seat free (stale)", now=NOW, valid_until=None)
    await seat_cache.seats_changed({"Main"})
    generations = [key for key in await seat_cache_keys(redis) if b":gen:" in key]
    await redis.delete(*generations)

    again = await seat_cache.lookup(branch="Main", query="q", now=NOW)

    assert again.body is None
    assert again.generation != first.generation


@pytest.mark.redis
@pytest.mark.parametrize(
    ("offset", "served"),
    [
        pytest.param(timedelta(seconds=-1), False, id="before-valid-from"),
        pytest.param(timedelta(0), True, id="at-valid-from"),
        pytest.param(timedelta(minutes=10) - timedelta(microseconds=1000), True, id="just-before"),
        pytest.param(timedelta(minutes=10), False, id="at-valid-until"),
        pytest.param(timedelta(hours=1), False, id="after-valid-until"),
    ],
)
async def test_an_answer_is_served_only_inside_its_validity_window(
    seat_cache: SeatCache, offset: timedelta, served: bool
) -> None:
    lookup = await seat_cache.lookup(branch=None, query="q", now=NOW)
    await seat_cache.store(lookup, b"answer", now=NOW, valid_until=NOW + timedelta(minutes=10))

    assert (await hit(seat_cache, None, now=NOW + offset) == b"answer") is served


@pytest.mark.redis
async def test_an_answer_already_out_of_date_is_not_stored(
    seat_cache: SeatCache, redis: Redis
) -> None:
    lookup = await seat_cache.lookup(branch=None, query="q", now=NOW)
    await seat_cache.store(lookup, b"answer", now=NOW, valid_until=NOW)

    assert [key for key in await seat_cache_keys(redis) if b":list:" in key] == []


async def test_an_unreachable_redis_pauses_the_cache_logs_once_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.cache")
    dead = Redis.from_url(DEAD_REDIS_URL, socket_connect_timeout=1)
    try:
        cache = SeatCache(dead, ttl_seconds=10)
        enabled_at_first = cache.enabled
        lookup = await cache.lookup(branch="Main", query="q", now=NOW)
        await cache.store(lookup, b"answer", now=NOW, valid_until=None)
        await cache.seats_changed({"Main"})
        again = await cache.lookup(branch="Main", query="q", now=NOW)
    finally:
        await dead.aclose()

    assert (lookup.body, lookup.generation) == (None, None)
    assert again.body is None
    assert (enabled_at_first, cache.enabled) == (True, False)
    assert len([r for r in caplog.records if r.name == "app.cache"]) == 1


async def break_generation_counter(redis: Redis, branch: str) -> None:
    """Make Redis answer every read about ``branch`` with an error (WRONGTYPE)."""
    before = set(await seat_cache_keys(redis))
    await SeatCache(redis, ttl_seconds=CACHE_SECONDS).seats_changed({branch})
    counters = set(await seat_cache_keys(redis)) - before
    [counter] = [key for key in counters if b"all" not in key]
    await redis.delete(counter)
    await redis.hset(counter, "not", "a counter")


@pytest.mark.redis
async def test_a_redis_error_pauses_the_cache_even_for_answers_redis_still_holds(
    seat_cache: SeatCache, redis: Redis
) -> None:
    await remember(seat_cache, "Main", b"main")
    await break_generation_counter(redis, "Broken")

    assert await hit(seat_cache, "Broken") is None  # the error is swallowed
    assert not seat_cache.enabled
    assert await hit(seat_cache, "Main") is None  # paused: PostgreSQL answers
    assert await hit(SeatCache(redis, ttl_seconds=CACHE_SECONDS), "Main") == b"main"


@pytest.mark.redis
async def test_a_paused_cache_still_invalidates_answers_other_instances_hold(
    seat_cache: SeatCache, redis: Redis
) -> None:
    other_instance = SeatCache(redis, ttl_seconds=CACHE_SECONDS)
    await remember(other_instance, "Main", b"main")
    await break_generation_counter(redis, "Broken")
    await hit(seat_cache, "Broken")
    assert not seat_cache.enabled

    await seat_cache.seats_changed({"Main"})

    assert await hit(other_instance, "Main") is None


# --- misses computed once per process (SeatCache.computed_once)


@pytest.mark.redis
async def test_concurrent_misses_of_one_answer_compute_it_once(seat_cache: SeatCache) -> None:
    lookup = await seat_cache.lookup(branch="Main", query="q", now=NOW)
    release = asyncio.Event()
    runs = 0

    async def compute() -> Computed:
        nonlocal runs
        runs += 1
        await release.wait()  # every request is waiting before the first one finishes
        return Computed(b'{"items": []}', None)

    waiting = [
        asyncio.create_task(seat_cache.computed_once(lookup, NOW, compute)) for _ in range(20)
    ]
    await asyncio.sleep(0.05)
    release.set()
    answers = await asyncio.gather(*waiting)
    assert runs == 1
    assert {a.body for a in answers} == {b'{"items": []}'}
    # Done: the next miss computes again (the answer is the cache's to keep, not this map's).
    await seat_cache.computed_once(lookup, NOW, compute)
    assert runs == 2


@pytest.mark.redis
async def test_misses_under_another_generation_or_query_are_not_shared(
    seat_cache: SeatCache,
) -> None:
    before = await seat_cache.lookup(branch="Main", query="q", now=NOW)
    other_query = await seat_cache.lookup(branch="Main", query="q2", now=NOW)
    await seat_cache.seats_changed({"Main"})
    after = await seat_cache.lookup(branch="Main", query="q", now=NOW)
    assert after.generation != before.generation
    release = asyncio.Event()
    runs: list[bytes] = []

    def computing(body: bytes) -> Callable[[], Awaitable[Computed]]:
        async def compute() -> Computed:
            runs.append(body)
            await release.wait()
            return Computed(body, None)

        return compute

    tasks = [
        asyncio.create_task(seat_cache.computed_once(lookup, NOW, computing(body)))
        for lookup, body in ((before, b"old"), (after, b"new"), (other_query, b"q2"))
    ]
    await asyncio.sleep(0.05)
    release.set()
    assert [t.body for t in await asyncio.gather(*tasks)] == [b"old", b"new", b"q2"]
    assert sorted(runs) == [b"new", b"old", b"q2"]


@pytest.mark.redis
async def test_a_failed_or_outdated_shared_answer_is_computed_again_by_each_waiter(
    seat_cache: SeatCache,
) -> None:
    lookup = await seat_cache.lookup(branch="Main", query="q", now=NOW)
    release = asyncio.Event()

    async def failing() -> Computed:
        await release.wait()
        raise ConnectionError("the first request's database connection broke")

    async def own() -> Computed:
        return Computed(b"own", None)

    first = asyncio.create_task(seat_cache.computed_once(lookup, NOW, failing))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(seat_cache.computed_once(lookup, NOW, own))
    await asyncio.sleep(0.01)
    release.set()
    with pytest.raises(ConnectionError):
        await first
    assert (await second).body == b"own"

    # An answer about now that is no longer true when a waiter gets it: not shared.
    async def true_until_now() -> Computed:
        await release.wait()
        return Computed(b"stale", NOW + timedelta(seconds=1))

    release.clear()
    leader = asyncio.create_task(seat_cache.computed_once(lookup, NOW, true_until_now))
    await asyncio.sleep(0.01)
    late = asyncio.create_task(seat_cache.computed_once(lookup, NOW + timedelta(seconds=2), own))
    await asyncio.sleep(0.01)
    release.set()
    assert ((await leader).body, (await late).body) == (b"stale", b"own")


@pytest.mark.redis
async def test_a_burst_of_identical_uncached_listings_queries_postgresql_once(
    cached: httpx.AsyncClient, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = 0
    real = seats_service._list_seats

    async def counted(*args: Any, **kwargs: Any) -> bytes:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.2)  # long enough for the whole burst to miss meanwhile
        return await real(*args, **kwargs)

    monkeypatch.setattr(seats_service, "_list_seats", counted)
    answers = await asyncio.gather(
        *(
            cached.get("/seats", params={"branch": "Main"}, headers=library.student)
            for _ in range(20)
        )
    )
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1
    assert runs == 1
