"""Dependencies failing under a running instance, on private servers the tests may break:
Redis stopped and started again, PostgreSQL stopped and started again. The service keeps
answering what it can, says what is down, and recovers by itself."""

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest

from app.db.embedded import EmbeddedPostgres
from app.db.migrations import upgrade_to_head
from app.timeutil import utcnow
from tests.factories import (
    Student,
    add_branch,
    add_reservation,
    add_seat,
    add_student,
    booked,
    booking,
    joined,
)
from tests.ops.support import (
    NOTIFICATIONS,
    PrivateRedis,
    eventually,
    metric,
    scrape,
    slot,
    wait_for_lock_waiter,
)
from tests.ops.support import private_redis as private_redis  # the fixture
from tests.realtime.servers import (
    EventStream,
    Server,
    Servers,
    open_stream,
    wait_until_subscribed,
)

pytestmark = pytest.mark.slow

# A request that has to give up on a dependency still answers within this (seconds).
PROMPT = 3.0
CACHE_HITS = "dlsms_seat_cache_lookups_total"


async def timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def offer_for(stream: EventStream, entry_id: int, within: float = 5) -> dict[str, Any]:
    """The ``waitlist.offer`` event for waitlist entry ``entry_id``."""
    async with asyncio.timeout(within):
        while True:
            event = await stream.next_event(within)
            body: dict[str, Any] = event.json()
            if event.event == "waitlist.offer" and body["data"]["entry_id"] == entry_id:
                return body


async def cache_hits(server: Server) -> float:
    return metric(await scrape(server.client), CACHE_HITS, result="hit")


async def listing_served_from_cache(server: Server) -> float:
    """Ask for the same listing twice; the cache hits counted so far afterwards."""
    for _ in range(2):
        response = await server.client.get("/seats", params={"branch": "Main"})
        assert response.status_code == 200, response.text
    return await cache_hits(server)


