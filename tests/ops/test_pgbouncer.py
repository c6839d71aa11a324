"""The app behind PgBouncer in transaction pooling mode (README, "When to add PgBouncer").

PgBouncer is Debian's (1.18): it does not track protocol-level prepared statements, which
came in 1.21 with ``max_prepared_statements``. Twenty app connections share five server
connections, so the consecutive transactions of one app connection land on different
server connections and nothing may outlive a transaction. With
``DB_STATEMENT_CACHE_SIZE=0`` every feature that leans on PostgreSQL works through it;
with asyncpg's default statement cache the same app breaks (the negative control), so
the setting is what makes it work. Skipped without /usr/sbin/pgbouncer, failed instead
under DLSMS_REQUIRE_PGBOUNCER=1 (CI)."""

import asyncio
import getpass
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import asyncpg
import httpx
import pytest

from app.db.migrations import upgrade_to_head
from app.db.pool import Connection, create_pool
from tests.concurrency.test_booking_races import active_rows, outcome, tomorrow_at
from tests.conftest import MIGRATION_HEAD, ClientFactory, make_settings
from tests.factories import (
    HOUR,
    MINUTE,
    add_branch,
    add_reservation,
    add_seat,
    add_student,
    add_students,
    booking,
    cancel,
    joined,
    my_notifications,
)
from tests.ops.support import ChildServer, require_binary

# Few server connections for many client ones: what makes transaction pooling bite.
SERVER_POOL = 5
APP_POOL = 20
# What asyncpg's statement cache meets behind PgBouncer < 1.21 in transaction mode.
PREPARED_STATEMENT_LOST = (
    asyncpg.InvalidSQLStatementNameError,  # prepared statement "__asyncpg_stmt_N__" does not exist
    asyncpg.DuplicatePreparedStatementError,
)


class PgBouncer(ChildServer):
    """A pgbouncer of this test alone on a free loopback port, in transaction pooling mode,
    in front of the PostgreSQL of ``server_url`` (any database on it)."""

    name = "pgbouncer"

    def __init__(self, binary: str, directory: Path, server_url: str) -> None:
        super().__init__(binary, directory)
        self.server = urlsplit(server_url)

    def url(self, database_url: str) -> str:
        """``database_url`` (a database on the same server) reached through PgBouncer."""
        target = urlsplit(database_url)
        login = target.netloc.rpartition("@")[0]
        return target._replace(netloc=f"{login}@127.0.0.1:{self.port}", query="").geturl()

    def start(self, within: float = 10) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # TCP, or the Unix socket directory of a ``?host=/dir`` URL (embedded PostgreSQL).
        host = dict(parse_qsl(self.server.query)).get("host") or self.server.hostname
        user = self.server.username or getpass.getuser()
        userlist = self.directory / "userlist.txt"
        # trust: clients are not asked for a password; PgBouncer logs in to PostgreSQL as
        # the user named here, with this password (none for a trusting test server).
        userlist.write_text(f'"{user}" "{self.server.password or ""}"\n')
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={host or '127.0.0.1'} port={self.server.port or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {userlist}\n"
            f"pool_mode = transaction\ndefault_pool_size = {SERVER_POOL}\n"
            "max_client_conn = 500\n"
        )
        # PgBouncer refuses to run as root; with -u it reads its files first, then drops
        # to that user (CI runs the tests as root).
        as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.launch([self.binary, *as_user, str(config)], within)


@pytest.fixture
def pgbouncer(tmp_path: Path, database_server_url: str) -> Iterator[PgBouncer]:
    binary = require_binary(
        "pgbouncer", "/usr/sbin/pgbouncer", required_by="DLSMS_REQUIRE_PGBOUNCER"
    )
    bouncer = PgBouncer(binary, tmp_path / "pgbouncer", database_server_url)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


BouncedFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def bounced(
    pgbouncer: PgBouncer, make_client: ClientFactory, database_url: str, redis_url: str
) -> BouncedFactory:
    """Factory: an app whose whole pool (APP_POOL connections, opened at start) goes
    through PgBouncer. Taken after ``pgbouncer``, so the apps stop before it does."""

    async def make(**overrides: Any) -> httpx.AsyncClient:
        settings: dict[str, Any] = {
            "DATABASE_URL": pgbouncer.url(database_url),
            "REDIS_URL": redis_url,
            "DB_POOL_MIN_SIZE": APP_POOL,
            "DB_POOL_MAX_SIZE": APP_POOL,
            "DB_STATEMENT_CACHE_SIZE": 0,
            **overrides,
        }
        return await make_client(**settings)

    return make


