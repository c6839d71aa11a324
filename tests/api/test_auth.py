"""Auth over HTTP (api.md, Auth): register, login, /auth/token, verify, me, login limits."""

import base64
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from pwdlib.hashers.bcrypt import BcryptHasher
from starlette.types import ASGIApp, Receive, Scope, Send

from app.models import Role
from app.security import encode_token
from tests.conftest import TEST_JWT_SECRET, ClientFactory, bearer, login, register
from tests.factories import FrozenClock, assert_error, assert_validation_error

USER_FIELDS = {"id", "student_id", "name", "email", "role", "created_at"}
PASSWORD = "correct horse"


def parse_utc(value: str) -> datetime:
    """A response time: ISO 8601 in UTC, written with ``Z``."""
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


def assert_rate_limited(response: httpx.Response) -> None:
    assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60


async def post_login(
    client: httpx.AsyncClient, student_id: str, password: str, **kwargs: Any
) -> httpx.Response:
    return await client.post(
        "/auth/login", json={"student_id": student_id, "password": password}, **kwargs
    )


# --- register -------------------------------------------------------------------------


async def test_register_returns_201_with_exactly_the_user_fields(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/auth/register",
        json={
            "student_id": "S1000001",
            "name": "Ada Lovelace",
            "password": PASSWORD,
            "email": "ada@example.edu",
        },
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == USER_FIELDS
    assert isinstance(user["id"], int)
    assert user["student_id"] == "S1000001"
    assert user["name"] == "Ada Lovelace"
    assert user["email"] == "ada@example.edu"
    assert user["role"] == "student"
    created_at = parse_utc(user["created_at"])
    assert abs(datetime.now(UTC) - created_at) < timedelta(minutes=1)
    assert PASSWORD not in response.text
    assert "$2b$" not in response.text


async def test_register_without_email_returns_null_email(client: httpx.AsyncClient) -> None:
    user = await register(client, "S1000001")
    assert user["email"] is None


async def test_register_stores_a_bcrypt_hash_never_the_password(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await register(client, "S1000001", password=PASSWORD)
    stored = await db.fetchval("SELECT password_hash FROM users WHERE student_id = 'S1000001'")
    assert stored.startswith("$2b$")
    assert PASSWORD not in stored


async def test_register_taken_student_id_is_409_already_exists(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await register(client, "S1000001")
    response = await client.post(
        "/auth/register",
        json={"student_id": "S1000001", "name": "Someone Else", "password": "another pass"},
    )
    assert_error(response, 409, "already_exists")
    assert await db.fetchval("SELECT count(*) FROM users") == 1


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("a" * 8, id="8-bytes"),
        pytest.param("a" * 72, id="72-bytes"),
        pytest.param("€" * 24, id="24-three-byte-chars-72-bytes"),
    ],
)
async def test_register_accepts_passwords_of_8_to_72_bytes(
    client: httpx.AsyncClient, password: str
) -> None:
    await register(client, "S1000001", password=password)
    await login(client, "S1000001", password=password)


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("a" * 7, id="7-bytes"),
        pytest.param("a" * 73, id="73-bytes"),
        # 25 characters is far below any character limit: only the byte count is too long.
        pytest.param("€" * 25, id="25-three-byte-chars-75-bytes"),
    ],
)
async def test_register_rejects_passwords_outside_8_to_72_bytes(
    client: httpx.AsyncClient, db: asyncpg.Connection, password: str
) -> None:
    response = await client.post(
        "/auth/register", json={"student_id": "S1000001", "name": "A", "password": password}
    )
    assert_validation_error(response, "body", "password")
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_register_rejects_a_malformed_email(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register",
        json={"student_id": "S1000001", "name": "A", "password": PASSWORD, "email": "not-mail"},
    )
    assert_validation_error(response, "body", "email")


