"""Arrangement helpers shared by the test modules: rows written in SQL, tokens minted
without bcrypt, a clock that tests move by hand, the API calls and error assertions the
API tests share, and a bounded wait for a condition."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import httpx

from app.models import Role
from app.security import encode_token
from app.services.openings import DAY_NAMES
from app.timeutil import iso_z, utcnow

T = TypeVar("T")

TEST_JWT_SECRET = "test-secret-" + "x" * 40

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def every_day(opens: str, closes: str) -> dict[str, list[dict[str, str]]]:
    """A weekly template (PUT /admin/branches/{id}/hours) open ``opens``-``closes`` daily."""
    return {day: [{"opens": opens, "closes": closes}] for day in DAY_NAMES}


DAY = timedelta(days=1)
# The check-in and offer windows, passed to the app by the tests that count them to the
# second (they are the defaults too, but such a test should not lean on a default), and
# the same windows as durations.
RULES: dict[str, Any] = {"GRACE_MINUTES": 15, "CHECKIN_EARLY_MINUTES": 15, "CLAIM_MINUTES": 10}
EARLY = timedelta(minutes=RULES["CHECKIN_EARLY_MINUTES"])
GRACE = timedelta(minutes=RULES["GRACE_MINUTES"])
CLAIM = timedelta(minutes=RULES["CLAIM_MINUTES"])

# Every reservation answer carries these (api.md, "Reservations").
RESERVATION_FIELDS = {
    "id",
    "user_id",
    "seat_id",
    "seat",
    "start_time",
    "end_time",
    "status",
    "created_at",
    "checked_in_at",
    "cancelled_at",
    "cancel_reason",
    "check_in_opens_at",
    "check_in_deadline",
}


def at(hour: int, minute: int = 0, second: int = 0, *, day: int = 1) -> datetime:
    """A moment of December 2026 in UTC, the month the frozen-clock tests live in."""
    return datetime(2026, 12, day, hour, minute, second, tzinfo=UTC)


# The slot most tests book: Dec 1, 10:00-11:00 (and on to 12:00).
T10, T11, T12 = at(10), at(11), at(12)


def iso(moment: datetime) -> str:
    """A time as every response writes it: UTC with a trailing Z."""
    return iso_z(moment)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(
    client: httpx.AsyncClient,
    student_id: str = "S1000001",
    password: str = "correct horse",
    **extra: Any,
) -> dict[str, Any]:
    body = {"student_id": student_id, "name": "Test Student", "password": password, **extra}
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def login(
    client: httpx.AsyncClient, student_id: str = "S1000001", password: str = "correct horse"
) -> str:
    response = await client.post(
        "/auth/login", json={"student_id": student_id, "password": password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


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


async def reservation_row(db: asyncpg.Connection, reservation_id: int) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM reservations WHERE id = $1", reservation_id)
    assert row is not None
    return row


# Calls the API tests share. The paths stay literal here as in the tests (api.md).


def booking(seat_id: int, start: datetime, end: datetime) -> dict[str, Any]:
    """The body of ``POST /reservations`` (and of a seat's ``POST /waitlist``)."""
    return {"seat_id": seat_id, "start_time": iso(start), "end_time": iso(end)}


async def reserve(
    client: httpx.AsyncClient,
    student: Student,
    seat_id: int,
    start: datetime = T10,
    end: datetime = T11,
    *,
    key: str | bytes | None = None,
) -> httpx.Response:
    """``POST /reservations``, with an ``Idempotency-Key`` when ``key`` is given."""
    # Bytes so that a key can carry non-ASCII octets (httpx encodes str headers as ASCII).
    headers = {name.encode(): value.encode() for name, value in student.headers.items()}
    if key is not None:
        headers[b"Idempotency-Key"] = key if isinstance(key, bytes) else key.encode()
    return await client.post("/reservations", json=booking(seat_id, start, end), headers=headers)


async def booked(
    client: httpx.AsyncClient,
    student: Student,
    seat_id: int,
    start: datetime = T10,
    end: datetime = T11,
) -> dict[str, Any]:
    """A reservation made through the API (201 asserted): its body."""
    response = await reserve(client, student, seat_id, start, end)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def cancel(
    client: httpx.AsyncClient, student: Student, reservation_id: int
) -> dict[str, Any]:
    """``DELETE /reservations/{id}`` by its owner (200 asserted): the cancelled reservation."""
    response = await client.delete(f"/reservations/{reservation_id}", headers=student.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def join(
    client: httpx.AsyncClient,
    student: Student,
    *,
    seat_id: int | None = None,
    branch: str | None = None,
    start: datetime = T10,
    end: datetime = T11,
) -> httpx.Response:
    """``POST /waitlist`` for a seat or a branch."""
    body: dict[str, Any] = {"start_time": iso(start), "end_time": iso(end)}
    if seat_id is not None:
        body["seat_id"] = seat_id
    if branch is not None:
        body["branch"] = branch
    return await client.post("/waitlist", json=body, headers=student.headers)


async def joined(
    client: httpx.AsyncClient,
    student: Student,
    *,
    seat_id: int | None = None,
    branch: str | None = None,
    start: datetime = T10,
    end: datetime = T11,
) -> dict[str, Any]:
    """A waitlist entry made through the API (201 asserted): its body."""
    response = await join(client, student, seat_id=seat_id, branch=branch, start=start, end=end)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def my_entries(client: httpx.AsyncClient, student: Student) -> dict[int, dict[str, Any]]:
    """The student's waitlist entries by id (``GET /waitlist``)."""
    response = await client.get("/waitlist", headers=student.headers)
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["items"]}


async def my_notifications(
    client: httpx.AsyncClient, student: Student, query: str = "", *, kind: str | None = None
) -> list[dict[str, Any]]:
    """The student's notifications, newest first (``GET /notifications``), of ``kind`` only
    when given."""
    response = await client.get(f"/notifications{query}", headers=student.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["items"])
    items: list[dict[str, Any]] = body["items"]
    return [item for item in items if kind is None or item["type"] == kind]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """A domain error: ``status``, a JSON ``{detail, code}`` body with this ``code`` and a
    detail that says something. The body, for further checks."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def assert_validation_error(response: httpx.Response, *loc: str | int) -> None:
    """FastAPI's 422 shape: a JSON list of errors and no domain ``code``; with ``loc``, the
    one error is at ``loc`` (or below it)."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body["detail"], list)
    assert "code" not in body
    if loc:
        assert [tuple(error["loc"][: len(loc)]) for error in body["detail"]] == [loc], body


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