async def server_connections(db: asyncpg.Connection) -> int:
    """Sessions on the test database other than ``db`` itself: PgBouncer's."""
    count: int = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return count


async def test_one_app_connection_meets_several_server_connections(
    pgbouncer: PgBouncer, database_url: str
) -> None:
    # What every other test here leans on: the pooling really bites. Twenty connections
    # each asking twenty times which PostgreSQL session answers.
    settings = make_settings(
        pgbouncer.url(database_url),
        DB_POOL_MIN_SIZE=APP_POOL,
        DB_POOL_MAX_SIZE=APP_POOL,
        DB_STATEMENT_CACHE_SIZE=0,
    )
    assert settings.DATABASE_URL is not None
    pool = await create_pool(settings.DATABASE_URL, settings)
    try:
        conns = [await pool.acquire() for _ in range(APP_POOL)]

        async def backends(conn: Connection) -> set[int]:
            return {await conn.fetchval("SELECT pg_backend_pid()") for _ in range(20)}

        seen = await asyncio.gather(*(backends(conn) for conn in conns))
        for conn in conns:
            await pool.release(conn)
    finally:
        await pool.close()
    assert max(len(pids) for pids in seen) > 1  # one client connection, several sessions
    assert len(set().union(*seen)) <= SERVER_POOL


async def test_fifty_students_racing_for_one_seat_through_pgbouncer_get_one_booking(
    bounced: BouncedFactory, db: asyncpg.Connection
) -> None:
    api = await bounced()
    seat = await add_seat(db, await add_branch(db), "P1")
    students = await add_students(db, "PGB", 50)
    start = tomorrow_at(10)
    responses = await asyncio.gather(
        *(
            api.post("/reservations", json=booking(seat, start, start + HOUR), headers=s.headers)
            for s in students
        )
    )
    assert sorted(outcome(r) for r in responses) == [(201, None)] + [(409, "seat_conflict")] * 49
    [winner] = [r.json() for r in responses if r.status_code == 201]
    assert [(row["id"], row["seat_id"]) for row in await active_rows(db)] == [(winner["id"], seat)]
    # Twenty app connections, yet PostgreSQL saw no more than PgBouncer's five.
    assert 0 < await server_connections(db) <= SERVER_POOL


async def test_one_student_booking_ten_seats_at_once_through_pgbouncer_gets_one(
    bounced: BouncedFactory, db: asyncpg.Connection
) -> None:
    api = await bounced()
    branch = await add_branch(db)
    seats = [await add_seat(db, branch, f"P{n}") for n in range(10)]
    student = await add_student(db, "S7000001")
    start = tomorrow_at(10)
    responses = await asyncio.gather(
        *(
            api.post(
                "/reservations", json=booking(seat, start, start + HOUR), headers=student.headers
            )
            for seat in seats
        )
    )
    assert sorted(outcome(r) for r in responses) == [(201, None)] + [(409, "user_overlap")] * 9
    assert len(await active_rows(db)) == 1


async def test_a_daily_quota_holds_under_concurrency_through_pgbouncer(
    bounced: BouncedFactory, db: asyncpg.Connection
) -> None:
    # The quota is counted under a pg_advisory_xact_lock per student and branch: it must
    # still serialise when each transaction rides a different server connection.
    api = await bounced()
    branch = await add_branch(db, "Quota")
    await db.execute("UPDATE branches SET max_bookings_per_day = 3 WHERE id = $1", branch)
    seats = [await add_seat(db, branch, f"Q{n:02d}") for n in range(20)]
    student = await add_student(db, "S7000002")
    start = tomorrow_at(0)  # twenty different hours of one (UTC) day
    responses = await asyncio.gather(
        *(
            api.post(
                "/reservations",
                json=booking(seat, start + n * HOUR, start + n * HOUR + 30 * MINUTE),
                headers=student.headers,
            )
            for n, seat in enumerate(seats)
        )
    )
    assert (
        sorted(outcome(r) for r in responses) == [(201, None)] * 3 + [(409, "quota_exceeded")] * 17
    )
    assert len(await active_rows(db)) == 3


