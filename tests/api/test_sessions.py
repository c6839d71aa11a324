"""Browser sessions (api.md, Browser sessions): the token in an HttpOnly cookie, the
double-submit CSRF rule on cookie-authenticated writes, the security headers every
response carries, CORS's exposed headers and /auth/token's OAuth2 error fields."""

from datetime import timedelta
from http.cookies import SimpleCookie

import asyncpg
import httpx
import pytest

from app.main import create_app
from app.timeutil import utcnow
from tests.conftest import ClientFactory, make_settings, register
from tests.factories import (
    HOUR,
    Student,
    add_branch,
    add_seat,
    assert_error,
    assert_validation_error,
    booking,
)
from tests.realtime.servers import open_stream, serve_in_process

PASSWORD = "correct horse"
STUDENT = "S1000001"
CREDENTIALS = {"student_id": STUDENT, "password": PASSWORD}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def set_cookies(response: httpx.Response) -> dict[str, dict[str, str | bool]]:
    """Every ``Set-Cookie`` of a response: name -> its attributes (lower-case), value."""
    found: dict[str, dict[str, str | bool]] = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name, morsel in cookie.items():
            attributes: dict[str, str | bool] = {"value": morsel.value}
            attributes.update({k: v for k, v in morsel.items() if v})
            found[name] = attributes
    return found


async def start_session(client: httpx.AsyncClient, url: str = "/auth/session") -> httpx.Response:
    await register(client, STUDENT, PASSWORD)
    response = await client.post(url, json=CREDENTIALS)
    assert response.status_code == 200, response.text
    return response


