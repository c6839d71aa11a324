"""Test fixtures on a real PostgreSQL (and a real Redis where one answers).

Where the database comes from:
- TEST_DATABASE_URL, else DATABASE_URL: a server on which a fresh database
  ``dlsms_test_<worker>_<pid>_app`` is created for the session (the named database is untouched);
- neither: an embedded PostgreSQL in a temporary directory.
The schema is migrated once per session; each test starts from empty tables.

Redis: the server of TEST_REDIS_URL (default redis://127.0.0.1:6379). Each run (each
xdist worker) claims a database of its own there, as it has its own PostgreSQL database,
so two runs on one machine never flush each other. Tests marked ``redis`` skip when none
answers, unless DLSMS_REQUIRE_REDIS=1 (CI), where they fail instead.
"""

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from alembic.script import ScriptDirectory
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from app.clock import Clock
from app.db import pool as pool_module
from app.db.embedded import EmbeddedPostgres
from app.db.migrations import alembic_config, upgrade_to_head
from app.db.pool import Pool
from app.main import create_app
from app.models import Role
from app.settings import Settings
from tests.factories import TEST_JWT_SECRET as TEST_JWT_SECRET
from tests.factories import Student, add_student
from tests.factories import bearer as bearer
from tests.factories import login as login
from tests.factories import register as register

# Every application table, read from the migrated schema, so that a table added by a
# later migration is emptied between tests too.
_APP_TABLES = """
    SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables
    WHERE schemaname = 'public' AND tablename <> 'alembic_version'
"""


def _migration_head() -> str:
    head = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()
    assert head is not None
    return head


# The newest revision in alembic/versions: what a migrated database records.
MIGRATION_HEAD = _migration_head()


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (works for TCP and unix-socket URLs)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _worker() -> str:
    # The pid too: two test runs on one server (two checkouts, a helper session) must
    # not drop each other's databases.
    return f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


@pytest.fixture(scope="session")
def database_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    embedded = EmbeddedPostgres(tmp_path_factory.mktemp("embedded") / "pg")
    try:
        yield embedded.start()
    finally:
        embedded.stop()


async def _recreate_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        # Test data need not survive a crash: commits (and the TRUNCATE after every
        # test) don't wait for the disk.
        await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    finally:
        await conn.close()


async def _drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def fresh_database(database_server_url: str) -> Iterator[Callable[[str], str]]:
    """Factory: an empty database with the given suffix (dropped at the end of the session)."""
    created: list[str] = []

    def make(suffix: str) -> str:
        name = f"dlsms_test_{_worker()}_{suffix}"
        asyncio.run(_recreate_database(database_server_url, name))
        created.append(name)
        return with_database(database_server_url, name)

    yield make
    for name in created:
        asyncio.run(_drop_database(database_server_url, name))


@pytest.fixture(scope="session")
def database_url(fresh_database: Callable[[str], str]) -> str:
    """The session's migrated test database."""
    url = fresh_database("app")
    upgrade_to_head(url)
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, for arranging and asserting in SQL.
    Every table is emptied after the test (committed data is what concurrency tests need)."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        tables = await conn.fetchval(_APP_TABLES)
        await _truncate(conn, tables)
        await conn.close()


async def _truncate(conn: asyncpg.Connection, tables: str) -> None:
    # Instances still running (tests/ops clusters) have background jobs reading the tables
    # every second; TRUNCATE locking them one by one can meet such a job holding one and
    # wanting another, and PostgreSQL aborts one of the two. Ours just tries again.
    for attempt in range(1, 6):
        try:
            await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
            return
        except asyncpg.DeadlockDetectedError:
            if attempt == 5:
                raise
            await asyncio.sleep(0.1 * attempt)


PoolFactory = Callable[[Settings], Awaitable[Pool]]


@pytest.fixture
async def make_pool(db: asyncpg.Connection, database_url: str) -> AsyncIterator[PoolFactory]:
    """Factory: an instance's own pool on the test database, with these settings (jobs
    and sweeps called directly; one per instance when a test plays several). Depends on
    ``db``: the pools close before the tables are emptied."""
    pools: list[Pool] = []

    async def make(settings: Settings) -> Pool:
        pool = await pool_module.create_pool(database_url, settings)
        pools.append(pool)
        return pool

    try:
        yield make
    finally:
        for pool in pools:
            await pool.close()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "REDIS_URL": None,
        "JWT_SECRET": TEST_JWT_SECRET,
        "DLSMS_ENV": "test",
        "BCRYPT_ROUNDS": 4,
        "SCHEDULER_ENABLED": False,
        "DB_POOL_MIN_SIZE": 1,
        "DB_POOL_MAX_SIZE": 20,
        "CORS_ORIGINS": [],
        # Tests send many requests per user in a moment; the limit's own tests turn it on.
        "API_RATE_LIMIT": "0",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


