"""What the lifespan builds once per process and every request can reach."""

from typing import TypedDict

from redis.asyncio import Redis

from app.apilimit import ApiLimiter
from app.cache import SeatCache
from app.clock import Clock
from app.db.pool import Pool
from app.ratelimit import LoginLimiter
from app.realtime.broker import Broker
from app.realtime.publisher import Publisher
from app.security import PasswordHasher, TokenVerifier
from app.services.rules import RulesCache
from app.settings import Settings


class AppState(TypedDict):
    settings: Settings
    clock: Clock
    database_url: str
    pool: Pool
    redis: Redis | None
    cache: SeatCache
    broker: Broker
    publisher: Publisher
    hasher: PasswordHasher
    tokens: TokenVerifier  # verified tokens, remembered until they expire
    login_limiter: LoginLimiter
    api_limiter: ApiLimiter | None  # None: API_RATE_LIMIT=0
    rules: RulesCache  # branch rules remembered for bookings (issue 17)
