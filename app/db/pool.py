"""The asyncpg connection pool, and the one place driver errors are classified.

A request, a sweep or a stream takes its connection through ``connection(pool)``:
an error that means "PostgreSQL cannot be reached right now" (refused or reset
socket, server restarting or shutting down, too many connections, a connection lost
mid-query) becomes ``DatabaseUnavailable``, a 503 the client can retry. Anything else
keeps its type, so an unrelated OSError (a file, a Redis or SMTP socket) is never
mistaken for the database being down.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import asyncpg
import orjson

from app.errors import DatabaseUnavailable
from app.settings import Settings

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # asyncpg's classes are generic only in asyncpg-stubs
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:
    Connection = asyncpg.Connection
    Pool = asyncpg.Pool


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: Connection) -> None:
    # jsonb columns (notification data, idempotent responses) come and go as Python objects.
    await conn.set_type_codec("jsonb", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")


async def _keep_session(conn: Connection) -> None:
    """Returning a connection to the pool costs no round trip.

    asyncpg's default reset runs ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release: a whole extra round trip per request. We leave no
    session state behind (advisory locks are transaction-scoped, settings are SET LOCAL,
    nothing LISTENs), and asyncpg still rolls back an open transaction itself."""


class FairPool(asyncpg.Pool):
    """asyncpg's pool, lending connections first come, first served.

    asyncpg keeps idle connections in an ``asyncio.Queue``. A connection released while
    requests wait goes to whoever asks next, often a newcomer, and the waiter it woke
    finds the queue empty and queues again, at the back: under a rush some requests
    waited many times their share (the finals-week rush's join phase: p50 68 ms, p99
    6.8 s). ``turns``, a FIFO semaphore as large as the pool, admits requests strictly in
    the order they asked; behind it the pool always has a connection, or room to open
    one, for whoever holds a turn (``connection`` takes both)."""

    __slots__ = ("turns",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.turns = asyncio.Semaphore(kwargs["max_size"])


async def create_pool(database_url: str, settings: Settings) -> Pool:
    # asyncpg.create_pool with its defaults, building our subclass.
    pool = FairPool(
        database_url,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        min_size=settings.DB_POOL_MIN_SIZE,
        max_size=settings.DB_POOL_MAX_SIZE,
        max_queries=50000,
        loop=None,
        init=_init_connection,
        reset=_keep_session,
        # Connections idle for a while are closed, so a restarted PostgreSQL is
        # reconnected to lazily instead of leaving dead sockets in the pool.
        max_inactive_connection_lifetime=60,
        command_timeout=30,
        # 0 turns named prepared statements off (PgBouncer < 1.21, transaction pooling).
        statement_cache_size=settings.DB_STATEMENT_CACHE_SIZE,
    )
    await pool
    return cast(Pool, pool)


# While taking a connection (connecting, or the pool closing): the socket's own errors
# (refused, reset; Python 3.11's plain OSError("Multiple exceptions: ...") when a host
# name resolves to several addresses and none answers) and connect timeouts too.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08: connection failures, lost mid-query
    asyncpg.CannotConnectNowError,  # 57P03: starting up or in recovery
    asyncpg.AdminShutdownError,  # 57P01: the server is shutting down (restart)
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.TooManyConnectionsError,  # 53300
    asyncpg.InterfaceError,  # the connection or the pool was closed under us
)
_UNREACHABLE_ON_CONNECT: tuple[type[BaseException], ...] = (*_UNREACHABLE, OSError, TimeoutError)


@asynccontextmanager
async def connection(pool: Pool) -> AsyncIterator[Connection]:
    """A pooled connection; database-down errors become ``DatabaseUnavailable``."""
    taken = False
    turn = pool.turns if isinstance(pool, FairPool) else contextlib.nullcontext()
    try:
        async with turn, pool.acquire() as conn:
            taken = True
            try:
                yield conn
            except _UNREACHABLE as exc:
                raise _unavailable(exc) from exc
    except _UNREACHABLE_ON_CONNECT as exc:
        if taken:  # the work's own OSError (a file, another socket): not ours to judge
            raise
        raise _unavailable(exc) from exc


def _unavailable(exc: BaseException) -> DatabaseUnavailable:
    log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    return DatabaseUnavailable()


READY_CHECK_SECONDS = 1.0


async def answers(pool: Pool, *, within: float = READY_CHECK_SECONDS) -> bool:
    """Readiness (``/ready`` and the gRPC health service): a ``SELECT 1`` through the
    pool within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            async with connection(pool) as conn:
                await conn.fetchval("SELECT 1")
    except (DatabaseUnavailable, TimeoutError) as exc:  # TimeoutError: our own deadline
        log.warning("readiness: database down: %s", type(exc).__name__)
        return False
    return True