async def test_register_accepts_a_200_character_name_and_rejects_201(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "S1000001", name="n" * 200)
    response = await client.post(
        "/auth/register", json={"student_id": "S1000002", "name": "n" * 201, "password": PASSWORD}
    )
    assert_validation_error(response, "body", "name")


async def test_register_missing_field_is_422_in_fastapi_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/register", json={"student_id": "S1000001", "name": "A"})
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"detail"}
    [error] = body["detail"]
    assert error["type"] == "missing"
    assert error["loc"] == ["body", "password"]
    assert isinstance(error["msg"], str)


# --- login ----------------------------------------------------------------------------


async def test_login_returns_bearer_token_expiry_and_user(client: httpx.AsyncClient) -> None:
    user = await register(client, "S1000001")
    before = datetime.now(UTC)
    response = await post_login(client, "S1000001", PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_at", "user"}
    assert body["token_type"] == "bearer"
    assert body["user"] == user
    expires_at = parse_utc(body["expires_at"])
    assert abs(expires_at - (before + timedelta(hours=24))) < timedelta(seconds=5)
    me = await client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200


async def test_login_token_lifetime_follows_jwt_expire_hours(make_client: ClientFactory) -> None:
    client = await make_client(JWT_EXPIRE_HOURS=2)
    await register(client, "S1000001")
    before = datetime.now(UTC)
    response = await post_login(client, "S1000001", PASSWORD)
    expires_at = parse_utc(response.json()["expires_at"])
    assert abs(expires_at - (before + timedelta(hours=2))) < timedelta(seconds=5)


async def test_wrong_password_and_unknown_student_get_byte_identical_401(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "S1000001")
    wrong_password = await post_login(client, "S1000001", "wrong password")
    unknown_student = await post_login(client, "S9999999", "wrong password")
    assert_error(wrong_password, 401, "invalid_credentials")
    assert unknown_student.content == wrong_password.content
    assert unknown_student.headers["WWW-Authenticate"] == "Bearer"
    assert wrong_password.headers["WWW-Authenticate"] == "Bearer"


async def test_login_rejects_a_password_over_72_bytes_with_422(client: httpx.AsyncClient) -> None:
    await register(client, "S1000001", password="a" * 72)
    response = await post_login(client, "S1000001", "a" * 73)
    assert_validation_error(response, "body", "password")


async def test_login_with_empty_password_is_422(client: httpx.AsyncClient) -> None:
    response = await post_login(client, "S1000001", "")
    assert_validation_error(response, "body", "password")


# --- /auth/token (OAuth2 password flow) -----------------------------------------------


async def test_token_form_answers_like_login(client: httpx.AsyncClient) -> None:
    user = await register(client, "S1000001")
    response = await client.post("/auth/token", data={"username": "S1000001", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_at", "user"}
    assert body["token_type"] == "bearer"
    assert body["user"] == user
    me = await client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.json()["id"] == user["id"]


async def test_token_form_wrong_password_gets_the_login_401(client: httpx.AsyncClient) -> None:
    await register(client, "S1000001")
    form = await client.post(
        "/auth/token", data={"username": "S1000001", "password": "wrong password"}
    )
    json_login = await post_login(client, "S1000001", "wrong password")
    body = assert_error(form, 401, "invalid_credentials")
    # The login's answer, plus OAuth2's error fields (RFC 6749, 5.2) for Swagger UI.
    assert body == {
        **json_login.json(),
        "error": "invalid_grant",
        "error_description": body["detail"],
    }


async def test_token_form_failures_count_toward_the_login_limit(
    make_client: ClientFactory,
) -> None:
    client = await make_client(LOGIN_RATE_LIMIT=2)
    await register(client, "S1000001")
    for _ in range(2):
        form = await client.post("/auth/token", data={"username": "S1000001", "password": "bad"})
        assert_error(form, 401, "invalid_credentials")
    assert_rate_limited(await post_login(client, "S1000001", PASSWORD))


async def test_openapi_declares_oauth2_password_flow_on_auth_token(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"].values()
    password_flows = [s["flows"]["password"] for s in schemes if s["type"] == "oauth2"]
    assert [flow["tokenUrl"] for flow in password_flows] == ["/auth/token"]
    me_security = schema["paths"]["/auth/me"]["get"]["security"]
    assert me_security == [{name: []} for name in schema["components"]["securitySchemes"]]


# --- /auth/verify ---------------------------------------------------------------------


def service_token(
    *,
    user_id: int = 1,
    student_id: str = "S1000001",
    secret: str = TEST_JWT_SECRET,
    now: datetime | None = None,
    ttl: timedelta = timedelta(hours=1),
) -> str:
    token, _ = encode_token(
        secret=secret,
        user_id=user_id,
        student_id=student_id,
        role=Role.STUDENT,
        now=now or datetime.now(UTC),
        ttl=ttl,
    )
    return token


def unsigned_token() -> str:
    """``alg: none``: claims anyone could write, with no signature."""
    payload = {
        "sub": "1",
        "sid": "S1000001",
        "role": "admin",
        "exp": int((datetime.now(UTC) + timedelta(hours=1)).timestamp()),
    }
    return jwt.encode(payload, "", algorithm="none")  # PyJWT takes "" as no key for "none"


def promoted_token() -> str:
    """A genuine token whose payload was edited to say ``admin``, signature kept."""
    header, payload, signature = service_token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{edited}.{signature}"


async def test_verify_valid_token_says_whose_it_is(client: httpx.AsyncClient) -> None:
    user = await register(client, "S1000001")
    login_body = (await post_login(client, "S1000001", PASSWORD)).json()
    response = await client.post("/auth/verify", json={"token": login_body["access_token"]})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "valid": True,
        "user_id": user["id"],
        "student_id": "S1000001",
        "role": "student",
        "expires_at": login_body["expires_at"],
    }


async def test_verify_accepts_a_token_signed_with_the_service_secret(
    client: httpx.AsyncClient,
) -> None:
    # The control for the rejections below: same builder, only the defect differs.
    response = await client.post("/auth/verify", json={"token": service_token(user_id=42)})
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == 42


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda: "not-a-jwt", id="garbage"),
        pytest.param(lambda: "", id="empty"),
        pytest.param(
            lambda: service_token(now=datetime.now(UTC) - timedelta(days=2)), id="expired"
        ),
        pytest.param(lambda: service_token(secret="another-secret-" + "y" * 40), id="other-secret"),
        pytest.param(unsigned_token, id="alg-none"),
        pytest.param(promoted_token, id="edited-payload"),
    ],
)
async def test_verify_rejects_bad_tokens_with_invalid_token(
    client: httpx.AsyncClient, make_token: Callable[[], str]
) -> None:
    response = await client.post("/auth/verify", json={"token": make_token()})
    assert_error(response, 401, "invalid_token")


