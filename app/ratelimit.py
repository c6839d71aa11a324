"""Failed-login limits per student_id and per client address (moving one-minute window).

Counts live in Redis when it is configured, so every instance sees the same
counts; otherwise (or while Redis is down) in this process's memory.
"""

import logging
import math
import time
from typing import Any

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class LoginLimiter:
    def __init__(self, failures_per_minute: int, redis: Redis | None) -> None:
        self._item = RateLimitItemPerMinute(failures_per_minute)
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._redis: MovingWindowRateLimiter | None = None
        if redis is not None:
            # Share the application's Redis connection pool instead of opening another.
            shared_pool: dict[str, Any] = {"connection_pool": redis.connection_pool}
            storage: Storage = RedisStorage(
                "async+redis://", implementation="redispy", key_prefix="dlsms:login", **shared_pool
            )
            self._redis = MovingWindowRateLimiter(storage)

    async def retry_after(self, *, student_id: str, address: str) -> int | None:
        """Seconds until a login may be tried again, or None when it may be tried now."""
        keys = self._keys(student_id, address)
        try:
            return await self._retry_after(self._redis or self._memory, keys)
        except RedisError as exc:
            _warn_redis_down(exc)
            return await self._retry_after(self._memory, keys)

    async def record_failure(self, *, student_id: str, address: str) -> None:
        keys = self._keys(student_id, address)
        try:
            await self._hit(self._redis or self._memory, keys)
        except RedisError as exc:
            _warn_redis_down(exc)
            await self._hit(self._memory, keys)

    async def _retry_after(
        self, limiter: MovingWindowRateLimiter, keys: tuple[tuple[str, str], ...]
    ) -> int | None:
        waits = []
        for key in keys:
            if not await limiter.test(self._item, *key):
                stats = await limiter.get_window_stats(self._item, *key)
                waits.append(max(1, math.ceil(stats.reset_time - time.time())))
        return max(waits) if waits else None

    async def _hit(
        self, limiter: MovingWindowRateLimiter, keys: tuple[tuple[str, str], ...]
    ) -> None:
        for key in keys:
            await limiter.hit(self._item, *key)

    @staticmethod
    def _keys(student_id: str, address: str) -> tuple[tuple[str, str], ...]:
        return (("student", student_id.casefold()), ("address", address))


def _warn_redis_down(exc: RedisError) -> None:
    # Fail soft: counting in this process's memory beats refusing every login.
    # Redis is tried again on the next attempt, so shared counting resumes by itself.
    log.warning("login rate limit: Redis unavailable (%s); counting in memory", exc)