async def test_redis_stopped_mid_run_is_survived_and_used_again_once_it_returns(
    private_redis: PrivateRedis, servers: Servers, db: asyncpg.Connection
) -> None:
    a, b = await servers.start_many(2, REDIS_URL=private_redis.url, SEAT_CACHE_SECONDS=1)
    for server in (a, b):
        await wait_until_subscribed(server, private_redis.url)
    branch_id = await add_branch(db, "Main")
    seats = [await add_seat(db, branch_id, f"A{n}") for n in range(3)]
    alice, bob, carol, dave = [await add_student(db, f"S000000{n}") for n in range(4)]
    start, end = slot()
    hits_before = await listing_served_from_cache(a)
    taken = await booked(a.client, alice, seats[0], start, end)
    bob_entry = await joined(a.client, bob, seat_id=seats[0], start=start, end=end)

    private_redis.stop()

    answers = [
        await timed(a.client.get("/seats", params={"branch": "Main"})),
        await timed(a.client.get("/seats", params={"branch": "Main"})),
        await timed(a.client.get("/branches")),
        await timed(
            a.client.post(
                "/reservations", json=booking(seats[1], start, end), headers=carol.headers
            )
        ),
        await timed(a.client.get("/reservations", headers=carol.headers)),
        await timed(
            a.client.post(
                "/auth/register",
                json={"student_id": "S1000001", "name": "New", "password": "correct horse"},
            )
        ),
        await timed(
            a.client.post(
                "/auth/login", json={"student_id": "S1000001", "password": "correct horse"}
            )
        ),
    ]
    ready, health = await a.client.get("/ready"), await a.client.get("/health")
    async with open_stream(a.client, NOTIFICATIONS, headers=bob.headers) as on_a:
        cancelled = await a.client.delete(f"/reservations/{taken['id']}", headers=alice.headers)
        offer_while_down = await offer_for(on_a, bob_entry["id"])

    private_redis.start()

    ready_again = await eventually(
        lambda: a.client.get("/ready"),
        lambda r: r.status_code == 200 and r.json()["redis"] == "up",
        within=10,
        what="/ready reporting Redis up again",
    )
    hits_after = await eventually(
        lambda: listing_served_from_cache(a),
        lambda hits: hits > hits_before,
        within=20,
        interval=0.5,
        what="seat listings served from the cache again",
    )
    for server in (a, b):
        await wait_until_subscribed(server, private_redis.url, within=15)
    dave_entry = await joined(a.client, dave, seat_id=seats[1], start=start, end=end)
    carols = (await a.client.get("/reservations", headers=carol.headers)).json()["items"]
    async with open_stream(b.client, NOTIFICATIONS, headers=dave.headers) as on_b:
        response = await a.client.delete(f"/reservations/{carols[0]['id']}", headers=carol.headers)
        assert response.status_code == 200, response.text
        offer_across = await offer_for(on_b, dave_entry["id"])

    assert [(r.request.method, r.url.path, r.status_code) for r, _ in answers] == [
        ("GET", "/seats", 200),
        ("GET", "/seats", 200),
        ("GET", "/branches", 200),
        ("POST", "/reservations", 201),
        ("GET", "/reservations", 200),
        ("POST", "/auth/register", 201),
        ("POST", "/auth/login", 200),
    ]
    slow = [(r.url.path, round(seconds, 2)) for r, seconds in answers if seconds > PROMPT]
    assert slow == []
    assert hits_before > 0  # the cache was in use before Redis went away
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "database": "up", "redis": "down"},
    )
    assert (health.status_code, health.json()["redis"]) == (200, "down")
    assert cancelled.status_code == 200, cancelled.text
    assert offer_while_down["data"]["seat_id"] == seats[0]  # delivered in-process
    assert ready_again.json() == {"status": "ready", "database": "up", "redis": "up"}
    assert hits_after > hits_before
    assert offer_across["data"]["seat_id"] == seats[1]  # delivered through Redis again


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """An embedded PostgreSQL of this test alone (never the shared server), stopped at the
    end whatever the test did to it."""
    embedded = EmbeddedPostgres(tmp_path / "pg")
    try:
        yield embedded
    finally:
        embedded.stop()
        pid_file = embedded.data_dir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError, psutil.NoSuchProcess):
            leftover = psutil.Process(int(pid_file.read_text().splitlines()[0]))
            leftover.terminate()
            leftover.wait(10)


@contextlib.asynccontextmanager
async def instance_on(
    embedded: EmbeddedPostgres, log_dir: Path
) -> AsyncIterator[tuple[str, Server, asyncpg.Connection]]:
    """Start and migrate ``embedded``, then one instance on it (sweeping every 0.3 s); yield
    the URL, the instance and a connection for arranging."""
    url = await asyncio.to_thread(embedded.start)
    await asyncio.to_thread(upgrade_to_head, url)
    async with Servers(url, log_dir) as started:
        server = await started.start(SCHEDULER_ENABLED=True, SWEEP_INTERVAL_SECONDS=0.3)
        conn = await asyncpg.connect(url)
        try:
            yield url, server, conn
        finally:
            await conn.close()


async def arrange(conn: asyncpg.Connection) -> tuple[int, Student, Student]:
    seat_id = await add_seat(conn, await add_branch(conn, "Main"), "A1")
    return seat_id, await add_student(conn, "S0000001"), await add_student(conn, "S0000002")


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == "service_unavailable"


