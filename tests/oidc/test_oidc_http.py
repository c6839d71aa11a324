"""Campus sign-in through HTTP alone (no browser), against the real provider: the good
path, and each way a sign-in must be refused with a clear error and no session."""

import httpx
import pytest

from tests.oidc.conftest import (
    ADMIN_GROUP,
    CLIENT_ID,
    CLIENT_SECRET,
    SETTINGS,
    Provider,
    query,
    sign_in_over_http,
    start_sign_in,
)
from tests.realtime.servers import Server, Servers, free_port

SESSION = "dlsms_session"


async def test_providers_with_campus_sign_in(campus: Server) -> None:
    answer = await campus.client.get("/auth/providers")
    assert answer.status_code == 200
    assert answer.json() == {
        "password": True,
        "oidc": {"name": "Example University", "login_url": "/auth/oidc/login"},
    }


async def test_providers_without_campus_sign_in(plain: Server) -> None:
    answer = await plain.client.get("/auth/providers")
    assert answer.json() == {"password": True, "oidc": None}
    refused = await plain.client.get("/auth/oidc/login")
    assert refused.status_code == 404
    assert refused.json()["code"] == "oidc_not_configured"


async def test_login_redirect_carries_pkce_state_and_nonce(
    campus: Server, provider: Provider
) -> None:
    start = await campus.client.get("/auth/oidc/login")
    assert start.status_code == 302
    params = query(start.headers["location"])
    assert params["response_type"] == "code"
    assert params["client_id"] == "dlsms-test"
    assert params["redirect_uri"] == f"{campus.url}/auth/oidc/callback"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43  # base64url SHA-256: never the verifier
    assert "openid" in params["scope"].split()
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
    assert "code_verifier" not in start.headers["location"]
    cookie = start.headers["set-cookie"]
    assert "dlsms_oidc_state=" in cookie and "HttpOnly" in cookie
    assert "Path=/auth/oidc" in cookie and "SameSite=lax" in cookie


async def test_first_sign_in_creates_the_account_and_the_next_reuses_it(
    campus: Server, provider: Provider, clients: list[httpx.AsyncClient]
) -> None:
    claims = {"preferred_username": "S1001", "name": "Ada Lovelace", "email": "ada@uni.example"}
    first = await sign_in_over_http(campus, provider, "sub-ada", claims)
    clients.append(first.client)
    assert first.answer.status_code == 303, first.answer.text
    assert first.answer.headers["location"] == "/app/branches"
    assert SESSION in first.answer.cookies and "dlsms_csrf" in first.answer.cookies
    me = (await first.client.get("/auth/me")).json()
    assert (me["student_id"], me["name"], me["email"], me["role"]) == (
        "S1001",
        "Ada Lovelace",
        "ada@uni.example",
        "student",
    )

    # Renamed at the university: the same account, its name refreshed.
    second = await sign_in_over_http(
        campus, provider, "sub-ada", {**claims, "name": "Ada King"}, next_path="/app/reservations"
    )
    clients.append(second.client)
    assert second.answer.headers["location"] == "/app/reservations"
    again = (await second.client.get("/auth/me")).json()
    assert again["id"] == me["id"] and again["name"] == "Ada King"

    # The account has no password: none opens it.
    for password in ("", "password123", "$2b$04$" + "." * 52 + "/"):
        login = await campus.client.post(
            "/auth/login", json={"student_id": "S1001", "password": password or "x" * 8}
        )
        assert login.status_code == 401, login.text
        assert login.json()["code"] == "invalid_credentials"


async def test_admin_group_gives_admin_and_leaving_it_takes_it_back(
    campus: Server, provider: Provider, clients: list[httpx.AsyncClient]
) -> None:
    staff = {"preferred_username": "T900", "name": "Staff", "groups": ["students", ADMIN_GROUP]}
    first = await sign_in_over_http(campus, provider, "sub-staff", staff)
    clients.append(first.client)
    assert (await first.client.get("/auth/me")).json()["role"] == "admin"
    # An admin-only endpoint works with the session cookie.
    assert (await first.client.get("/admin/audit")).status_code == 200

    left = await sign_in_over_http(campus, provider, "sub-staff", {**staff, "groups": ["students"]})
    clients.append(left.client)
    assert (await left.client.get("/auth/me")).json()["role"] == "student"
    assert (await left.client.get("/admin/audit")).status_code == 403


