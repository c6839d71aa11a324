"""A real SMTP server (aiosmtpd) on a free local port, which tests stop and start again,
and an app configured to send e-mail through it on a frozen clock."""

import asyncio
import email
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from app.cache import SeatCache
from app.db.pool import Pool
from app.realtime.broker import Broker
from app.realtime.publisher import Publisher
from app.services.mail import SmtpConfig, smtp_config
from app.services.outbox import MailWriter
from app.settings import Settings
from tests.conftest import ClientFactory, PoolFactory, make_settings
from tests.factories import RULES, FrozenClock, Student, add_branch, add_seat, add_student, at

NOW = at(8)  # Dec 1, 08:00 UTC; most tests book 10:00-11:00
PUBLIC_URL = "https://seats.example.edu"
MAIL_FROM = "Library seats <seats@example.edu>"


@dataclass(frozen=True)
class Received:
    rcpt_tos: list[str]
    message: EmailMessage
    at: float  # time.monotonic() when the server accepted it


class Handler:
    """Accepts everything but the addresses in ``refuse`` (550, a permanent refusal)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        message = email.message_from_bytes(content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(list(envelope.rcpt_tos), message, time.monotonic()))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SmtpServer:
    """aiosmtpd in its own thread; ``stop`` and ``start`` take it down and up again on the
    same port (the relay being down for a while)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = Handler()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> None:
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.received if address in r.rcpt_tos]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def mail_settings(database_url: str, smtp: SmtpServer) -> Settings:
    return make_settings(
        database_url, SMTP_URL=smtp.url, MAIL_FROM=MAIL_FROM, PUBLIC_URL=PUBLIC_URL, **RULES
    )


@pytest.fixture
def smtp_conf(mail_settings: Settings) -> SmtpConfig:
    config = smtp_config(mail_settings)
    assert config is not None
    return config


@pytest.fixture
async def api(
    make_client: ClientFactory, smtp: SmtpServer, clock: FrozenClock
) -> httpx.AsyncClient:
    """The app, e-mail configured, on the frozen clock (its scheduler off: tests run the
    delivery job themselves, at a chosen ``now``)."""
    return await make_client(
        clock=clock, SMTP_URL=smtp.url, MAIL_FROM=MAIL_FROM, PUBLIC_URL=PUBLIC_URL, **RULES
    )


@pytest.fixture
async def pool(make_pool: PoolFactory, mail_settings: Settings) -> Pool:
    return await make_pool(mail_settings)


@pytest.fixture
async def second_pool(make_pool: PoolFactory, mail_settings: Settings) -> Pool:
    """Another instance's pool: its delivery job runs on its own connections."""
    return await make_pool(mail_settings)


@pytest.fixture
def publisher(mail_settings: Settings) -> Publisher:
    return Publisher(SeatCache(None, 10), Broker(None, None), MailWriter(mail_settings))


@dataclass(frozen=True)
class Seat:
    branch_id: int
    seat_id: int


@pytest.fixture
async def seat(db: asyncpg.Connection) -> Seat:
    branch_id = await add_branch(db, "Main Library")
    return Seat(branch_id, await add_seat(db, branch_id, "A1"))


async def with_email(db: asyncpg.Connection, student_id: str, address: str) -> Student:
    student = await add_student(db, student_id)
    await db.execute("UPDATE users SET email = $2 WHERE id = $1", student.id, address)
    return student


@pytest.fixture
async def alice(db: asyncpg.Connection) -> Student:
    return await with_email(db, "S0000001", "alice@example.edu")


@pytest.fixture
async def bob(db: asyncpg.Connection) -> Student:
    return await with_email(db, "S0000002", "bob@example.edu")


async def outbox_rows(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM outbox ORDER BY id")


async def settle() -> None:
    await asyncio.sleep(0)
