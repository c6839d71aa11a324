"""`dlsms create-admin STUDENT_ID [--name]`, run as a real process against a fresh database;
the account it makes is then used through the HTTP API."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from pwdlib import PasswordHash
from pwdlib.hashers.bcrypt import BcryptHasher

from app.db.migrations import upgrade_to_head
from app.main import create_app
from app.settings import Settings
from tests.conftest import bearer, make_settings

pytestmark = pytest.mark.slow

DLSMS = str(Path(sys.executable).with_name("dlsms"))
JWT_SECRET = "cli-test-secret-" + "x" * 40
PASSWORD = "desk-staff-password-1"
BCRYPT = PasswordHash((BcryptHasher(),))


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    """The outer environment without any DL-SMS setting, plus the ones a test chooses."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.upper() not in {*Settings.model_fields, "TEST_DATABASE_URL"}
    }
    env.update(BCRYPT_ROUNDS="4", JWT_SECRET=JWT_SECRET, DATABASE_URL=database_url)
    env.update(extra)
    return env


def create_admin(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # stdin is not a terminal (as under CI or cron), whatever terminal runs pytest.
    return subprocess.run(
        [DLSMS, "create-admin", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def users(url: str) -> list[dict[str, Any]]:
    rows = fetch(url, "SELECT id, student_id, name, role, password_hash FROM users ORDER BY id")
    return [dict(row) for row in rows]


def tables(url: str) -> list[str]:
    rows = fetch(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return [row["tablename"] for row in rows]


def through_the_api(url: str, calls: Callable[[httpx.AsyncClient], Any]) -> Any:
    """Run ``calls(client)`` against an app on ``url`` (its own event loop and pool)."""

    async def run() -> Any:
        app = create_app(make_settings(url))
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await calls(c)

    return asyncio.run(run())


async def login(client: httpx.AsyncClient, student_id: str, password: str) -> httpx.Response:
    return await client.post("/auth/login", json={"student_id": student_id, "password": password})


async def login_and_read_audit(
    client: httpx.AsyncClient, student_id: str, password: str
) -> tuple[httpx.Response, httpx.Response | None]:
    logged_in = await login(client, student_id, password)
    if logged_in.status_code != 200:
        return logged_in, None
    token = logged_in.json()["access_token"]
    return logged_in, await client.get("/admin/audit", headers=bearer(token))


def test_create_admin_makes_an_admin_who_can_log_in_and_reach_admin_routes(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_database("cli_admin_new")

    result = create_admin(
        "librarian", "--name", "Head Librarian", env=cli_env(url, ADMIN_PASSWORD=PASSWORD),
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "librarian" in result.stdout
    assert "created" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    [user] = users(url)
    assert (user["student_id"], user["name"], user["role"]) == (
        "librarian",
        "Head Librarian",
        "admin",
    )
    assert BCRYPT.verify(PASSWORD, user["password_hash"])
    logged_in, audit = through_the_api(
        url, lambda client: login_and_read_audit(client, "librarian", PASSWORD)
    )
    assert logged_in.status_code == 200, logged_in.text
    assert logged_in.json()["user"]["role"] == "admin"
    assert logged_in.json()["user"]["id"] == user["id"]
    assert audit is not None
    assert audit.status_code == 200, audit.text
    assert audit.json() == {"items": [], "total": 0}


def test_create_admin_for_an_existing_student_promotes_them_with_the_new_password(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_database("cli_admin_promote")
    upgrade_to_head(url)

    async def sign_up(client: httpx.AsyncClient) -> httpx.Response:
        body = {"student_id": "S2021001", "name": "Ada Student", "password": "student-pass-1"}
        return await client.post("/auth/register", json=body)

    registered = through_the_api(url, sign_up)
    assert registered.status_code == 201, registered.text

    result = create_admin("S2021001", env=cli_env(url, ADMIN_PASSWORD=PASSWORD), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "promoted" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    [user] = users(url)
    assert user["id"] == registered.json()["id"]
    assert (user["student_id"], user["name"], user["role"]) == ("S2021001", "Ada Student", "admin")

    async def logins(client: httpx.AsyncClient) -> tuple[Any, httpx.Response]:
        return (
            await login_and_read_audit(client, "S2021001", PASSWORD),
            await login(client, "S2021001", "student-pass-1"),
        )

    (logged_in, audit), old_password = through_the_api(url, logins)
    assert logged_in.status_code == 200, logged_in.text
    assert logged_in.json()["user"]["role"] == "admin"
    assert audit is not None
    assert audit.status_code == 200, audit.text
    assert old_password.status_code == 401
    assert old_password.json()["code"] == "invalid_credentials"


def test_create_admin_without_admin_password_and_no_terminal_exits_naming_it(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_database("cli_admin_no_password")

    result = create_admin("librarian", env=cli_env(url), cwd=tmp_path)

    assert result.returncode != 0
    assert "ADMIN_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr
    assert tables(url) == []  # it stopped before touching the database


@pytest.mark.parametrize(
    "password",
    ["seven77", "ééé"],
    ids=["7-bytes", "6-bytes-3-characters"],
)
def test_create_admin_refuses_an_admin_password_under_8_bytes_without_showing_it(
    fresh_database: Callable[[str], str], tmp_path: Path, password: str
) -> None:
    url = fresh_database("cli_admin_bad_password")

    result = create_admin("librarian", env=cli_env(url, ADMIN_PASSWORD=password), cwd=tmp_path)

    assert result.returncode != 0
    assert "ADMIN_PASSWORD" in result.stderr
    assert "8 to 72 bytes" in result.stderr
    assert password not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert tables(url) == []


def test_create_admin_counts_the_password_in_bytes(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_database("cli_admin_multibyte")
    password = "éééé"  # 4 characters, 8 bytes in UTF-8

    result = create_admin("librarian", env=cli_env(url, ADMIN_PASSWORD=password), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    [user] = users(url)
    assert BCRYPT.verify(password, user["password_hash"])


def test_create_admin_refuses_an_overlong_student_id(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_database("cli_admin_bad_id")
    student_id = "x" * 51

    result = create_admin(student_id, env=cli_env(url, ADMIN_PASSWORD=PASSWORD), cwd=tmp_path)

    assert result.returncode != 0
    assert "STUDENT_ID" in result.stderr
    assert "Traceback" not in result.stderr
    assert tables(url) == []


def test_create_admin_refuses_an_overlong_name_with_a_message_not_a_traceback(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_database("cli_admin_bad_name")

    result = create_admin(
        "librarian", "--name", "N" * 201, env=cli_env(url, ADMIN_PASSWORD=PASSWORD), cwd=tmp_path
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--name" in result.stderr
    assert "$2b$" not in result.stderr  # nor the password's hash
    assert "users" not in tables(url) or users(url) == []
