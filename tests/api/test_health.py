"""Liveness and readiness (api.md, Operations): /health while the process runs,
/ready only while PostgreSQL answers; Redis is reported, never required."""

from typing import Any

import httpx
import pytest

from tests.conftest import ClientFactory

DEAD_REDIS_URL = "redis://127.0.0.1:1/0"
# Nothing listens on port 1. With DB_POOL_MIN_SIZE=0 the pool opens no connection at
# startup, so the app starts and then finds its database gone on first use.
DEAD_DATABASE = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none", "DB_POOL_MIN_SIZE": 0}


def json_body(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


async def test_health_is_ok_with_database_up_and_redis_disabled(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert json_body(response) == {"status": "ok", "database": "up", "redis": "disabled"}


async def test_ready_is_200_with_database_up_and_redis_disabled(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert json_body(response) == {"status": "ready", "database": "up", "redis": "disabled"}


@pytest.mark.redis
async def test_ready_reports_redis_up_when_configured_and_answering(
    make_client: ClientFactory, redis_url: str
) -> None:
    client = await make_client(REDIS_URL=redis_url)
    response = await client.get("/ready")
    assert response.status_code == 200
    assert json_body(response) == {"status": "ready", "database": "up", "redis": "up"}


async def test_ready_stays_200_and_reports_redis_down_when_redis_does_not_answer(
    make_client: ClientFactory,
) -> None:
    client = await make_client(REDIS_URL=DEAD_REDIS_URL)
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert json_body(ready) == {"status": "ready", "database": "up", "redis": "down"}
    health = await client.get("/health")
    assert health.status_code == 200
    assert json_body(health) == {"status": "ok", "database": "up", "redis": "down"}


async def test_ready_is_503_not_ready_when_postgresql_does_not_answer(
    make_client: ClientFactory,
) -> None:
    client = await make_client(**DEAD_DATABASE)
    response = await client.get("/ready")
    assert response.status_code == 503
    assert json_body(response) == {"status": "not_ready", "database": "down", "redis": "disabled"}


async def test_health_stays_200_when_postgresql_does_not_answer(
    make_client: ClientFactory,
) -> None:
    client = await make_client(**DEAD_DATABASE)
    response = await client.get("/health")
    assert response.status_code == 200
    assert json_body(response) == {"status": "ok", "database": "down", "redis": "disabled"}


async def test_login_is_json_503_service_unavailable_when_postgresql_does_not_answer(
    make_client: ClientFactory,
) -> None:
    client = await make_client(**DEAD_DATABASE)
    response = await client.post(
        "/auth/login", json={"student_id": "S1000001", "password": "correct horse"}
    )
    assert response.status_code == 503
    body = json_body(response)
    assert body["code"] == "service_unavailable"
    assert set(body) == {"detail", "code"}