# --- /auth/me -------------------------------------------------------------------------


async def test_me_without_token_is_401_not_authenticated(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/me")
    assert_error(response, 401, "not_authenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda: "garbage", id="garbage"),
        pytest.param(
            lambda: service_token(now=datetime.now(UTC) - timedelta(days=2)), id="expired"
        ),
        pytest.param(unsigned_token, id="alg-none"),
    ],
)
async def test_me_with_bad_token_is_401_invalid_token(
    client: httpx.AsyncClient, make_token: Callable[[], str]
) -> None:
    response = await client.get("/auth/me", headers=bearer(make_token()))
    assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_me_returns_the_user_and_no_suspension(client: httpx.AsyncClient) -> None:
    user = await register(client, "S1000001", email="s@example.edu")
    response = await client.get("/auth/me", headers=bearer(await login(client, "S1000001")))
    assert response.status_code == 200, response.text
    assert response.json() == {**user, "suspended_until": None, "email_notifications": True}


async def test_me_with_token_of_a_missing_account_is_401_invalid_token(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/auth/me", headers=bearer(service_token(user_id=999_999)))
    assert_error(response, 401, "invalid_token")


async def insert_no_shows(db: asyncpg.Connection, user_id: int, starts: list[datetime]) -> None:
    branch_id = await db.fetchval("INSERT INTO branches (name) VALUES ('Main') RETURNING id")
    seat_id = await db.fetchval(
        "INSERT INTO seats (branch_id, area, label) VALUES ($1, 'A', 'A1') RETURNING id",
        branch_id,
    )
    await db.executemany(
        "INSERT INTO reservations (user_id, seat_id, start_time, end_time, status) "
        "VALUES ($1, $2, $3, $4, 'NO_SHOW')",
        [(user_id, seat_id, start, start + timedelta(hours=1)) for start in starts],
    )


async def test_me_after_three_recent_no_shows_is_suspended_7_days_from_the_latest(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    client = await make_client(clock=FrozenClock(now))
    user = await register(client, "S1000001")
    latest = now - timedelta(days=1)
    await insert_no_shows(
        db, user["id"], [now - timedelta(days=20), now - timedelta(days=9), latest]
    )
    response = await client.get("/auth/me", headers=bearer(await login(client, "S1000001")))
    assert response.status_code == 200, response.text
    assert parse_utc(response.json()["suspended_until"]) == latest + timedelta(days=7)


async def test_me_after_two_recent_no_shows_is_not_suspended(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    client = await make_client(clock=FrozenClock(now))
    user = await register(client, "S1000001")
    await insert_no_shows(db, user["id"], [now - timedelta(days=2), now - timedelta(days=1)])
    response = await client.get("/auth/me", headers=bearer(await login(client, "S1000001")))
    assert response.json()["suspended_until"] is None


# --- failed-login limits --------------------------------------------------------------


class ClientAddressFromHeader:
    """Test-only ASGI middleware: the client address comes from ``X-Test-Client``, so one
    app sees several clients (httpx's ASGITransport always says 127.0.0.1)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-test-client":
                    scope = {**scope, "client": (value.decode(), 123)}
        await self.app(scope, receive, send)


def from_address(address: str) -> dict[str, dict[str, str]]:
    return {"headers": {"X-Test-Client": address}}


async def fail_logins(client: httpx.AsyncClient, student_id: str, times: int) -> None:
    for _ in range(times):
        assert_error(
            await post_login(client, student_id, "wrong password"), 401, "invalid_credentials"
        )


async def test_login_is_429_after_limit_failures_even_with_the_right_password(
    make_client: ClientFactory,
) -> None:
    client = await make_client(LOGIN_RATE_LIMIT=3)
    await register(client, "S1000001")
    await fail_logins(client, "S1000001", 3)
    assert_rate_limited(await post_login(client, "S1000001", PASSWORD))


async def test_login_limit_blocks_other_students_from_the_same_address(
    make_client: ClientFactory,
) -> None:
    client = await make_client(LOGIN_RATE_LIMIT=3)
    await register(client, "S1000001")
    await register(client, "S1000002")
    await fail_logins(client, "S1000001", 3)
    # httpx's ASGITransport reports every request as coming from 127.0.0.1.
    assert_rate_limited(await post_login(client, "S1000002", PASSWORD))


async def test_login_limit_blocks_a_student_id_tried_from_many_addresses(
    make_client: ClientFactory,
) -> None:
    client = await make_client(
        app_hook=lambda app: app.add_middleware(ClientAddressFromHeader), LOGIN_RATE_LIMIT=3
    )
    await register(client, "S1000001")
    await register(client, "S1000002")
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        response = await post_login(client, "S1000001", "wrong", **from_address(address))
        assert_error(response, 401, "invalid_credentials")
    assert_rate_limited(await post_login(client, "S1000001", PASSWORD, **from_address("10.0.0.4")))
    # Neither that address nor the other student has failed: not blocked.
    other = await post_login(client, "S1000002", PASSWORD, **from_address("10.0.0.4"))
    assert other.status_code == 200, other.text


async def test_successful_logins_do_not_count_toward_the_limit(
    make_client: ClientFactory,
) -> None:
    client = await make_client(LOGIN_RATE_LIMIT=2)
    await register(client, "S1000001")
    for _ in range(3):
        await login(client, "S1000001")
    await fail_logins(client, "S1000001", 1)
    await login(client, "S1000001")  # 3 successes + 1 failure: still under a limit of 2
    await fail_logins(client, "S1000001", 1)
    assert_rate_limited(await post_login(client, "S1000001", PASSWORD))


@pytest.mark.redis
async def test_login_limit_counts_in_redis(make_client: ClientFactory, redis_url: str) -> None:
    client = await make_client(LOGIN_RATE_LIMIT=3, REDIS_URL=redis_url)
    await register(client, "S1000001")
    await fail_logins(client, "S1000001", 3)
    assert_rate_limited(await post_login(client, "S1000001", PASSWORD))


@pytest.mark.redis
async def test_login_failures_on_one_instance_block_login_on_another(
    make_client: ClientFactory, redis_url: str
) -> None:
    instance_a = await make_client(LOGIN_RATE_LIMIT=3, REDIS_URL=redis_url)
    instance_b = await make_client(LOGIN_RATE_LIMIT=3, REDIS_URL=redis_url)
    await register(instance_a, "S1000001")
    await login(instance_b, "S1000001")
    await fail_logins(instance_a, "S1000001", 3)
    assert_rate_limited(await post_login(instance_b, "S1000001", PASSWORD))


async def test_login_limit_counts_in_memory_while_redis_is_down(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(LOGIN_RATE_LIMIT=3, REDIS_URL="redis://127.0.0.1:1/0")
    await register(client, "S1000001")
    await login(client, "S1000001")
    await fail_logins(client, "S1000001", 3)
    assert_rate_limited(await post_login(client, "S1000001", PASSWORD))
    assert any(r.name == "app.ratelimit" and r.levelno == logging.WARNING for r in caplog.records)


# --- timing ---------------------------------------------------------------------------


@pytest.fixture
def bcrypt_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hash of every bcrypt verification the app runs, in order."""
    seen: list[str] = []
    verify = BcryptHasher.verify

    def counting(self: BcryptHasher, password: str | bytes, hash: str | bytes) -> bool:
        seen.append(hash if isinstance(hash, str) else hash.decode())
        return verify(self, password, hash)

    monkeypatch.setattr(BcryptHasher, "verify", counting)
    return seen


def bcrypt_cost(password_hash: str) -> int:
    """The cost of a bcrypt hash: ``$2b$<cost>$...``."""
    return int(password_hash.split("$")[2])


async def test_unknown_student_costs_one_bcrypt_verification_like_a_wrong_password(
    make_client: ClientFactory, db: asyncpg.Connection, bcrypt_verifications: list[str]
) -> None:
    # The time of an answer must not tell whether the student exists: both answers run
    # the same work, one bcrypt verification at the configured cost (a dummy hash for
    # the unknown one), rather than the unknown one skipping bcrypt.
    client = await make_client(BCRYPT_ROUNDS=5, LOGIN_RATE_LIMIT=100)
    await register(client, "S1000001")
    stored = await db.fetchval("SELECT password_hash FROM users WHERE student_id = 'S1000001'")

    for student_id in ("S1000001", "S9999999", "S9999999"):
        assert_error(
            await post_login(client, student_id, "wrong password"), 401, "invalid_credentials"
        )

    wrong_password, *unknown = bcrypt_verifications
    assert wrong_password == stored
    assert len(unknown) == 2  # exactly one per login
    assert stored not in unknown
    assert [bcrypt_cost(h) for h in (wrong_password, *unknown)] == [5, 5, 5]
