"""Schemathesis against the OpenAPI schema (issue 7, "Hostile input").

Every operation but the two endless event streams is fed generated input, valid and
invalid, with a real token (a student's; an admin's on /admin/...), against a seeded
library on a frozen clock. No answer may be a 5xx, and every answer must match the
schema: documented status code, content type, headers and body.

Schemathesis reaches the app in-process over ASGI. It runs the app's lifespan itself
(in its own event-loop thread, started by the first request and ended by its pytest
plugin after each test), so the app is not wrapped in asgi_lifespan's LifespanManager:
the pool would then belong to the test's loop, not the one the requests run on.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from starlette.types import ASGIApp

from app.main import create_app
from tests.conftest import make_settings
from tests.factories import FrozenClock, add_branch, add_reservation, add_seat

# The app's clock, frozen on a whole minute of the real time (tokens the app mints must
# not be issued in the future: PyJWT checks them against the real clock).
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
NEXT_HOUR = NOW.replace(minute=0) + HOUR
PASSWORD = "correct horse"


# Values the generator mixes in, so that many requests get past validation and reach the
# services: ids that exist after the seed (identities restart at 1 for every test), real
# branch names, and starts and ends near the seeded bookings (most pairs bookable).
def _at(hours: float) -> str:
    return (NEXT_HOUR + hours * HOUR).isoformat().replace("+00:00", "Z")


DICTIONARIES = {
    "ids": {"values": list(range(1, 9))},
    "branches": {"values": ["Main", "Science"]},
    "starts": {"values": [_at(h) for h in (0, 1, 2, 3, 6, -3, 400)]},
    "ends": {"values": [_at(h) for h in (1, 2, 3, 4, 7)]},
}
BINDINGS = {
    "ids": [
        "path.seat_id",
        "path.reservation_id",
        "path.entry_id",
        "path.notification_id",
        "path.user_id",
        "query.seat_id",
        "query.user_id",
        "body.seat_id",
    ],
    "branches": ["query.branch", "body.branch"],
    "starts": ["query.start_time", "body.start_time"],
    "ends": ["query.end_time", "body.end_time"],
}


CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"mode": "all", "max-examples": 25},
        # Report every distinct failure of an operation, not only the first.
        "continue-on-failure": True,
        "suppress-health-check": ["all"],
        "checks": {
            # Off: business rules no schema states (an interval's order and horizon, a
            # password's length in bytes, a real IANA zone) reject schema-valid input...
            "positive_data_acceptance": {"enabled": False},
            # ... and pydantic's lax mode accepts some schema-invalid input on purpose
            # (`date=0` is 1970-01-01, `0.0` is false).
            "negative_data_rejection": {"enabled": False},
            # Off: Starlette's 405 names the methods of the first route matching the path,
            # not of every route on it (OPTIONS /reservations/1 says `Allow: GET`).
            "allow_header_conformance": {"enabled": False},
        },
        "dictionaries": DICTIONARIES,
        "parameters": {
            parameter: {"dictionary": dictionary, "probability": 0.7}
            for dictionary, parameters in BINDINGS.items()
            for parameter in parameters
        },
    }
)


def _served_openapi() -> dict[str, Any]:
    # What GET /openapi.json answers (test_the_schema_under_test_is_the_one_served checks
    # it); building it needs no database, so the tests can be collected without one.
    document: dict[str, Any] = create_app(make_settings("postgresql://unused/x")).openapi()
    return document


schema = schemathesis.openapi.from_dict(_served_openapi(), config=CONFIG).exclude(
    path_regex=r"/stream$"  # endless text/event-stream responses
)


@dataclass(frozen=True)
class Scene:
    app: FastAPI
    student_token: str
    admin_token: str

    def headers_for(self, path: str) -> dict[str, str]:
        token = self.admin_token if path.startswith("/admin/") else self.student_token
        return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class People:
    student: int
    other: int
    admin: int


def _register(client: asgi.ASGIClient, student_id: str) -> int:
    body = {"student_id": student_id, "name": "Fuzz Target", "password": PASSWORD}
    response = client.post("/auth/register", json=body)
    assert response.status_code == 201, response.text
    user_id: int = response.json()["id"]
    return user_id


def _login(client: asgi.ASGIClient, student_id: str) -> str:
    response = client.post("/auth/login", json={"student_id": student_id, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
def app(db: asyncpg.Connection, database_url: str, redis_url: str) -> Iterator[FastAPI]:
    """The app on a frozen clock, with Redis (so that listings take the cached path too).
    Schemathesis starts its lifespan on the first request."""
    app = create_app(
        make_settings(
            database_url, REDIS_URL=redis_url, LOGIN_RATE_LIMIT=1_000_000, DB_POOL_MAX_SIZE=4
        ),
        clock=FrozenClock(NOW),
    )
    try:
        yield app
    finally:
        asgi.shutdown_lifespans()  # the pool closes before `db` empties the tables


def _client(app: ASGIApp) -> Any:
    # Schemathesis types an ASGI app with dict scopes; Starlette's (and FastAPI's) take
    # any MutableMapping, which is the wider type, so this app is one it accepts.
    return asgi.get_client(cast(Any, app))


@pytest.fixture
def people(app: FastAPI) -> People:
    """Three accounts signed up through the API (the admin is promoted in SQL below)."""
    with _client(app) as client:
        return People(*(_register(client, sid) for sid in ("S1000001", "S1000002", "A0000001")))


@pytest.fixture
async def library(db: asyncpg.Connection, people: People) -> None:
    """Branches and seats, and the student's reservations, waitlist entries and
    notifications in every state an operation acts on."""
    student = people.student
    await db.execute("UPDATE users SET role = 'admin' WHERE id = $1", people.admin)
    main = await add_branch(db, "Main")
    science = await add_branch(db, "Science", timezone="Europe/Berlin")
    seats = [await add_seat(db, main, f"A{n}", power=n % 2 == 0) for n in range(1, 5)]
    seats.append(await add_seat(db, science, "S1", monitor=True))
    seats.append(await add_seat(db, main, "M1", status="MAINTENANCE"))
    mine = [
        # In progress; next, with check-in open; later today; in the past.
        (seats[1], NOW - HOUR, NOW + 10 * MINUTE, "CHECKED_IN"),
        (seats[0], NOW + 10 * MINUTE, NOW + 70 * MINUTE, "CONFIRMED"),
        (seats[2], NEXT_HOUR + 2 * HOUR, NEXT_HOUR + 3 * HOUR, "CONFIRMED"),
        (seats[0], NOW - 26 * HOUR, NOW - 25 * HOUR, "COMPLETED"),
    ]
    for seat, start, end, status in mine:
        await add_reservation(
            db, user_id=student, seat_id=seat, start=start, end=end, status=status
        )
    # Someone else's booking, and a waitlist offer the student holds.
    await add_reservation(
        db, user_id=people.other, seat_id=seats[3], start=NEXT_HOUR, end=NEXT_HOUR + 2 * HOUR
    )
    offer_start, offer_expires = NEXT_HOUR + 4 * HOUR, NOW + 5 * MINUTE
    held = await add_reservation(
        db,
        user_id=student,
        seat_id=seats[4],
        start=offer_start,
        end=offer_start + HOUR,
        status="HELD",
        offer_expires_at=offer_expires,
    )
    await db.execute(
        "INSERT INTO waitlist_entries (user_id, branch_id, seat_id, start_time, end_time, "
        "status, reservation_id, offer_expires_at, created_at) VALUES "
        "($1, $2, $3, $4, $5, 'OFFERED', $6, $7, $8), "
        "($1, $2, NULL, $5, $9, 'WAITING', NULL, NULL, $8)",
        student,
        science,
        seats[4],
        offer_start,
        offer_start + HOUR,
        held,
        offer_expires,
        NOW - HOUR,
        offer_start + 2 * HOUR,
    )
    await db.execute(
        "INSERT INTO notifications (user_id, type, data, created_at) VALUES "
        "($1, 'waitlist.offer', $2, $3), ($4, 'reservation.no_show', '{}', $3)",
        student,
        json.dumps({"entry_id": 1, "reservation_id": held, "seat_id": seats[4]}),
        NOW - MINUTE,
        people.other,
    )


@pytest.fixture
def scene(app: FastAPI, library: None) -> Scene:
    """Tokens the app itself issued: the student's, and the admin's after the promotion."""
    with _client(app) as client:
        return Scene(app, _login(client, "S1000001"), _login(client, "A0000001"))


async def test_the_schema_under_test_is_the_one_the_app_serves(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.json() == _served_openapi()


@pytest.mark.redis
@schema.parametrize()
def test_api_answers_no_5xx_and_only_what_the_schema_says(case: Case[Any], scene: Scene) -> None:
    case.call_and_validate(app=scene.app, headers=scene.headers_for(case.path))
