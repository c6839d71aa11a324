"""The app itself takes the client address from X-Forwarded-For, and only when the peer is
in FORWARDED_ALLOW_IPS: `dlsms serve` turns uvicorn's own pass off and relies on this.
(tests/ops/test_forwarded.py checks the same through real nginx and uvicorn.)"""

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

from app.main import create_app
from tests.conftest import make_settings

PROXY = "10.0.0.2"


@pytest.fixture
async def app(db: asyncpg.Connection, database_url: str) -> AsyncIterator[ASGIApp]:
    settings = make_settings(database_url, FORWARDED_ALLOW_IPS=PROXY, LOGIN_RATE_LIMIT=2)
    async with LifespanManager(create_app(settings)) as manager:
        yield manager.app


def peer(app: ASGIApp, address: str) -> httpx.AsyncClient:
    """A client whose connection comes from ``address`` as the server would report it."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def failed_login(client: httpx.AsyncClient, student_id: str, forwarded_for: str) -> int:
    """Status of a wrong password for an unknown ``student_id`` (a new one each time, so only
    the limit per client address applies)."""
    response = await client.post(
        "/auth/login",
        json={"student_id": student_id, "password": "wrong password"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    assert response.json()["code"] == {401: "invalid_credentials", 429: "rate_limited"}.get(
        response.status_code
    ), response.text
    return response.status_code


async def test_clients_behind_a_trusted_proxy_are_limited_at_their_own_addresses(
    app: ASGIApp,
) -> None:
    async with peer(app, PROXY) as proxy:
        first = [await failed_login(proxy, f"A{i}", "192.0.2.1") for i in range(3)]
        other = await failed_login(proxy, "B0", "192.0.2.2")

    assert first == [401, 401, 429]
    assert other == 401


async def test_a_peer_that_is_not_a_trusted_proxy_is_counted_at_its_own_address(
    app: ASGIApp,
) -> None:
    async with peer(app, "10.0.0.9") as direct, peer(app, PROXY) as proxy:
        forged = [await failed_login(direct, f"D{i}", f"192.0.2.{i}") for i in range(3)]
        # Its failures were counted at 10.0.0.9, not at any address it named.
        at_its_address = await failed_login(proxy, "E0", "10.0.0.9")
        at_a_named_one = await failed_login(proxy, "E1", "192.0.2.0")

    assert forged == [401, 401, 429]
    assert at_its_address == 429
    assert at_a_named_one == 401
