"""The FastAPI application: ``create_app(settings)``; ``app`` for ``uvicorn app.main:app``."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from pydantic import ValidationError
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import TimeoutError as RedisTimeoutError
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import apidocs, metrics, sessions, tracing
from app.apilimit import ApiLimiter, document_rate_limit
from app.cache import SeatCache
from app.clock import Clock, SystemClock
from app.db.embedded import EmbeddedPostgres
from app.db.migrations import upgrade_to_head
from app.db.pool import create_pool
from app.edge import Edge
from app.errors import install_error_handlers
from app.grpc.server import GrpcServer
from app.jobs.scheduler import start_scheduler
from app.logs import configure_logging
from app.middleware import cors_policy
from app.ratelimit import LoginLimiter
from app.realtime.broker import Broker
from app.realtime.clock_ticker import ClockTicker
from app.realtime.publisher import Publisher
from app.routers import (
    admin,
    auth,
    branch_admin,
    branches,
    health,
    notifications,
    oidc,
    outbox_admin,
    reservations,
    seats,
    streams,
    waitlist,
    webhooks_admin,
)
from app.security import PasswordHasher, TokenVerifier
from app.services.outbox import mail_writer
from app.services.rules import RulesCache
from app.settings import Settings, describe_validation_error
from app.state import AppState
from app.web import routes as web

log = logging.getLogger(__name__)

DESCRIPTION = """
Seat reservations for university libraries: find a free seat, book a slot nobody
else can take, check in or lose it, join a waitlist and hear when a seat frees up.

