"""Real uvicorn processes for the stream tests, and a reader for what they stream.

ASGITransport cannot serve an endless response, so these tests talk HTTP over
loopback to ``python -m uvicorn app.main:app`` processes sharing the test database
(and, where a test says so, one Redis).
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
import psutil
import pytest
import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis

from app.settings import Settings
from app.state import AppState
from tests.conftest import REPO_ROOT, TEST_JWT_SECRET

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(database_url: str, overrides: Mapping[str, Any]) -> dict[str, str]:
    """The outer environment without any DL-SMS setting, then the test's ones."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.upper() not in {*Settings.model_fields, "TEST_DATABASE_URL"}
    }
    env.update(
        DATABASE_URL=database_url,
        JWT_SECRET=TEST_JWT_SECRET,
        DLSMS_ENV="test",
        BCRYPT_ROUNDS="4",
        LOG_LEVEL="WARNING",
        SCHEDULER_ENABLED="false",
        API_RATE_LIMIT="0",  # tests/api/test_rate_limit.py turns it on
    )
    env.update({name: _env_value(value) for name, value in overrides.items()})
    return env


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Server:
    """One uvicorn process and a client for it (both closed by the ``servers`` fixture)."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    client: httpx.AsyncClient

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


class Servers:
    """Starts uvicorn processes (``await servers.start(**settings)``); leaving the
    ``async with`` stops every one of them. The ``servers`` fixture is one per test."""

    def __init__(self, database_url: str, log_dir: Path) -> None:
        self._database_url = database_url
        self._log_dir = log_dir
        self.started: list[Server] = []
        self._shared: dict[str, list[Server]] = {}

    async def __aenter__(self) -> "Servers":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_all()

    async def start(self, **overrides: Any) -> Server:
        (server,) = await self.start_many(1, **overrides)
        return server

    async def start_many(self, count: int, **overrides: Any) -> list[Server]:
        """``count`` processes with the same settings, started side by side."""
        spawned = [self._spawn(overrides) for _ in range(count)]
        return [await self._until_ready(server, overrides) for server in spawned]

    async def shared(self, key: str, count: int, **overrides: Any) -> list[Server]:
        """``start_many`` the first time ``key`` is asked for; the same servers after."""
        if key not in self._shared:
            self._shared[key] = await self.start_many(count, **overrides)
        return self._shared[key]

    def _spawn(self, overrides: Mapping[str, Any]) -> Server:
        name = f"server{len(self.started) + 1}"
        port = free_port()
        log_path = self._log_dir / f"{name}-{port}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "uvicorn", "app.main:app"),
                    *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
                ],
                env=server_env(self._database_url, overrides),
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        server = Server(name, url, proc, log_path, httpx.AsyncClient(base_url=url, timeout=10))
        self.started.append(server)
        return server

    async def _until_ready(self, server: Server, overrides: Mapping[str, Any]) -> Server:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                if "address already in use" in server.log_tail().lower():
                    # Another process took the free port first: try once more elsewhere.
                    return await self._until_ready(self._spawn(overrides), overrides)
                raise AssertionError(
                    f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if (await server.client.get("/ready", timeout=2)).status_code == 200:
                    return server
            await asyncio.sleep(0.1)
        raise AssertionError(f"{server.name} never answered /ready:\n{server.log_tail()}")

    async def stop_all(self) -> None:
        """Close the clients (and the streams on them), then SIGTERM every process and
        wait. One that does not exit in STOP_TIMEOUT is killed and reported."""
        for server in self.started:
            await server.client.aclose()
        for server in self.started:
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
        stuck = []
        deadline = time.monotonic() + STOP_TIMEOUT
        for server in self.started:
            try:
                await asyncio.to_thread(server.proc.wait, max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()
                stuck.append(f"{server.name} ignored SIGTERM:\n{server.log_tail()}")
        if stuck:
            raise AssertionError("\n".join(stuck))


async def wait_until_subscribed(server: Server, redis_url: str, within: float = 10) -> None:
    """Until ``server``'s broker listens on the events channel: its process owns a Redis
    connection that CLIENT LIST shows subscribed. (A message published before that
    reaches nobody on that instance, by design of pub/sub.)"""
    redis = Redis.from_url(redis_url)
    redis_port = redis.connection_pool.connection_kwargs.get("port", 6379)
    try:
        async with asyncio.timeout(within):
            while True:
                own_ports = {
                    c.laddr.port
                    for c in psutil.Process(server.proc.pid).net_connections(kind="tcp")
                    if c.raddr and c.raddr.port == redis_port
                }
                subscribed = {
                    int(str(c["addr"]).rpartition(":")[2])
                    for c in await redis.client_list()
                    if int(c.get("sub", 0)) > 0
                }
                if own_ports & subscribed:
                    return
                await asyncio.sleep(0.05)
    finally:
        await redis.aclose()


@dataclass
class InProcess:
    """A real uvicorn serving an app in the test's own event loop, and a client for it:
    for tests that reach into the app (its state, a patched function) while it streams."""

    server: uvicorn.Server
    client: httpx.AsyncClient

    @property
    def state(self) -> AppState:
        return cast(AppState, self.server.lifespan.state)


@contextlib.asynccontextmanager
async def serve_in_process(app: FastAPI, **config: Any) -> AsyncIterator[InProcess]:
    """``app`` behind uvicorn on a free loopback port (``config``: uvicorn.Config's)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), **config))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            while not server.started:
                assert not task.done(), "uvicorn stopped before it started"
                await asyncio.sleep(0.02)
        url = f"http://127.0.0.1:{server.config.port}"
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield InProcess(server, client)
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def servers(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> AsyncIterator[Servers]:
    """Factory of uvicorn processes on the test database; every one is stopped at the end.
    Depends on ``db`` so that the servers stop before the tables are emptied."""
    async with Servers(database_url, tmp_path) as factory:
        yield factory


@dataclass
class Event:
    """One block of a text/event-stream (up to a blank line)."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        assert self.data is not None, self
        return json.loads(self.data)


class EventStream:
    """Reads an open SSE response in a background task, so that waiting for the next
    event can time out without breaking the stream."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._blocks: asyncio.Queue[Event | None] = asyncio.Queue()  # None: the stream ended
        self._ended = False
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        block: Event | None = None
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if block is not None:
                        self._blocks.put_nowait(block)
                    block = None
                    continue
                block = block or Event()
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    block.comments.append(value)
                elif name == "data":
                    block.data = value if block.data is None else f"{block.data}\n{value}"
                elif name in ("id", "event"):
                    setattr(block, name, value)
                elif name == "retry":
                    block.retry = int(value)
        except httpx.HTTPError:
            pass  # the server went away: that ends the stream too
        finally:
            self._blocks.put_nowait(None)

    async def next_block(self, within: float) -> Event | None:
        """The next block of any kind (comments too); None once the stream has ended.
        TimeoutError when none comes ``within`` seconds."""
        if self._ended:
            return None
        async with asyncio.timeout(within):
            block = await self._blocks.get()
        self._ended = block is None
        return block

    async def next_event(self, within: float = 5.0, *, kind: str | None = None) -> Event:
        """The next block carrying data (of event type ``kind``, when given), skipping
        comments (heartbeats) and other events on the way."""
        async with asyncio.timeout(within):
            while True:
                block = await self.next_block(within)
                assert block is not None, "the stream ended"
                if block.data is not None and kind in (None, block.event):
                    return block

    async def events_within(self, seconds: float) -> list[Event]:
        """Every data-carrying block that arrives in the next ``seconds``."""
        found: list[Event] = []
        deadline = asyncio.get_running_loop().time() + seconds
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                block = await self.next_block(remaining)
            except TimeoutError:
                break
            if block is None:
                break
            if block.data is not None:
                found.append(block)
        return found

    async def end(self, within: float) -> None:
        """Wait until the server ends the stream."""
        async with asyncio.timeout(within):
            while await self.next_block(within) is not None:
                pass

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    connected: bool = True,
) -> AsyncIterator[EventStream]:
    """GET ``path`` as an event stream (200 expected). With ``connected``, wait for the
    server's first block (the ``retry:`` hint) so that the stream is known to be open."""
    async with client.stream(
        "GET", path, headers=headers, params=params, timeout=httpx.Timeout(10, read=None)
    ) as response:
        if response.status_code != 200:
            await response.aread()
            raise AssertionError(f"GET {path}: {response.status_code} {response.text}")
        stream = EventStream(response)
        try:
            if connected:
                first = await stream.next_block(within=5)
                assert first is not None, "the stream ended at once"
                # The stream subscribes and reads where it starts before this first block
                # (app/realtime/sse.py): from here on, nothing published is lost.
                assert first.retry is not None, first
            yield stream
        finally:
            await stream.close()
