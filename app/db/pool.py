"""The asyncpg connection pool."""

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson

from app.settings import Settings

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


async def create_pool(database_url: str, settings: Settings) -> Pool:
    pool = await asyncpg.create_pool(
        database_url,
        min_size=settings.DB_POOL_MIN_SIZE,
        max_size=settings.DB_POOL_MAX_SIZE,
        init=_init_connection,
        reset=_keep_session,
        # Connections idle for a while are closed, so a restarted PostgreSQL is
        # reconnected to lazily instead of leaving dead sockets in the pool.
        max_inactive_connection_lifetime=60,
        command_timeout=30,
    )
    assert pool is not None
    return pool
