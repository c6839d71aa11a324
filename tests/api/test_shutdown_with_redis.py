"""Shutdown with Redis finishes, and promptly, whatever the Redis client does on the way
out: a close that times out (seen with 10,000 SSE streams ending at once: redis-py's
"Timed out closing connection after 1.0"), or a subscriber that swallows its
cancellation (seen when the process stops right after it started). LifespanManager gives
the shutdown 5 s."""

import logging

import asyncpg
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.main import create_app
from tests.conftest import make_settings


async def test_stopping_right_after_starting_with_redis_is_prompt(
    db: asyncpg.Connection, database_url: str, redis_url: str
) -> None:
    app = create_app(make_settings(database_url, REDIS_URL=redis_url))
    async with LifespanManager(app, shutdown_timeout=5) as manager:
        pool = manager._state["pool"]  # the lifespan's state (asgi-lifespan keeps it there)
    assert pool.is_closing()


async def test_a_redis_close_that_times_out_does_not_fail_shutdown(
    db: asyncpg.Connection,
    database_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def timed_out(self: BlockingConnectionPool, *args: object, **kwargs: object) -> None:
        raise RedisTimeoutError("Timed out closing connection after 1.0")

    monkeypatch.setattr(BlockingConnectionPool, "disconnect", timed_out)
    app = create_app(make_settings(database_url, REDIS_URL=redis_url))
    async with LifespanManager(app, shutdown_timeout=5) as manager:
        pool = manager._state["pool"]
    # The lifespan ended without raising, and what comes after Redis was still closed.
    assert pool.is_closing()
    assert "closing the Redis connections timed out" in caplog.text
    assert all(r.levelno < logging.ERROR for r in caplog.records if r.name == "app.main")
