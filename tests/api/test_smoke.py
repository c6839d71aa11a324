"""The app starts on the test database and answers its two operations endpoints."""

import httpx

from tests.conftest import bearer, login, register


async def test_ready_reports_database_up_and_redis_disabled(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "up", "redis": "disabled"}


async def test_register_login_me_round_trip(client: httpx.AsyncClient) -> None:
    user = await register(client, "S2000001")
    token = await login(client, "S2000001")
    me = await client.get("/auth/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    assert me.json()["suspended_until"] is None
