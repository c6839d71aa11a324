"""grpc.health.v1 following /ready: SERVING while PostgreSQL answers, else NOT_SERVING
(Redis is optional, as for /ready). A task checks every few seconds, so a Check or a
Watch costs no query; at shutdown every service turns NOT_SERVING."""

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from grpc_health.v1 import health
from grpc_health.v1 import health_pb2 as health_pb

from app.db import pool as pool_module
from app.db.pool import Pool

log = logging.getLogger(__name__)


class HealthWatcher:
    """Keeps the health servicer's statuses (overall "" and each service) up to date."""

    def __init__(self, pool: Pool, services: Iterable[str], interval: float) -> None:
        self.servicer = health.aio.HealthServicer()
        self._pool = pool
        self._services = ["", *services]
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.check()  # a status before the first client asks
        self._task = asyncio.create_task(self._run(), name="grpc-health")

    async def check(self) -> None:
        up = await pool_module.answers(self._pool)
        serving = health_pb.HealthCheckResponse
        status = serving.SERVING if up else serving.NOT_SERVING
        for service in self._services:
            await self.servicer.set(service, status)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except Exception:  # (the watcher must outlive any one failure)
                log.exception("gRPC health check failed")

    async def stop(self) -> None:
        await self.servicer.enter_graceful_shutdown()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