async def test_sign_in_keeps_next_on_this_site(
    campus: Server, provider: Provider, clients: list[httpx.AsyncClient]
) -> None:
    await provider.set_user("sub-next", {"preferred_username": "S2002"})
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "app"):
        dance = await sign_in_over_http(campus, provider, "sub-next", next_path=bad)
        clients.append(dance.client)
        assert dance.answer.headers["location"] == "/app/branches", bad


async def _no_session(client: httpx.AsyncClient, answer: httpx.Response) -> None:
    assert SESSION not in answer.cookies
    assert (await client.get("/auth/me")).status_code == 401


async def test_replayed_state_is_refused(
    campus: Server, provider: Provider, clients: list[httpx.AsyncClient]
) -> None:
    dance = await sign_in_over_http(campus, provider, "sub-replay", {"preferred_username": "S3"})
    clients.append(dance.client)
    assert dance.answer.status_code == 303
    # The same answer again, from a browser that still holds the state cookie.
    replayer = httpx.AsyncClient(base_url=campus.url, timeout=10)
    clients.append(replayer)
    state = query(dance.callback_url)["state"]
    replayer.cookies.set("dlsms_oidc_state", state, domain="127.0.0.1", path="/auth/oidc")
    replay = await replayer.get(dance.callback_url)
    assert replay.status_code == 400
    assert replay.json()["code"] == "oidc_failed"
    assert "already used" in replay.json()["detail"]
    await _no_session(replayer, replay)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("no_state", "no state"),
        ("other_state", "not started in this browser"),
        ("no_cookie", "not started in this browser"),
        ("forged_both", "expired or was already used"),
    ],
)
async def test_missing_or_invalid_state_is_refused(
    campus: Server,
    provider: Provider,
    clients: list[httpx.AsyncClient],
    change: str,
    expected: str,
) -> None:
    await provider.set_user("sub-state", {"preferred_username": "S4"})
    client, callback = await start_sign_in(campus, provider, "sub-state")
    clients.append(client)
    params = query(callback)
    if change == "no_state":
        del params["state"]
    elif change == "other_state":
        params["state"] = "x" * 43
    elif change == "no_cookie":
        client.cookies.clear()
    elif change == "forged_both":
        params["state"] = "y" * 43
        client.cookies.set("dlsms_oidc_state", "y" * 43, domain="127.0.0.1", path="/auth/oidc")
    answer = await client.get("/auth/oidc/callback", params=params)
    assert answer.status_code == 400
    assert answer.json()["code"] == "oidc_failed"
    assert expected in answer.json()["detail"]
    await _no_session(client, answer)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("tamper", "bad_signature"),
        ("wrong_aud", "aud"),
        ("wrong_iss", "iss"),
        ("expired", "exp"),
        ("unknown_kid", "kid"),
    ],
)
async def test_bad_id_tokens_are_refused(
    campus: Server,
    provider: Provider,
    clients: list[httpx.AsyncClient],
    mode: str,
    reason: str,
) -> None:
    await provider.set_user(
        "sub-bad", {"preferred_username": "S5", "groups": [ADMIN_GROUP], "name": "Mallory"}
    )
    # A good sign-in first: the app has the provider's keys cached from then on.
    good = await sign_in_over_http(campus, provider, "sub-bad")
    clients.append(good.client)
    assert good.answer.status_code == 303
    fetched = await provider.jwks_requests()

    await provider.mode(mode)
    dance = await sign_in_over_http(campus, provider, "sub-bad")
    clients.append(dance.client)
    assert dance.answer.status_code == 401, dance.answer.text
    body = dance.answer.json()
    assert body["code"] == "oidc_failed"
    assert reason in body["detail"], body
    await _no_session(dance.client, dance.answer)
    if mode in ("wrong_aud", "wrong_iss", "expired"):
        assert await provider.jwks_requests() == fetched  # the key is known: no fetch
    else:
        # An unknown kid, or (the mock names no kid) a bad signature, makes the app fetch
        # the JWKS once more in case the key was rotated, then refuse.
        assert await provider.jwks_requests() == fetched + 1
    # Nothing of the token (claims, signature) shows in the answer.
    assert "eyJ" not in dance.answer.text
    assert "tampered" not in (await campus.client.get("/health")).text


