"""Schemathesis against the OpenAPI schema (issue 7, "Hostile input").

Every operation but the two endless event streams is fed generated input, valid and
invalid, with a real token (a student's; an admin's on /admin/...), against a seeded
library on a frozen clock, with every check on (`schemathesis run --checks all`; issue 11,
item 6): no 5xx; every answer as the schema says (status code, content type, headers,
body, `Allow` on a 405); schema-valid input accepted and schema-invalid input refused;
missing auth refused. What JSON Schema cannot express is excused in `filter_failure`, one
named reason per check and operation, and nowhere else.

Time: MAX_EXAMPLES = 60 (what the outside run used) takes about 35 s on the CI machine
(25 examples with three checks off took 19 s), against a CI budget of well under 20 min.

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
from schemathesis import Case, HookContext, Response
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure
from schemathesis.openapi.checks import RejectedPositiveData
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
# Examples per operation and generation mode; see the module docstring for the time it takes.
MAX_EXAMPLES = 60


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
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
        # Report every distinct failure of an operation, not only the first.
        "continue-on-failure": True,
        "suppress-health-check": ["all"],
        # Every check, as `schemathesis run --checks all` does; what the schema cannot
        # express is excused case by case in `filter_failure` below, nothing wholesale.
        "checks": {"enabled": True},
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


# The findings that are limits of JSON Schema, not faults of the server. Each excuse names
# the check, the operations and the condition under which the server is right; any other
# failure of the same check, on the same operation, still fails the test.
def _rejected_by_a_booking_rule(failure: Failure, case: Case[Any], response: Response) -> bool:
    # positive_data_acceptance (ST202) on every operation with start_time/end_time: "end
    # after start", "both or neither", "not in the past", "at most MAX_RESERVATION_HOURS",
    # "within BOOKING_HORIZON_DAYS" compare two fields, or a field with the clock and the
    # settings; JSON Schema can do neither. The field descriptions state them, and the
    # server answers each with 422 `invalid_interval`.
    return (
        isinstance(failure, RejectedPositiveData)
        and response.status_code == 422
        and _json(response).get("code") == "invalid_interval"
    )


def _password_over_72_bytes(failure: Failure, case: Case[Any], response: Response) -> bool:
    # positive_data_acceptance (ST202) on /auth/register, /auth/login, /auth/token: the
    # schema's maxLength counts characters, bcrypt's limit is 72 bytes of UTF-8 (the
    # description says so); 20 characters of CJK text are 60 bytes, 30 are 90.
    body = case.body if isinstance(case.body, dict) else {}
    password = body.get("password")
    return (
        isinstance(failure, RejectedPositiveData)
        and isinstance(password, str)
        and len(password.encode("utf-8", "surrogatepass")) > 72
    )


def _id_past_64_bits(failure: Failure, case: Case[Any], response: Response) -> bool:
    # positive_data_acceptance (ST202) on bodies with an id (seat_id): the model says
    # `maximum: 9223372036854775807`, but FastAPI's OpenAPI model types bounds as floats, so
    # the served schema says 9.223372036854776e+18, which is 2**63: an id of 2**63 or a
    # little more (float precision there is 2**11) passes the schema and not the server.
    body = case.body if isinstance(case.body, dict) else {}
    return isinstance(failure, RejectedPositiveData) and any(
        isinstance(v, int) and v > 2**63 - 1 for v in body.values()
    )


def _both_waitlist_targets(failure: Failure, case: Case[Any], response: Response) -> bool:
    # positive_data_acceptance (ST202) on POST /waitlist: the schema says "exactly one of
    # seat_id and branch" (oneOf), but DICTIONARIES above fill body.seat_id and body.branch
    # after generation, independently, so a generated one-target body can carry both.
    return isinstance(failure, RejectedPositiveData) and any(
        "give exactly one of seat_id and branch" in str(issue.get("msg"))
        for issue in _json(response).get("detail") or []
        if isinstance(issue, dict)
    )


def _reserved_email_domain(failure: Failure, case: Case[Any], response: Response) -> bool:
    # positive_data_acceptance (ST202) on POST /auth/register: `format: email` admits any
    # syntactically valid address; email-validator (EmailStr) also refuses special-use and
    # reserved domains (RFC 6761: `localhost`, `.test`, `.invalid`, ...), which no JSON
    # Schema keyword can name.
    return isinstance(failure, RejectedPositiveData) and any(
        issue.get("loc") == ["body", "email"] and "special-use or reserved" in str(issue.get("msg"))
        for issue in _json(response).get("detail") or []
        if isinstance(issue, dict)
    )


def _idempotency_key_reused(failure: Failure, case: Case[Any], response: Response) -> bool:
    # positive_data_acceptance (ST202) on POST /reservations: the generator sends the same
    # Idempotency-Key (any short text) with different bodies; the contract answers the
    # second 422 `idempotency_mismatch`. A rule about earlier requests, not about this one.
    return (
        isinstance(failure, RejectedPositiveData)
        and _json(response).get("code") == "idempotency_mismatch"
    )


def _hours_out_of_order(failure: Failure, case: Case[Any], response: Response) -> bool:
    # positive_data_acceptance (ST202) on PUT /admin/branches/{id}/hours and POST
    # /admin/branches/{id}/closures: a day's intervals must each open before they close,
    # be sorted and not overlap (api.md, "Opening hours"); JSON Schema cannot compare two
    # strings of one item, nor items of a list. The descriptions say so.
    rules = ("opens must be before closes", "must be sorted and must not overlap")
    return isinstance(failure, RejectedPositiveData) and any(
        issue.get("loc", [])[:2] in (["body", "weekly"], ["body", "open"])
        and any(rule in str(issue.get("msg")) for rule in rules)
        for issue in _json(response).get("detail") or []
        if isinstance(issue, dict)
    )


def _webhook_target_refused(failure: Failure, case: Case[Any], response: Response) -> bool:
    # positive_data_acceptance (ST202) on POST /admin/webhooks: the URL's name must resolve,
    # and not to a private address (api.md, "Webhooks"); DNS is no JSON Schema keyword.
    return (
        isinstance(failure, RejectedPositiveData)
        and _json(response).get("code") == "webhook_url_refused"
    )


EXCUSES = (
    _rejected_by_a_booking_rule,
    _password_over_72_bytes,
    _id_past_64_bits,
    _both_waitlist_targets,
    _reserved_email_domain,
    _idempotency_key_reused,
    _hours_out_of_order,
    _webhook_target_refused,
)


def _json(response: Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@schema.hook
def filter_failure(_: HookContext, failure: Failure, case: Case[Any], response: Response) -> bool:
    return not any(excuse(failure, case, response) for excuse in EXCUSES)


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