async def test_concurrent_repeats_of_an_idempotency_key_through_pgbouncer_book_once(
    bounced: BouncedFactory, db: asyncpg.Connection
) -> None:
    # The repeats wait on the key's row under SET LOCAL lock_timeout; the stored answer
    # is jsonb, through the codec every app connection registered at start.
    api = await bounced()
    seat = await add_seat(db, await add_branch(db), "P1")
    student = await add_student(db, "S7000003")
    start = tomorrow_at(10)
    headers = {**student.headers, "Idempotency-Key": "through-pgbouncer"}
    responses = await asyncio.gather(
        *(
            api.post("/reservations", json=booking(seat, start, start + HOUR), headers=headers)
            for _ in range(20)
        )
    )
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
    assert sorted(replayed, key=str) == [None] + ["true"] * 19
    assert await db.fetchval("SELECT count(*) FROM reservations") == 1


async def test_a_cancel_through_pgbouncer_offers_the_seat_to_the_waitlist(
    bounced: BouncedFactory, db: asyncpg.Connection
) -> None:
    api = await bounced()
    seat = await add_seat(db, await add_branch(db), "P1")
    alice = await add_student(db, "S7000004")
    bob = await add_student(db, "S7000005")
    start = tomorrow_at(10)
    booked = await add_reservation(
        db, user_id=alice.id, seat_id=seat, start=start, end=start + HOUR
    )
    entry = await joined(api, bob, seat_id=seat, start=start, end=start + HOUR)

    await cancel(api, alice, booked)

    [note] = await my_notifications(api, bob, kind="waitlist.offer")
    assert (note["data"]["entry_id"], note["data"]["seat_id"]) == (entry["id"], seat)
    held = await db.fetchrow(
        "SELECT user_id, status FROM reservations WHERE id = $1", note["data"]["reservation_id"]
    )
    assert held is not None and (held["user_id"], held["status"]) == (bob.id, "HELD")


def test_migrations_run_through_pgbouncer(
    pgbouncer: PgBouncer, fresh_database: Callable[[str], str]
) -> None:
    # env.py takes pg_advisory_xact_lock and migrates in one transaction, so its
    # statements (SQLAlchemy prepares named ones) all meet one server connection.
    direct = fresh_database("pgbouncer_migrate")
    upgrade_to_head(pgbouncer.url(direct))
    upgrade_to_head(pgbouncer.url(direct))  # the second finds nothing to do

    async def recorded() -> str:
        conn = await asyncpg.connect(direct)
        try:
            version: str = await conn.fetchval("SELECT version_num FROM alembic_version")
            return version
        finally:
            await conn.close()

    assert asyncio.run(recorded()) == MIGRATION_HEAD


async def test_the_default_statement_cache_breaks_behind_pgbouncer_1_18(
    bounced: BouncedFactory, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # The negative control: the same race with asyncpg's named, cached statements. A
    # statement prepared in one transaction is reused in a later one that PgBouncer gave
    # another server connection, where it was never prepared. (asyncpg numbers its
    # statements process-wide, so two connections never collide on a name: the error is
    # "does not exist", not DuplicatePreparedStatementError.)
    api = await bounced(DB_STATEMENT_CACHE_SIZE=100)
    seat = await add_seat(db, await add_branch(db), "P1")
    students = await add_students(db, "NEG", 50)
    start = tomorrow_at(10)
    responses = await asyncio.gather(
        *(
            api.post("/reservations", json=booking(seat, start, start + HOUR), headers=s.headers)
            for s in students
        )
    )
    broken = [outcome(r) for r in responses if r.status_code >= 500]
    assert broken, "named prepared statements survived transaction pooling"
    assert set(broken) == {(500, "internal_error")}
    logged = [rec.exc_info[1] for rec in caplog.records if rec.exc_info]
    assert len(logged) == len(broken)
    assert all(isinstance(exc, PREPARED_STATEMENT_LOST) for exc in logged), logged
    assert len(await active_rows(db)) <= 1  # broken, but never double-booked