AppClient = httpx.AsyncClient
ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_client(db: asyncpg.Connection, database_url: str) -> AsyncIterator[ClientFactory]:
    """Factory: a client for an app built with ``make_settings(**overrides)``, lifespan run.
    Pass ``clock`` (e.g. a ``tests.factories.FrozenClock``) to move the service's time, and
    ``app_hook`` to change the app (extra routes) before start."""
    async with AsyncExitStack() as stack:

        async def make(
            app_hook: Callable[[FastAPI], None] | None = None,
            clock: Clock | None = None,
            **overrides: Any,
        ) -> httpx.AsyncClient:
            app = create_app(make_settings(database_url, **overrides), clock=clock)
            if app_hook is not None:
                app_hook(app)
            manager = await stack.enter_async_context(LifespanManager(app))
            transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://testserver")
            )

        yield make


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client()


# The databases a test run may claim: not 0 (everyone's default), nor 3, 4 and 6, which
# loadtest/ flushes for its benchmarks. A claim is a key on database 0, released at exit;
# its expiry frees the database of a run that was killed.
TEST_REDIS_DATABASES = range(7, 16)
_REDIS_CLAIM = "dlsms:test-run-lock:{}"
_REDIS_CLAIM_SECONDS = 6 * 3600
_RELEASE_OWN_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def with_redis_database(url: str, number: int) -> str:
    """``url`` pointing at Redis database ``number``."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


@pytest.fixture(scope="session")
def redis_database_url() -> Iterator[str]:
    """This run's own Redis database (claimed on the TEST_REDIS_URL server, emptied when
    claimed and at the end, released at exit)."""
    server_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
    claims = SyncRedis.from_url(with_redis_database(server_url, 0), socket_connect_timeout=1)
    try:
        claims.ping()
    except Exception as exc:  # any failure means "no Redis here"
        claims.close()
        if os.environ.get("DLSMS_REQUIRE_REDIS") == "1":
            pytest.fail(f"DLSMS_REQUIRE_REDIS=1 but no Redis answers at {server_url}: {exc}")
        pytest.skip(f"no Redis answers at {server_url}")
    owner = f"{socket.gethostname()}:{os.getpid()}"
    number = next(
        (
            n
            for n in TEST_REDIS_DATABASES
            if claims.set(_REDIS_CLAIM.format(n), owner, nx=True, ex=_REDIS_CLAIM_SECONDS)
        ),
        None,
    )
    if number is None:
        claims.close()
        pytest.fail(f"every test Redis database {TEST_REDIS_DATABASES} is claimed by a run")
    url = with_redis_database(server_url, number)
    own = SyncRedis.from_url(url, socket_connect_timeout=1)
    try:
        own.flushdb()
        yield url
    finally:
        own.flushdb()
        own.close()
        claims.eval(_RELEASE_OWN_CLAIM, 1, _REDIS_CLAIM.format(number), owner)
        claims.close()


@pytest.fixture
async def redis_url(redis_database_url: str) -> AsyncIterator[str]:
    """This run's Redis database, emptied before and after the test."""
    redis = Redis.from_url(redis_database_url, socket_connect_timeout=1)
    await redis.flushdb()
    try:
        yield redis_database_url
    finally:
        await redis.flushdb()
        await redis.aclose()


REPO_ROOT = Path(__file__).resolve().parents[1]


# The students and the admin most API tests act as: rows with minted tokens (no bcrypt).


@pytest.fixture
async def alice(db: asyncpg.Connection) -> Student:
    return await add_student(db, "S0000001")


@pytest.fixture
async def bob(db: asyncpg.Connection) -> Student:
    return await add_student(db, "S0000002")


@pytest.fixture
async def carol(db: asyncpg.Connection) -> Student:
    return await add_student(db, "S0000003")


@pytest.fixture
async def dave(db: asyncpg.Connection) -> Student:
    return await add_student(db, "S0000004")


@pytest.fixture
async def admin(db: asyncpg.Connection) -> Student:
    return await add_student(db, "ADMIN01", role=Role.ADMIN)
