"""A real HTTP receiver (http.server in a thread) on a free local port, which tests make
fail and recover, and an app with webhooks allowed to reach it (it is on loopback)."""

import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx
import pytest

from app.db.pool import Pool
from app.models import Role
from app.settings import Settings
from tests.conftest import ClientFactory, PoolFactory, make_settings
from tests.factories import RULES, FrozenClock, Student, add_branch, add_seat, add_student, at

NOW = at(8)  # Dec 1, 08:00 UTC; tests book 10:00-11:00


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # http.server's 5 drops connections of a busy sender
    daemon_threads = True


class Receiver:
    """Answers ``status`` (204 unless a test says otherwise) to every POST, and records
    them all; ``events`` is what a receiver deduplicating by webhook-id keeps."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.status = 204
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(Request(self.path, headers, body, time.monotonic()))
                    status = receiver.status
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        if tls is not None:  # HTTPS (the context holds the certificate)
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def events(self) -> list[Request]:
        """Each webhook-id once (the first arrival), in order of arrival."""
        seen: set[str] = set()
        kept = []
        with self._lock:
            for request in self.requests:
                if request.webhook_id not in seen:
                    seen.add(request.webhook_id)
                    kept.append(request)
        return kept


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def hook_settings(database_url: str) -> Settings:
    return make_settings(database_url, WEBHOOK_ALLOW_PRIVATE=True, **RULES)


@pytest.fixture
async def api(make_client: ClientFactory, clock: FrozenClock) -> httpx.AsyncClient:
    """The app on the frozen clock, private targets allowed (its scheduler off: tests run
    the delivery job themselves, at a chosen ``now``)."""
    return await make_client(clock=clock, WEBHOOK_ALLOW_PRIVATE=True, **RULES)


@pytest.fixture
async def pool(make_pool: PoolFactory, hook_settings: Settings) -> Pool:
    return await make_pool(hook_settings)


@pytest.fixture
async def second_pool(make_pool: PoolFactory, hook_settings: Settings) -> Pool:
    """Another instance's pool."""
    return await make_pool(hook_settings)


@pytest.fixture
async def admin(db: asyncpg.Connection) -> Student:
    return await add_student(db, "ADMIN01", role=Role.ADMIN)


@pytest.fixture
async def alice(db: asyncpg.Connection) -> Student:
    return await add_student(db, "S0000001")


@pytest.fixture
async def seat_id(db: asyncpg.Connection) -> int:
    return await add_seat(db, await add_branch(db, "Main Library"), "A1")


async def register(
    api: httpx.AsyncClient, admin: Student, url: str, events: list[str]
) -> dict[str, Any]:
    response = await api.post(
        "/admin/webhooks", json={"url": url, "events": events}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def deliveries(api: httpx.AsyncClient, admin: Student, hook_id: int) -> list[Any]:
    response = await api.get(f"/admin/webhooks/{hook_id}/deliveries", headers=admin.headers)
    assert response.status_code == 200, response.text
    body: list[Any] = response.json()
    return body
