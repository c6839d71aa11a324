"""Campus sign-in tests against a real OpenID provider (tests/oidc/provider.py: the
oidc-provider-mock package in its own process) and real uvicorn processes of the app.

- ``provider``: the provider for the session; ``provider.mode(...)`` and
  ``provider.rotate()`` make it misbehave (reset to normal after each test).
- ``campus``: the app with OIDC_* pointing at it (admin group ``library-staff``);
  ``plain``: the app without campus sign-in.
- ``sign_in_over_http(...)``: the whole redirect dance without a browser: what a browser
  does, with its own cookie jar.
"""

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.realtime.servers import Server, Servers, free_port

CLIENT_ID = "dlsms-test"
CLIENT_SECRET = "test-client-secret-not-a-real-one"
ADMIN_GROUP = "library-staff"
SETTINGS: dict[str, Any] = {"API_RATE_LIMIT": "0", "LOGIN_RATE_LIMIT": 1000}


@dataclass
class Provider:
    url: str
    client: httpx.AsyncClient

    async def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        (await self.client.put(f"/users/{sub}", json=claims)).raise_for_status()

    async def mode(self, mode: str) -> None:
        (await self.client.post("/_test/mode", json={"mode": mode})).raise_for_status()

    async def rotate(self) -> None:
        (await self.client.post("/_test/rotate")).raise_for_status()

    async def jwks_requests(self) -> int:
        count: int = (await self.client.get("/_test/stats")).json()["jwks_requests"]
        return count


@pytest.fixture(scope="session")
def provider_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = Path(tmp_path_factory.mktemp("oidc-provider")) / "provider.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.oidc.provider", str(port)],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the provider exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/.well-known/openid-configuration", timeout=2).is_success:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"the provider never answered:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def provider(provider_process: str) -> AsyncIterator[Provider]:
    async with httpx.AsyncClient(base_url=provider_process, timeout=10) as client:
        handle = Provider(provider_process, client)
        try:
            yield handle
        finally:
            await handle.mode("normal")


# Package scope: the instances' pools hold sessions on the test database, and later
# packages (tests/ops) count the sessions there; they stop when tests/oidc is done.
@pytest.fixture(scope="package")
async def app_servers(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Servers]:
    async with Servers(database_url, tmp_path_factory.mktemp("oidc-servers")) as servers:
        yield servers


@pytest.fixture(scope="package")
async def campus_server(app_servers: Servers, provider_process: str) -> Server:
    (server,) = await app_servers.shared(
        "campus",
        1,
        OIDC_ISSUER=provider_process,
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=CLIENT_SECRET,
        OIDC_ADMIN_GROUP=ADMIN_GROUP,
        OIDC_PROVIDER_NAME="Example University",
        **SETTINGS,
    )
    return server


@pytest.fixture
async def campus(db: asyncpg.Connection, campus_server: Server) -> Server:
    return campus_server


@pytest.fixture
async def plain(db: asyncpg.Connection, app_servers: Servers) -> Server:
    (server,) = await app_servers.shared("plain", 1, **SETTINGS)
    return server


@dataclass
class Dance:
    """One sign-in: the browser's cookie jar (``client``) and the callback's answer."""

    client: httpx.AsyncClient
    callback_url: str
    answer: httpx.Response


async def start_sign_in(
    app: Server, provider: Provider, sub: str, *, next_path: str | None = None
) -> tuple[httpx.AsyncClient, str]:
    """Up to the provider's answer: a client holding the app's state cookie, and the
    callback URL (code and state) the provider sends the browser to."""
    client = httpx.AsyncClient(base_url=app.url, timeout=10)
    params = {"next": next_path} if next_path is not None else {}
    start = await client.get("/auth/oidc/login", params=params)
    assert start.status_code == 302, start.text
    authorize = start.headers["location"]
    assert authorize.startswith(f"{provider.url}/oauth2/authorize?")
    # The provider's login form: the subject, submitted as its page does.
    chosen = await client.post(authorize, data={"sub": sub})
    assert chosen.status_code == 302, chosen.text
    callback = chosen.headers["location"]
    assert callback.startswith(f"{app.url}/auth/oidc/callback?"), callback
    return client, callback


async def sign_in_over_http(
    app: Server,
    provider: Provider,
    sub: str,
    claims: dict[str, Any] | None = None,
    *,
    next_path: str | None = None,
) -> Dance:
    if claims is not None:
        await provider.set_user(sub, claims)
    client, callback = await start_sign_in(app, provider, sub, next_path=next_path)
    return Dance(client, callback, await client.get(callback))


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
async def clients() -> AsyncIterator[list[httpx.AsyncClient]]:
    """Clients a test made (closed after it)."""
    made: list[httpx.AsyncClient] = []
    yield made
    await asyncio.gather(*(client.aclose() for client in made))


# The browser fixtures of tests/web (Debian's Chromium through Playwright; skipped without
# it unless DLSMS_REQUIRE_BROWSER=1, as there).
from tests.web.conftest import browser, chromium_path, playwright_session  # noqa: E402

__all__ = ["browser", "chromium_path", "playwright_session"]


@pytest.fixture(scope="package")
async def campus_pair_servers(
    app_servers: Servers, provider_process: str, redis_database_url: str
) -> list[Server]:
    """Two instances of the app sharing one Redis (and the database)."""
    return await app_servers.shared(
        "campus-pair",
        2,
        REDIS_URL=redis_database_url,
        OIDC_ISSUER=provider_process,
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=CLIENT_SECRET,
        **SETTINGS,
    )
