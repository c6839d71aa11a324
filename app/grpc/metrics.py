"""Prometheus metrics of the gRPC calls, served with the rest at GET /metrics."""

import time

import grpc
from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "dlsms_grpc_requests_total", "gRPC calls answered", ["method", "code"]
)  # method: /dlsms.v1.SeatService/GetSeats; code: OK, NOT_FOUND, ...
LATENCY = Histogram(
    "dlsms_grpc_request_duration_seconds",
    "Time to answer a gRPC call (for streams: until the stream ends)",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observe(method: str, code: grpc.StatusCode, started: float) -> None:
    REQUESTS.labels(method, code.name).inc()
    LATENCY.labels(method).observe(time.perf_counter() - started)