async def test_provider_key_rotation_is_followed(
    campus: Server, provider: Provider, clients: list[httpx.AsyncClient]
) -> None:
    await provider.set_user("sub-rot", {"preferred_username": "S6"})
    before = await sign_in_over_http(campus, provider, "sub-rot")
    clients.append(before.client)
    assert before.answer.status_code == 303
    fetched = await provider.jwks_requests()
    await provider.rotate()
    after = await sign_in_over_http(campus, provider, "sub-rot")
    clients.append(after.client)
    assert after.answer.status_code == 303, after.answer.text
    assert await provider.jwks_requests() == fetched + 1  # fetched again once, then cached
    again = await sign_in_over_http(campus, provider, "sub-rot")
    clients.append(again.client)
    assert again.answer.status_code == 303
    assert await provider.jwks_requests() == fetched + 1


async def test_provider_refusal_is_a_clear_error(
    campus: Server, provider: Provider, clients: list[httpx.AsyncClient]
) -> None:
    client = httpx.AsyncClient(base_url=campus.url, timeout=10)
    clients.append(client)
    start = await client.get("/auth/oidc/login")
    chosen = await client.post(start.headers["location"], data={"action": "deny"})
    callback = chosen.headers["location"]
    assert query(callback)["error"] == "access_denied"
    answer = await client.get(callback, headers={"Accept": "text/html"})
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("text/html")
    assert "access_denied" in answer.text and "Back to sign in" in answer.text
    await _no_session(client, answer)
    # And the state of that attempt is spent.
    replay = await client.get(callback.replace("error=access_denied", "code=abc"))
    assert replay.status_code == 400


async def test_missing_student_id_claim_is_refused(
    campus: Server, provider: Provider, clients: list[httpx.AsyncClient]
) -> None:
    dance = await sign_in_over_http(campus, provider, "sub-noid", {"name": "No Id"})
    clients.append(dance.client)
    assert dance.answer.status_code == 401
    assert dance.answer.json()["code"] == "oidc_failed"
    assert "preferred_username" in dance.answer.json()["detail"]
    await _no_session(dance.client, dance.answer)


async def test_campus_sign_in_never_enters_a_password_account(
    campus: Server, provider: Provider, clients: list[httpx.AsyncClient]
) -> None:
    # Someone registered a student's ID (or an operator account is named like a campus
    # user): campus sign-in must not share that account with its password holder.
    registered = await campus.client.post(
        "/auth/register",
        json={"student_id": "S9009", "name": "Old Name", "password": "password123"},
    )
    assert registered.status_code == 201, registered.text
    dance = await sign_in_over_http(
        campus,
        provider,
        "sub-linked",
        {"preferred_username": "S9009", "name": "New Name", "groups": [ADMIN_GROUP]},
    )
    clients.append(dance.client)
    assert dance.answer.status_code == 409
    assert dance.answer.json()["code"] == "oidc_account_conflict"
    await _no_session(dance.client, dance.answer)
    login = await campus.client.post(
        "/auth/login", json={"student_id": "S9009", "password": "password123"}
    )
    assert login.status_code == 200
    user = login.json()["user"]
    assert (user["name"], user["role"]) == ("Old Name", "student")


async def test_provider_unreachable_is_503_not_500(
    db: object, app_servers: Servers, campus: Server
) -> None:
    (down,) = await app_servers.shared(
        "campus-down",
        1,
        OIDC_ISSUER=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=CLIENT_SECRET,
        **SETTINGS,
    )
    answer = await down.client.get("/auth/oidc/login")
    assert answer.status_code == 503
    assert answer.json()["code"] == "oidc_unavailable"
    assert "location" not in answer.headers
    assert CLIENT_SECRET not in down.log_tail(100_000)
