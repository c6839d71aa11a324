"""Shared pieces of the operations tests: a private Redis server the tests may stop and
start, Prometheus text read back, bounded polling, and arrangement helpers."""

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from app.timeutil import utcnow
from tests.factories import eventually as eventually  # where the ops tests import it from
from tests.realtime.servers import free_port

NOTIFICATIONS = "/notifications/stream"


def require_binary(name: str, *fallbacks: str, required_by: str) -> str:
    """The path of ``name``; when it is missing, skip, or fail under ``required_by=1``."""
    found = shutil.which(name) or next((p for p in fallbacks if Path(p).exists()), None)
    if found is not None:
        return found
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{required_by}=1 but {name} is not installed")
    pytest.skip(f"{name} is not installed")


class ChildServer:
    """A server process a test starts, waits for and stops; its output goes to a log file
    in ``directory``. Subclasses say how to launch it and how to tell that it answers."""

    name = "server"

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self, argv: list[str], within: float) -> None:
        """Run ``argv`` and wait until ``answers()``; fail (with its log) if it exits or
        does not answer within ``within`` seconds."""
        assert self.proc is None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / f"{self.name}.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + within
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"{self.name} on port {self.port} did not start:\n{logs_in(self.directory)}"
                )
            time.sleep(0.02)

    def answers(self) -> bool:
        """Whether something accepts connections on the port."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM; SIGKILL after 10 s); a no-op when it is not running."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class PrivateRedis(ChildServer):
    """A redis-server of this test alone, on a loopback port that stays the same across
    ``stop()`` and ``start()``; nothing is persisted."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, within: float = 10) -> None:
        self.launch(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            within,
        )

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A running PrivateRedis of this test (import the fixture where it is used)."""
    redis = PrivateRedis(
        require_binary("redis-server", required_by="DLSMS_REQUIRE_REDIS"), tmp_path / "redis"
    )
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def logs_in(directory: Path) -> str:
    """The tail of every log the servers wrote in ``directory``."""
    return "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}"
        for path in sorted(directory.glob("*.log"))
    )


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


async def wait_until_pid_subscribed(pid: int, redis_url: str, within: float = 15) -> None:
    """Until process ``pid`` owns a Redis connection that CLIENT LIST shows subscribed
    (its broker hears what other instances publish)."""
    redis = Redis.from_url(redis_url)
    redis_port = redis.connection_pool.connection_kwargs.get("port", 6379)
    try:
        async with asyncio.timeout(within):
            while True:
                with contextlib.suppress(OSError):  # not answering yet: try again
                    own = {
                        c.laddr.port
                        for c in psutil.Process(pid).net_connections(kind="tcp")
                        if c.raddr and c.raddr.port == redis_port
                    }
                    subscribed = {
                        int(str(c["addr"]).rpartition(":")[2])
                        for c in await redis.client_list()
                        if int(c.get("sub", 0)) > 0
                    }
                    if own & subscribed:
                        return
                await asyncio.sleep(0.05)
    finally:
        await redis.aclose()


def slot(hours_ahead: int = 2) -> tuple[datetime, datetime]:
    """An hour-long slot starting on the hour, ``hours_ahead`` hours from now (or so)."""
    start = (utcnow() + timedelta(hours=hours_ahead)).replace(minute=0, second=0, microsecond=0)
    return start, start + timedelta(hours=1)


async def wait_for_lock_waiter(db: asyncpg.Connection, within: float = 5) -> None:
    """Until some session of this database waits for a lock (the request we hold up)."""
    await eventually(
        lambda: db.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ),
        lambda waiting: waiting > 0,
        within=within,
        interval=0.05,
        what="a request waiting on the row lock",
    )