def csrf(client: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": client.cookies["dlsms_csrf"]}


@pytest.fixture
async def seat_id(db: asyncpg.Connection) -> int:
    return await add_seat(db, await add_branch(db), "A1")


def tomorrow_booking(seat_id: int) -> dict[str, str | int]:
    start = (utcnow() + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    return booking(seat_id, start, start + HOUR)


# --- POST /auth/session ----------------------------------------------------------------


async def test_session_answers_like_login_and_sets_both_cookies(client: httpx.AsyncClient) -> None:
    response = await start_session(client)

    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_at", "user"}
    assert body["user"]["student_id"] == STUDENT
    cookies = set_cookies(response)
    session, token = cookies["dlsms_session"], cookies["dlsms_csrf"]
    assert session["value"] == body["access_token"]
    lifetime = str(24 * 3600)
    assert session == {
        "value": body["access_token"],
        "httponly": True,
        "samesite": "lax",
        "path": "/",
        "max-age": lifetime,
    }
    assert isinstance(token["value"], str) and len(token["value"]) >= 32
    assert token == {"value": token["value"], "samesite": "lax", "path": "/", "max-age": lifetime}


async def test_session_cookies_live_as_long_as_the_token(make_client: ClientFactory) -> None:
    client = await make_client(JWT_EXPIRE_HOURS=2)
    cookies = set_cookies(await start_session(client))
    assert cookies["dlsms_session"]["max-age"] == cookies["dlsms_csrf"]["max-age"] == "7200"


async def test_session_cookies_are_secure_with_cookie_secure(make_client: ClientFactory) -> None:
    client = await make_client(COOKIE_SECURE=True)
    cookies = set_cookies(await start_session(client))
    assert cookies["dlsms_session"]["secure"] is True
    assert cookies["dlsms_csrf"]["secure"] is True


async def test_session_cookies_are_secure_over_https(client: httpx.AsyncClient) -> None:
    cookies = set_cookies(await start_session(client, "https://testserver/auth/session"))
    assert cookies["dlsms_session"]["secure"] is True
    assert cookies["dlsms_csrf"]["secure"] is True


async def test_session_cookies_are_secure_behind_a_tls_proxy(client: httpx.AsyncClient) -> None:
    # The test client's address (127.0.0.1) is a trusted proxy by default.
    await register(client, STUDENT, PASSWORD)
    response = await client.post(
        "/auth/session", json=CREDENTIALS, headers={"X-Forwarded-Proto": "https"}
    )
    assert set_cookies(response)["dlsms_session"]["secure"] is True


async def test_session_cookies_are_not_secure_over_plain_http_by_default(
    client: httpx.AsyncClient,
) -> None:
    cookies = set_cookies(await start_session(client))
    assert "secure" not in cookies["dlsms_session"]
    assert "secure" not in cookies["dlsms_csrf"]


async def test_session_wrong_password_is_401_and_sets_no_cookie(
    client: httpx.AsyncClient,
) -> None:
    await register(client, STUDENT, PASSWORD)
    response = await client.post("/auth/session", json={**CREDENTIALS, "password": "wrong horse"})
    assert_error(response, 401, "invalid_credentials")
    assert response.headers.get_list("set-cookie") == []


async def test_session_failures_count_toward_the_login_limit(make_client: ClientFactory) -> None:
    client = await make_client(LOGIN_RATE_LIMIT=2)
    await register(client, STUDENT, PASSWORD)
    wrong = {**CREDENTIALS, "password": "wrong horse"}
    for _ in range(2):
        assert_error(await client.post("/auth/session", json=wrong), 401, "invalid_credentials")

    assert_error(await client.post("/auth/login", json=CREDENTIALS), 429, "rate_limited")
    assert_error(await client.post("/auth/session", json=CREDENTIALS), 429, "rate_limited")


async def test_session_body_is_validated_like_login(client: httpx.AsyncClient) -> None:
    assert_validation_error(
        await client.post("/auth/session", json={"student_id": STUDENT}), "body", "password"
    )


# --- the cookie authenticates ----------------------------------------------------------


async def test_the_session_cookie_authenticates_reads(client: httpx.AsyncClient) -> None:
    await start_session(client)

    me = await client.get("/auth/me")
    assert me.status_code == 200, me.text
    assert me.json()["student_id"] == STUDENT
    reservations = await client.get("/reservations")
    assert reservations.status_code == 200, reservations.text
    assert reservations.json() == {"items": [], "total": 0}


async def test_a_bad_session_cookie_is_401_invalid_token(client: httpx.AsyncClient) -> None:
    client.cookies.set("dlsms_session", "not-a-jwt")
    assert_error(await client.get("/auth/me"), 401, "invalid_token")


async def test_the_bearer_header_wins_over_the_cookie(
    client: httpx.AsyncClient, alice: Student
) -> None:
    await start_session(client)
    me = await client.get("/auth/me", headers=alice.headers)
    assert me.json()["student_id"] == alice.student_id


# --- CSRF --------------------------------------------------------------------------------


async def test_a_cookie_write_without_the_csrf_header_is_403_csrf_failed(
    client: httpx.AsyncClient, seat_id: int
) -> None:
    await start_session(client)
    response = await client.post("/reservations", json=tomorrow_booking(seat_id))
    assert_error(response, 403, "csrf_failed")


async def test_a_cookie_write_with_a_wrong_csrf_token_is_403_csrf_failed(
    client: httpx.AsyncClient, seat_id: int
) -> None:
    await start_session(client)
    wrong = {"X-CSRF-Token": client.cookies["dlsms_csrf"] + "x"}
    response = await client.post("/reservations", json=tomorrow_booking(seat_id), headers=wrong)
    assert_error(response, 403, "csrf_failed")


async def test_a_cookie_write_with_a_csrf_header_but_no_csrf_cookie_is_refused(
    client: httpx.AsyncClient, seat_id: int
) -> None:
    await start_session(client)
    token = client.cookies["dlsms_csrf"]
    client.cookies.delete("dlsms_csrf")
    response = await client.post(
        "/reservations", json=tomorrow_booking(seat_id), headers={"X-CSRF-Token": token}
    )
    assert_error(response, 403, "csrf_failed")


async def test_a_cookie_write_with_the_csrf_token_works(
    client: httpx.AsyncClient, seat_id: int
) -> None:
    await start_session(client)
    response = await client.post(
        "/reservations", json=tomorrow_booking(seat_id), headers=csrf(client)
    )
    assert response.status_code == 201, response.text
    cancel = await client.delete(f"/reservations/{response.json()['id']}", headers=csrf(client))
    assert cancel.status_code == 200, cancel.text
    refused = await client.delete(f"/reservations/{response.json()['id']}")
    assert_error(refused, 403, "csrf_failed")


async def test_bearer_writes_need_no_csrf_header_even_with_a_cookie(
    client: httpx.AsyncClient, seat_id: int, alice: Student
) -> None:
    await start_session(client)
    response = await client.post(
        "/reservations", json=tomorrow_booking(seat_id), headers=alice.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["user_id"] == alice.id


async def test_a_cross_site_form_post_with_the_cookie_is_refused(
    client: httpx.AsyncClient, seat_id: int
) -> None:
    # What a form on another site makes the browser send: the cookie (SameSite=Lax
    # would keep it from a cross-site POST, but not from a same-site one), no header.
    await start_session(client)
    response = await client.post(
        "/reservations",
        data={"seat_id": str(seat_id), "start_time": "2026-12-10T10:00:00Z"},
        headers={"Origin": "https://evil.example.com"},
    )
    assert_error(response, 403, "csrf_failed")


async def test_reads_need_no_csrf_header(client: httpx.AsyncClient) -> None:
    await start_session(client)
    assert (await client.get("/notifications")).status_code == 200


async def test_openapi_names_csrf_failed_on_the_writes_that_take_a_token(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, method in [
        ("/reservations", "post"),
        ("/reservations/{reservation_id}", "delete"),
        ("/waitlist", "post"),
        ("/admin/seats/{seat_id}", "patch"),
        ("/auth/session", "delete"),
    ]:
        assert "csrf_failed" in paths[path][method]["responses"]["403"]["description"], path
    assert "403" not in paths["/reservations"]["get"]["responses"]
    assert "403" not in paths["/auth/login"]["post"]["responses"]


# --- DELETE /auth/session ----------------------------------------------------------------


async def test_delete_session_clears_both_cookies(client: httpx.AsyncClient) -> None:
    await start_session(client)

    response = await client.delete("/auth/session", headers=csrf(client))

    assert response.status_code == 204
    cleared = set_cookies(response)
    for name in ("dlsms_session", "dlsms_csrf"):
        assert cleared[name]["max-age"] == "0"
        assert cleared[name]["path"] == "/"
    assert "dlsms_session" not in client.cookies
    assert_error(await client.get("/auth/me"), 401, "not_authenticated")


async def test_delete_session_needs_the_csrf_header(client: httpx.AsyncClient) -> None:
    await start_session(client)

    assert_error(await client.delete("/auth/session"), 403, "csrf_failed")
    assert (await client.get("/auth/me")).status_code == 200


async def test_delete_session_without_a_session_is_204(client: httpx.AsyncClient) -> None:
    assert (await client.delete("/auth/session")).status_code == 204


# --- streams -----------------------------------------------------------------------------


async def test_the_notification_stream_accepts_the_session_cookie(
    db: asyncpg.Connection, database_url: str
) -> None:
    app = create_app(make_settings(database_url, SSE_MAX_STREAM_SECONDS=2))
    async with serve_in_process(app, log_level="warning") as server:
        client = server.client
        await start_session(client)
        async with open_stream(client, "/notifications/stream") as stream:
            assert stream.response.headers["content-security-policy"] == CSP
            assert stream.response.headers["x-content-type-options"] == "nosniff"
        client.cookies.clear()
        refused = await client.get("/notifications/stream")
        assert_error(refused, 401, "not_authenticated")


# --- security headers ------------------------------------------------------------------


def assert_security_headers(response: httpx.Response, csp: str | None = CSP) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    if csp is not None:
        assert policy == csp


async def test_json_and_error_responses_carry_the_security_headers(
    client: httpx.AsyncClient,
) -> None:
    assert_security_headers(await client.get("/health"))
    assert_security_headers(await client.get("/auth/me"))  # 401
    assert_security_headers(await client.get("/no/such/path"))  # 404


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_docs_pages_allow_exactly_their_own_inline_blocks(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert_security_headers(response, csp=None)
    policy = response.headers["content-security-policy"]
    script_src = next(d for d in policy.split("; ") if d.startswith("script-src "))
    assert script_src.startswith("script-src 'self' 'sha256-") or page == "/redoc"
    assert "'unsafe-eval'" not in policy


# --- CORS --------------------------------------------------------------------------------


async def test_cors_exposes_the_headers_clients_need(make_client: ClientFactory) -> None:
    origin = "https://app.example.edu"
    client = await make_client(CORS_ORIGINS=[origin])
    response = await client.get("/seats", headers={"Origin": origin})
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"idempotent-replayed", "content-disposition", "retry-after", "x-request-id"} <= exposed


# --- /auth/token (Swagger's OAuth2 password flow) --------------------------------------


async def test_token_wrong_password_carries_oauth2_invalid_grant(
    client: httpx.AsyncClient,
) -> None:
    await register(client, STUDENT, PASSWORD)
    response = await client.post("/auth/token", data={"username": STUDENT, "password": "nope nope"})
    body = assert_error(response, 401, "invalid_credentials")
    assert body["error"] == "invalid_grant"
    assert body["error_description"] == body["detail"]


async def test_token_missing_field_carries_oauth2_invalid_request(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/auth/token", data={"username": STUDENT})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["error_description"]
    assert [issue["loc"] for issue in body["detail"]] == [["body", "password"]]