async def test_postgresql_restart_answers_503_meanwhile_and_recovers_without_a_restart(
    private_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    async with instance_on(private_postgres, tmp_path) as (url, server, conn):
        seat_id, alice, bob = await arrange(conn)
        start, end = slot()
        await booked(server.client, alice, seat_id, start, end)
        await conn.close()

        await asyncio.to_thread(private_postgres.stop)

        ready, ready_seconds = await timed(server.client.get("/ready"))
        health = await server.client.get("/health")
        down = [
            await timed(server.client.get("/reservations", headers=alice.headers)),
            await timed(
                server.client.post(
                    "/reservations",
                    json=booking(seat_id, start + timedelta(hours=2), end + timedelta(hours=2)),
                    headers=alice.headers,
                )
            ),
            await timed(server.client.get("/seats", params={"branch": "Main"})),
        ]

        url_again = await asyncio.to_thread(private_postgres.start)
        await eventually(
            lambda: server.client.get("/ready"),
            lambda r: r.status_code == 200,
            within=15,
            what="/ready answering 200 again",
        )
        after = await asyncio.gather(
            *(server.client.get("/reservations", headers=alice.headers) for _ in range(10))
        )
        bobs = await server.client.post(
            "/reservations",
            json=booking(seat_id, start + timedelta(hours=1), end + timedelta(hours=1)),
            headers=bob.headers,
        )
        # The sweeps recovered too: a booking overdue from now on becomes a no-show.
        again = await asyncpg.connect(url_again)
        try:
            now = utcnow()
            overdue = await add_reservation(
                again,
                user_id=bob.id,
                seat_id=seat_id,
                start=now - timedelta(hours=3),
                end=now - timedelta(hours=2),
            )
            swept = await eventually(
                lambda: again.fetchval("SELECT status FROM reservations WHERE id = $1", overdue),
                lambda status: status == "NO_SHOW",
                within=10,
                what="the overdue booking swept",
            )
        finally:
            await again.close()

    assert (ready.status_code, ready.json()) == (
        503,
        {"status": "not_ready", "database": "down", "redis": "disabled"},
    )
    assert ready_seconds < PROMPT
    assert (health.status_code, health.json()["database"]) == (200, "down")
    for response, seconds in down:
        assert_unavailable(response)
        assert seconds < PROMPT, (response.request.url, seconds)
    assert url_again == url
    assert [r.status_code for r in after] == [200] * 10
    assert [len(r.json()["items"]) for r in after] == [1] * 10
    assert bobs.status_code == 201, bobs.text
    assert swept == "NO_SHOW"


def crash(embedded: EmbeddedPostgres) -> None:
    """Immediate shutdown (SIGQUIT to the postmaster), as in a crash: every backend exits
    at once, so nothing that was waiting gets to commit on the way out."""
    postmaster = psutil.Process(
        int((embedded.data_dir / "postmaster.pid").read_text().splitlines()[0])
    )
    postmaster.send_signal(signal.SIGQUIT)
    postmaster.wait(10)


@pytest.mark.parametrize(
    ("method", "action"),
    [("DELETE", ""), ("POST", "/checkin")],
    ids=["cancel-in-a-transaction", "checkin-single-statement"],
)
async def test_a_request_in_flight_when_postgresql_goes_away_answers_503_json(
    private_postgres: EmbeddedPostgres, tmp_path: Path, method: str, action: str
) -> None:
    async with instance_on(private_postgres, tmp_path) as (_, server, conn):
        seat_id, alice, _ = await arrange(conn)
        soon = utcnow() + timedelta(minutes=5)  # check-in is open already
        taken = await booked(server.client, alice, seat_id, soon, soon + timedelta(hours=1))
        locker = conn.transaction()
        await locker.start()
        # The request waits for this row lock: in flight when PostgreSQL goes away.
        await conn.execute("SELECT 1 FROM reservations WHERE id = $1 FOR UPDATE", taken["id"])
        request = asyncio.create_task(
            server.client.request(
                method, f"/reservations/{taken['id']}{action}", headers=alice.headers
            )
        )
        await wait_for_lock_waiter(conn)
        stopped = time.monotonic()
        await asyncio.to_thread(crash, private_postgres)
        response = await asyncio.wait_for(request, 10)
        answered = time.monotonic() - stopped
        log = server.log_tail()

    assert answered < PROMPT
    assert_unavailable(response)
    assert "unhandled error" not in log