Times are ISO 8601 with an offset; responses are UTC (`Z`). Intervals are half-open
`[start_time, end_time)`. Every error is JSON `{detail, code}` (validation errors keep
FastAPI's 422 shape).
"""


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The app; ``clock`` is what every reader of "now" asks (default: the real clock)."""
    settings = settings or load_settings()
    app_clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[AppState]:
        async with AsyncExitStack() as stack:
            yield await _start(settings, app_clock, stack)

    app = FastAPI(
        title="DL-SMS",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
        # Tracing is app/tracing.py's (OTEL_EXPORTER_OTLP_ENDPOINT). FastAPI's own
        # telemetry would stand aside for it anyway; off, it costs no check per request
        # (it asked OpenTelemetry for its providers on every one: 2 % of a cached listing).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # /docs and /redoc come from apidocs: no CDN
        redoc_url=None,
    )
    install_error_handlers(app)
    # The finals-week paths first: FastAPI matches a request against the routers in this
    # order, and walking the ones before it cost a booking ~100 us (a tenth of its
    # Python) and an uncached listing ~80 us. No other router has a path under
    # /reservations, /seats or /branches, so the order changes nothing else.
    app.include_router(reservations.router)
    app.include_router(streams.router)  # before /seats/{seat_id}
    app.include_router(seats.router)
    app.include_router(branches.router)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(oidc.router)  # campus sign-in: /auth/providers, /auth/oidc/*
    app.include_router(waitlist.router)
    app.include_router(notifications.router)
    app.include_router(admin.router)
    app.include_router(branch_admin.router)
    app.include_router(outbox_admin.router)  # GET /admin/outbox (an extension)
    app.include_router(webhooks_admin.router)  # /admin/webhooks (issue 15)
    apidocs.install(app)
    web.install(app)  # the web app's pages and /static
    # Security headers, request id and the last word on errors, metrics, body limit,
    # CORS, rate limit and cached listings: one pass (app/edge.py says in which order).
    app.add_middleware(
        Edge,
        max_body_bytes=settings.MAX_BODY_BYTES,
        cors=cors_policy(app, settings.CORS_ORIGINS),
    )
    # Outermost: the login limits (and everything else) see the client behind a trusted
    # proxy, never the proxy. Here rather than in the server, so that `dlsms serve` (which
    # turns uvicorn's own off) and plain uvicorn agree; plain uvicorn runs the same
    # middleware first, from the same FORWARDED_ALLOW_IPS, and this second pass then
    # arrives at the same client again.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.FORWARDED_ALLOW_IPS)
    # With OTEL_EXPORTER_OTLP_ENDPOINT: a server span around all of the above (app/tracing.py).
    if tracing.install_from_env() is not None:
        tracing.instrument_app(app)
    sessions.document_csrf(app)
    document_rate_limit(app)  # 429 and the RateLimit fields on every counted operation
    return app


async def _disconnect_redis(pool: BlockingConnectionPool) -> None:
    """Close the Redis connections at shutdown. A close that times out (a loop busy ending
    thousands of streams at once takes longer than the 1 s socket timeout) is logged, not
    a failed shutdown: the process is leaving and its sockets go with it."""
    try:
        await pool.disconnect()
    except (RedisTimeoutError, TimeoutError) as exc:
        log.warning("closing the Redis connections timed out (%s); leaving them to exit", exc)


async def _start(settings: Settings, clock: Clock, stack: AsyncExitStack) -> AppState:
    """Open everything the process needs; ``stack`` closes it in reverse order."""
    if settings.jwt_secret_generated:
        log.warning("JWT_SECRET is not set: using a random one; tokens won't survive a restart")

    database_url = settings.DATABASE_URL
    if database_url is None:
        # Plain `uvicorn app.main:app` with no DATABASE_URL: run our own PostgreSQL.
        # (`dlsms serve` starts it before the workers and passes DATABASE_URL down.)
        embedded = EmbeddedPostgres(settings.EMBEDDED_PG_DIR)
        database_url = await anyio.to_thread.run_sync(embedded.start)
        stack.callback(embedded.stop)
        await anyio.to_thread.run_sync(upgrade_to_head, database_url)
        log.info("embedded PostgreSQL in %s", embedded.data_dir)

    stack.push_async_callback(tracing.flush)  # the spans of the last moments exported
    pool = await create_pool(database_url, settings)
    stack.push_async_callback(pool.close)

    redis: Redis | None = None
    if settings.REDIS_URL:
        # A blocking pool: under a rush more requests than connections may want Redis at
        # once; they wait a moment for one instead of failing (and pausing the cache).
        pool_of_redis = BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=200,
            timeout=1.0,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            # No PING before commands on idle connections: it cost ~6 % of a cached
            # listing; a dead connection fails the command instead, and the cache and
            # the broker fall back on their own.
            health_check_interval=0,
        )
        stack.push_async_callback(_disconnect_redis, pool_of_redis)
        redis = Redis(connection_pool=pool_of_redis)
        stack.push_async_callback(redis.aclose)

    cache = SeatCache(redis, settings.SEAT_CACHE_SECONDS)
    broker = Broker(redis, settings.REDIS_URL)
    await broker.start()
    stack.push_async_callback(broker.stop)
    publisher = Publisher(cache, broker, mail_writer(settings))  # mail: SMTP_URL set
    # On every instance, scheduler or not: it tells this process's seat streams.
    ticker = ClockTicker(pool, broker.hub, clock)
    ticker.start()
    stack.push_async_callback(ticker.stop)

    stack.callback(metrics.watch(pool, broker.hub))

    if settings.SCHEDULER_ENABLED:
        scheduler = start_scheduler(pool, publisher, settings, clock)
        stack.push_async_callback(scheduler.stop, settings.SHUTDOWN_GRACE_SECONDS)

    # Everything built so far lives as long as the process: keep the garbage collector
    # from walking it again in every full collection (shorter pauses, lower p99).
    gc.collect()
    gc.freeze()

    tokens = TokenVerifier(settings.jwt_secret)
    state = AppState(
        settings=settings,
        clock=clock,
        database_url=database_url,
        pool=pool,
        redis=redis,
        cache=cache,
        broker=broker,
        publisher=publisher,
        hasher=PasswordHasher(settings.BCRYPT_ROUNDS, settings.BCRYPT_CONCURRENCY),
        tokens=tokens,
        login_limiter=LoginLimiter(settings.LOGIN_RATE_LIMIT, redis),
        api_limiter=_api_limiter(settings, tokens, redis, cache, clock),
        rules=RulesCache(settings),
    )
    if settings.GRPC_PORT is not None:
        # In this event loop, over this state; stopped first at shutdown (streams end).
        grpc = GrpcServer(state, port=settings.GRPC_PORT, host=settings.GRPC_HOST)
        await grpc.start()
        stack.push_async_callback(grpc.stop, settings.SHUTDOWN_GRACE_SECONDS)
    return state


def _api_limiter(
    settings: Settings,
    tokens: TokenVerifier,
    redis: Redis | None,
    cache: SeatCache,
    clock: Clock,
) -> ApiLimiter | None:
    user = settings.user_rate_policy
    if user is None:
        return None
    return ApiLimiter(
        user=user,
        anonymous=settings.address_rate_policy,
        tokens=tokens,
        redis=redis,
        cache=cache,
        clock=clock,
    )


def load_settings() -> Settings:
    """Settings from the environment; a bad value stops the process with one clear line."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SystemExit(describe_validation_error(exc)) from None


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` looks up `app`: build it on first access rather than at
    # import time, so importing this module (tests, tools) reads no environment.
    if name == "app":
        settings = load_settings()
        # The process entry point owns logging.
        configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT, access_log=settings.ACCESS_LOG)
        return create_app(settings)
    raise AttributeError(name)
