"""Prometheus metrics (prometheus-client), served at GET /metrics.

Counters are process-wide; each instance (or worker) is scraped on its own. Routes
are labelled by their template (``/reservations/{reservation_id}``), never by the
raw path, so the number of series stays small.
"""

import time
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.pool import Pool
from app.realtime.broker import Hub

REQUESTS = Counter(
    "dlsms_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "dlsms_http_request_duration_seconds",
    "Time to answer an HTTP request (for streams: until the stream ends)",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CACHE_LOOKUPS = Counter(
    "dlsms_seat_cache_lookups_total", "Seat-listing cache lookups", ["result"]
)  # hit, miss, off
SWEEP_RUNS = Counter("dlsms_sweep_runs_total", "Sweep ticks", ["outcome"])  # ok, failed
SWEEP_ROWS = Counter(
    "dlsms_sweep_rows_total", "Rows changed by sweeps", ["kind"]
)  # no_show, completed, expired_offer

RATE_LIMITED = Counter(
    "dlsms_rate_limited_total", "Requests refused by the per-client rate limit", ["policy"]
)  # user, address

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Set by middleware that answers a request before the router could name its route.
ROUTE_SCOPE_KEY = "dlsms.route"


def render() -> bytes:
    return generate_latest(REGISTRY)


class _StateCollector(Collector):
    """Gauges read at scrape time from the pools and stream hubs of this process's apps
    (one in production; tests build several)."""

    def __init__(self) -> None:
        self._sources: list[tuple[Pool, Hub]] = []

    def watch(self, pool: Pool, hub: Hub) -> Callable[[], None]:
        source = (pool, hub)
        self._sources.append(source)
        return lambda: self._sources.remove(source)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pools = [pool for pool, _ in self._sources]
        size = sum(pool.get_size() for pool in pools)
        idle = sum(pool.get_idle_size() for pool in pools)
        yield GaugeMetricFamily("dlsms_db_pool_size", "Open PostgreSQL connections", size)
        yield GaugeMetricFamily(
            "dlsms_db_pool_in_use", "PostgreSQL connections lent out", size - idle
        )
        yield GaugeMetricFamily(
            "dlsms_db_pool_max",
            "Pool ceiling (DB_POOL_MAX_SIZE)",
            sum(pool.get_max_size() for pool in pools),
        )
        yield GaugeMetricFamily(
            "dlsms_sse_subscribers",
            "Open live streams in this process",
            sum(hub.subscriber_count for _, hub in self._sources),
        )


_STATE = _StateCollector()
REGISTRY.register(_STATE)


def watch(pool: Pool, hub: Hub) -> Callable[[], None]:
    """Report this pool and hub at /metrics until the returned function is called."""
    return _STATE.watch(pool, hub)


def _route_label(scope: Scope, status: int) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if ROUTE_SCOPE_KEY in scope:
        return str(scope[ROUTE_SCOPE_KEY])  # answered before routing (app/fastpath.py)
    return "<unmatched>" if status == 404 else "<other>"


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = _route_label(scope, status)
            method = scope["method"]
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - started)
