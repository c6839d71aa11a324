"""Behind a trusted proxy each client is limited at its own address, and a client that is
not the proxy cannot choose one.

deploy/cluster.py runs nginx on a second loopback address, 127.0.0.2, connecting to the
instance from there too (``proxy_bind``); the instance trusts that address alone
(FORWARDED_ALLOW_IPS=127.0.0.2) and listens on 127.0.0.1, so the test's direct connections
come from an address it does not trust, which uvicorn's own default (127.0.0.1) would.
The instance runs as plain ``uvicorn app.main:app``: uvicorn's proxy-header pass and the
app's both see every request. ``dlsms serve``, which has only the app's, is checked too."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import asyncpg
import httpx
import pytest

from tests.factories import eventually
from tests.ops.support import logs_in, require_binary
from tests.ops.test_cluster import load_cluster_script
from tests.realtime.servers import free_port, server_env

pytestmark = [pytest.mark.slow]

PROXY = "127.0.0.2"
LIMIT = 10  # LOGIN_RATE_LIMIT's default: failed logins per minute per address


@dataclass
class Proxied:
    proxy_url: str  # nginx
    instance_url: str  # the app itself, on 127.0.0.1
    directory: Path


@pytest.fixture(scope="module")
async def proxied(
    tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> AsyncIterator[Proxied]:
    require_binary("nginx", "/usr/sbin/nginx", required_by="DLSMS_REQUIRE_NGINX")
    script = load_cluster_script()
    directory = tmp_path_factory.mktemp("forwarded")
    env = server_env(
        database_url, {"FORWARDED_ALLOW_IPS": PROXY, "LOGIN_RATE_LIMIT": LIMIT}
    )  # no REDIS_URL: the one instance counts in memory
    # cluster.py passes its whole environment down: give it exactly the test's one (its
    # Popen objects outlive start(), stop() finds the processes by pid: that warns here).
    with mock.patch.dict(os.environ, env, clear=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        cluster = await asyncio.to_thread(
            script.start, 1, directory=directory, address=PROXY, timeout=60
        )
    try:
        (instance_url,) = cluster.instance_urls()
        assert cluster.url.startswith(f"http://{PROXY}:")
        assert instance_url.startswith("http://127.0.0.1:")
        yield Proxied(cluster.url, instance_url, directory)
    finally:
        await asyncio.to_thread(script.stop, directory)


def client_from(source: str, base_url: str) -> httpx.AsyncClient:
    """A client whose connections leave from the loopback address ``source``."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(transport=transport, base_url=base_url, timeout=10)


async def failed_login(
    client: httpx.AsyncClient, student_id: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """(status, code) of a login with a wrong password for an unknown ``student_id``: each
    attempt names another one, so only the limit per client address can apply."""
    response = await client.post(
        "/auth/login",
        json={"student_id": student_id, "password": "wrong password"},
        headers=headers,
    )
    return response.status_code, response.json().get("code", "")


async def test_two_clients_behind_the_trusted_proxy_are_limited_each_at_its_own_address(
    proxied: Proxied, db: asyncpg.Connection
) -> None:
    async with (
        client_from("127.0.0.3", proxied.proxy_url) as a,
        client_from("127.0.0.4", proxied.proxy_url) as b,
    ):
        answers = [await failed_login(a, f"A{i:07d}") for i in range(LIMIT)]
        a_after = await failed_login(a, "A1000000")
        b_after = await failed_login(b, "B1000000")
        # nginx appends the address it saw to whatever the client sent; the app takes the
        # last address its proxy added, so a made-up one in front changes nothing.
        a_forging = await failed_login(a, "A1000001", {"X-Forwarded-For": "203.0.113.9"})

    assert answers == [(401, "invalid_credentials")] * LIMIT, logs_in(proxied.directory)
    assert a_after == (429, "rate_limited")
    assert b_after == (401, "invalid_credentials")
    assert a_forging == (429, "rate_limited")


async def test_a_client_that_is_not_the_trusted_proxy_is_not_believed_about_its_address(
    proxied: Proxied, db: asyncpg.Connection
) -> None:
    async with (
        client_from("127.0.0.1", proxied.instance_url) as direct,
        client_from("127.0.0.5", proxied.proxy_url) as behind_proxy,
    ):
        answers = [
            await failed_login(direct, f"D{i:07d}", {"X-Forwarded-For": f"198.51.100.{i}"})
            for i in range(LIMIT)
        ]
        direct_after = await failed_login(direct, "D1000000", {"X-Forwarded-For": "192.0.2.1"})
        # Claiming to be a client that has not failed, or the proxy itself, does not help.
        as_other = await failed_login(direct, "D1000001", {"X-Forwarded-For": "127.0.0.5"})
        as_proxy = await failed_login(direct, "D1000002", {"X-Forwarded-For": PROXY})
        other_after = await failed_login(behind_proxy, "E1000000")

    assert answers == [(401, "invalid_credentials")] * LIMIT, logs_in(proxied.directory)
    assert direct_after == (429, "rate_limited")
    assert as_other == (429, "rate_limited")
    assert as_proxy == (429, "rate_limited")
    # The failures were counted at 127.0.0.1, not at a forged address: 127.0.0.5 is free.
    assert other_after == (401, "invalid_credentials")


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
async def dlsms_serve(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """``dlsms serve`` on 127.0.0.1 trusting PROXY; its URL. It turns uvicorn's own
    proxy-header pass off, so the app's is the only one."""
    port = free_port()
    env = server_env(database_url, {"FORWARDED_ALLOW_IPS": PROXY, "LOGIN_RATE_LIMIT": LIMIT})
    log = tmp_path / "serve.log"
    proc = spawn(
        [str(Path(sys.executable).with_name("dlsms")), "serve", "--port", str(port)], env, log
    )
    url = f"http://127.0.0.1:{port}"

    async def ready() -> int:
        assert proc.poll() is None, log.read_text(errors="replace")
        with contextlib.suppress(httpx.TransportError):
            async with httpx.AsyncClient(base_url=url, timeout=2) as client:
                return (await client.get("/ready")).status_code
        return 0

    try:
        await eventually(ready, lambda status: status == 200, within=60, what="dlsms serve")
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_dlsms_serve_believes_only_the_trusted_proxy_about_the_client(
    dlsms_serve: str, db: asyncpg.Connection
) -> None:
    # The test plays the proxy itself here: it connects from PROXY and names the client.
    async with (
        client_from(PROXY, dlsms_serve) as proxy,
        client_from("127.0.0.1", dlsms_serve) as direct,
    ):
        behind = {"X-Forwarded-For": "192.0.2.50"}
        proxied = [await failed_login(proxy, f"P{i:07d}", behind) for i in range(LIMIT)]
        proxied_after = await failed_login(proxy, "P1000000", behind)
        another = await failed_login(proxy, "P1000001", {"X-Forwarded-For": "192.0.2.51"})
        forged = [
            await failed_login(direct, f"F{i:07d}", {"X-Forwarded-For": f"198.51.100.{i}"})
            for i in range(LIMIT)
        ]
        at_its_address = await failed_login(proxy, "P1000002", {"X-Forwarded-For": "127.0.0.1"})

    assert proxied == [(401, "invalid_credentials")] * LIMIT
    assert proxied_after == (429, "rate_limited")
    assert another == (401, "invalid_credentials")
    assert forged == [(401, "invalid_credentials")] * LIMIT
    assert at_its_address == (429, "rate_limited")  # counted where it really was
