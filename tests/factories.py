"""Arrangement helpers shared by the test modules: rows written in SQL, tokens minted
without bcrypt, a clock that tests move by hand, and a bounded wait for a condition."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import asyncpg
import httpx

from app.models import Role
from app.security import encode_token
from app.timeutil import iso_z, utcnow
from tests.conftest import TEST_JWT_SECRET, bearer, login, register

T = TypeVar("T")


def iso(moment: datetime) -> str:
    """A time as every response writes it: UTC with a trailing Z."""
    return iso_z(moment)


class FrozenClock:
    """The service's clock in tests (``make_client(clock=...)``): it stands still until
    a test moves it with ``set`` or ``advance``."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment

    def advance(self, delta: timedelta) -> None:
        self._now += delta


@dataclass(frozen=True)
class Student:
    """A user row plus a bearer token for it."""

    id: int
    student_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


async def add_branch(db: asyncpg.Connection, name: str = "Main", timezone: str = "UTC") -> int:
    branch_id: int = await db.fetchval(
        "INSERT INTO branches (name, timezone) VALUES ($1, $2) RETURNING id", name, timezone
    )
    return branch_id


async def add_seat(
    db: asyncpg.Connection,
    branch_id: int,
    label: str,
    *,
    area: str = "Quiet",
    power: bool = False,
    monitor: bool = False,
    status: str = "ACTIVE",
) -> int:
    seat_id: int = await db.fetchval(
        "INSERT INTO seats (branch_id, area, label, has_power, has_monitor, status) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        branch_id,
        area,
        label,
        power,
        monitor,
        status,
    )
    return seat_id


async def add_user(db: asyncpg.Connection, student_id: str, *, role: Role = Role.STUDENT) -> int:
    """A user who cannot log in (no real password hash): pair with ``mint_token``."""
    user_id: int = await db.fetchval(
        "INSERT INTO users (student_id, name, password_hash, role) "
        "VALUES ($1, 'Test Student', 'x', $2) RETURNING id",
        student_id,
        role.value,
    )
    return user_id


def mint_token(user_id: int, student_id: str, *, role: Role = Role.STUDENT) -> str:
    """A valid token for the test secret. PyJWT checks expiry against the real clock,
    so it is minted at the real time whatever the app's frozen clock says."""
    token, _ = encode_token(
        secret=TEST_JWT_SECRET,
        user_id=user_id,
        student_id=student_id,
        role=role,
        now=utcnow(),
        ttl=timedelta(hours=24),
    )
    return token


async def add_student(
    db: asyncpg.Connection, student_id: str, *, role: Role = Role.STUDENT
) -> Student:
    user_id = await add_user(db, student_id, role=role)
    return Student(user_id, student_id, mint_token(user_id, student_id, role=role))


async def add_students(db: asyncpg.Connection, prefix: str, count: int) -> list[Student]:
    """``count`` students ``<prefix>0001``... in one statement."""
    rows = await db.fetch(
        "INSERT INTO users (student_id, name, password_hash) "
        "SELECT $1 || lpad(n::text, 4, '0'), 'Test Student', 'x' FROM generate_series(1, $2) n "
        "RETURNING id, student_id",
        prefix,
        count,
    )
    return [
        Student(row["id"], row["student_id"], mint_token(row["id"], row["student_id"]))
        for row in rows
    ]


async def registered_student(
    client: httpx.AsyncClient, student_id: str, password: str = "correct horse"
) -> Student:
    """A student who signed up and logged in through the API (a token the app minted).
    Use a client on the real clock: a token minted at a frozen future time is not valid yet."""
    user = await register(client, student_id, password)
    return Student(user["id"], student_id, await login(client, student_id, password))


async def add_reservation(
    db: asyncpg.Connection,
    *,
    user_id: int,
    seat_id: int,
    start: datetime,
    end: datetime,
    status: str = "CONFIRMED",
    created_at: datetime | None = None,
    checked_in_at: datetime | None = None,
    cancelled_at: datetime | None = None,
    cancel_reason: str | None = None,
    offer_expires_at: datetime | None = None,
) -> int:
    """A reservation row in any status (HELD needs ``offer_expires_at``; defaults to start)."""
    if status == "HELD" and offer_expires_at is None:
        offer_expires_at = start
    if status in ("CHECKED_IN", "COMPLETED") and checked_in_at is None:
        checked_in_at = start
    if status == "CANCELLED" and cancelled_at is None:
        cancelled_at = created_at or start - timedelta(hours=1)
    created = created_at or start - timedelta(days=1)
    reservation_id: int = await db.fetchval(
        "INSERT INTO reservations (user_id, seat_id, start_time, end_time, status, created_at, "
        "updated_at, checked_in_at, cancelled_at, cancel_reason, offer_expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10) RETURNING id",
        user_id,
        seat_id,
        start,
        end,
        status,
        created,
        checked_in_at,
        cancelled_at,
        cancel_reason,
        offer_expires_at,
    )
    return reservation_id


async def reservation_status(db: asyncpg.Connection, reservation_id: int) -> str:
    status: str = await db.fetchval("SELECT status FROM reservations WHERE id = $1", reservation_id)
    return status


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    within: float,
    interval: float = 0.1,
    what: str,
) -> T:
    """Call ``probe`` until ``accept`` takes its answer; fail naming ``what`` and the last
    answer when ``within`` seconds pass first."""
    deadline = time.monotonic() + within
    while True:
        answer = await probe()
        if accept(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s; last seen {answer!r}")
        await asyncio.sleep(interval)
