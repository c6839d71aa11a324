"""Liveness and readiness."""

import asyncio
import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from redis.exceptions import RedisError

from app import metrics
from app.db import pool as pool_module
from app.deps import app_state

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)


DependencyState = Literal["up", "down", "disabled"]


class HealthOut(BaseModel):
    status: Literal["ok", "ready", "not_ready"]
    database: DependencyState
    redis: DependencyState


@router.get("/health", response_model=HealthOut)
async def health(request: Request) -> HealthOut:
    """200 while the process runs; also reports what it sees of PostgreSQL and Redis."""
    database, redis = await asyncio.gather(_database_state(request), _redis_state(request))
    return HealthOut(status="ok", database=database, redis=redis)


@router.get(
    "/ready",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "PostgreSQL does not answer"}},
)
async def ready(request: Request) -> JSONResponse:
    """200 when PostgreSQL answers (Redis is optional: reported, not required), else 503."""
    database, redis = await asyncio.gather(_database_state(request), _redis_state(request))
    body = HealthOut(
        status="ready" if database == "up" else "not_ready", database=database, redis=redis
    )
    return JSONResponse(body.model_dump(), status_code=200 if database == "up" else 503)


async def _database_state(request: Request) -> DependencyState:
    return "up" if await pool_module.answers(app_state(request)["pool"]) else "down"


async def _redis_state(request: Request) -> DependencyState:
    redis = app_state(request)["redis"]
    if redis is None:
        return "disabled"
    try:
        async with asyncio.timeout(pool_module.READY_CHECK_SECONDS):
            await redis.ping()
    except (RedisError, OSError, TimeoutError):
        return "down"
    return "up"


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def prometheus_metrics() -> Response:
    """Prometheus metrics of this process: requests by route and status, latency, pool
    use, live streams, sweeps, cache hits. Expose it to the monitoring network only."""
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
