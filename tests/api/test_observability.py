"""Observability: Prometheus metrics at /metrics and JSON log lines with request ids."""

import io
import json
import logging
import re

import asyncpg
import httpx

from app.logs import configure_logging, request_id_var
from tests.conftest import ClientFactory
from tests.factories import add_branch, add_seat


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


async def test_metrics_count_requests_by_route_template_and_status(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    seat = await add_seat(db, await add_branch(db, "Main"), "M1")
    before = (await client.get("/metrics")).text

    await client.get(f"/seats/{seat}")
    await client.get(f"/seats/{seat}")
    await client.get("/seats/999999")
    await client.get("/no/such/path")
    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    route = {"method": "GET", "route": "/seats/{seat_id}"}

    def grew(status: str) -> float:
        name = "dlsms_http_requests_total"
        return sample(after, name, **route, status=status) - sample(
            before, name, **route, status=status
        )

    assert grew("200") == 2
    assert grew("404") == 1
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert sample(after, "dlsms_http_requests_total", **unmatched) >= 1
    assert "dlsms_http_request_duration_seconds_bucket" in after


async def test_metrics_report_pool_and_stream_gauges(make_client: ClientFactory) -> None:
    client = await make_client(DB_POOL_MAX_SIZE=7)

    text = (await client.get("/metrics")).text

    assert sample(text, "dlsms_db_pool_max") == 7
    assert sample(text, "dlsms_db_pool_size") >= 1
    assert "dlsms_sse_subscribers 0.0" in text
    assert "dlsms_seat_cache_lookups_total" in text


def test_json_log_lines_carry_the_request_id() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json")
    root = logging.getLogger()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    token = request_id_var.set("req-123")
    try:
        logging.getLogger("app.test").info("booked seat %d", 7)
    finally:
        request_id_var.reset(token)
        root.handlers.clear()

    line = json.loads(stream.getvalue().strip())
    assert line["message"] == "booked seat 7"
    assert line["request_id"] == "req-123"
    assert line["level"] == "INFO"
    assert line["logger"] == "app.test"
    assert "time" in line
