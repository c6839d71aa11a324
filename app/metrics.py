"""Prometheus metrics (prometheus-client), served at GET /metrics.

Counters are process-wide; each instance (or worker) is scraped on its own. Routes
are labelled by their template (``/reservations/{reservation_id}``), never by the
raw path, so the number of series stays small.
"""

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import Scope

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
        return str(scope[ROUTE_SCOPE_KEY])  # answered by the edge (app/edge.py)
    return "<unmatched>" if status == 404 else "<other>"


# The labelled children of REQUESTS and LATENCY, by (method, route, status): a dict
# lookup per request instead of two ``labels()`` calls (a lock and a tuple of strings
# each). Bounded like the series themselves: route templates times statuses.
_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe(scope: Scope, status: int, seconds: float) -> None:
    """Count and time one HTTP request by method, route template and status (the edge,
    app/edge.py, calls this for every request once it is answered)."""
    method: str = scope["method"]
    route = _route_label(scope, status)
    children = _CHILDREN.get((method, route, status))
    if children is None:
        children = (REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route))
        _CHILDREN[(method, route, status)] = children
    children[0].inc()
    children[1].observe(seconds)
