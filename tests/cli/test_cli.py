"""The `dlsms` console script, run as a real process: migrate, seed --demo, serve."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.bcrypt import BcryptHasher

from app.settings import Settings
from tests.conftest import MIGRATION_HEAD

pytestmark = pytest.mark.slow

DLSMS = str(Path(sys.executable).with_name("dlsms"))
JWT_SECRET = "cli-test-secret-" + "x" * 40
STUDENTS = [f"S20210{n:02d}" for n in range(1, 11)]
ADMIN_PREFIX = "admin password (generated; set ADMIN_PASSWORD to choose one): "
BCRYPT = PasswordHash((BcryptHasher(),))


def cli_env(database_url: str | None, **extra: str) -> dict[str, str]:
    """The outer environment without any DL-SMS setting, plus the ones a test chooses."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.upper() not in {*Settings.model_fields, "TEST_DATABASE_URL"}
    }
    env.update(BCRYPT_ROUNDS="4", JWT_SECRET=JWT_SECRET)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def dlsms(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DLSMS, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def password_hash(url: str, student_id: str) -> str:
    rows = fetch(url, "SELECT password_hash FROM users WHERE student_id = $1", student_id)
    assert len(rows) == 1, student_id
    value: str = rows[0]["password_hash"]
    return value


def library_counts(url: str) -> dict[str, Any]:
    branches = fetch(
        url,
        "SELECT b.name, count(s.id) AS seats FROM branches b "
        "LEFT JOIN seats s ON s.branch_id = b.id GROUP BY b.name",
    )
    users = fetch(url, "SELECT student_id, role FROM users ORDER BY student_id")
    return {
        "seats_by_branch": {row["name"]: row["seats"] for row in branches},
        "students": [row["student_id"] for row in users if row["role"] == "student"],
        "admins": [row["student_id"] for row in users if row["role"] == "admin"],
    }


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{host}"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_migrate_creates_the_schema_on_an_empty_database(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_database("cli_migrate")

    result = dlsms("migrate", env=cli_env(url), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    tables = fetch(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert {"users", "branches", "seats", "reservations", "waitlist_entries"} <= {
        row["tablename"] for row in tables
    }
    versions = [row["version_num"] for row in fetch(url, "SELECT * FROM alembic_version")]
    assert versions == [MIGRATION_HEAD]


def test_seed_demo_twice_gives_the_same_library_and_working_passwords(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_database("cli_seed")
    env = cli_env(url, ADMIN_PASSWORD="staff-password-1")
    expected: dict[str, Any] = {
        "seats_by_branch": {"Main Library": 25, "Science Library": 12, "Engineering Library": 12},
        "students": STUDENTS,
        "admins": ["admin"],
    }

    first = dlsms("seed", "--demo", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert library_counts(url) == expected
    second = dlsms("seed", "--demo", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert library_counts(url) == expected

    assert sum(expected["seats_by_branch"].values()) == 49
    for student_id in STUDENTS:
        assert BCRYPT.verify("password123", password_hash(url, student_id)), student_id
    assert BCRYPT.verify("staff-password-1", password_hash(url, "admin"))
    assert ADMIN_PREFIX not in first.stdout + second.stdout


def test_seed_without_admin_password_prints_a_generated_one_only_the_first_time(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_database("cli_seed_generated")
    env = cli_env(url)

    first = dlsms("seed", "--demo", env=env, cwd=tmp_path)
    second = dlsms("seed", "--demo", env=env, cwd=tmp_path)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    printed = [line for line in first.stdout.splitlines() if line.startswith(ADMIN_PREFIX)]
    assert len(printed) == 1
    generated = printed[0].removeprefix(ADMIN_PREFIX)
    assert BCRYPT.verify(generated, password_hash(url, "admin"))
    assert ADMIN_PREFIX not in second.stdout
    assert generated not in second.stdout + second.stderr
    assert BCRYPT.verify(generated, password_hash(url, "admin"))  # the second run kept it


def test_bad_setting_stops_migrate_with_one_line_naming_it(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_database("cli_bad_setting")

    result = dlsms("migrate", env=cli_env(url, GRACE_MINUTES="abc"), cwd=tmp_path)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "GRACE_MINUTES" in lines[0]
    assert "Traceback" not in result.stderr
    assert fetch(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == []


def test_serve_in_production_without_jwt_secret_refuses_to_start(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    env = cli_env(fresh_database("cli_no_secret"))
    del env["JWT_SECRET"]

    result = dlsms("serve", "--port", str(free_port()), env=env, cwd=tmp_path)

    assert result.returncode != 0
    assert "JWT_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


def wait_until_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dlsms serve exited with {proc.returncode}"
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base}/ready never answered 200")


def test_serve_announces_itself_answers_ready_and_stops_cleanly_on_sigterm(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = with_password(fresh_database("cli_serve"), "s3cret")  # trust auth ignores it
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [DLSMS, "serve", "--port", str(port)],
            env=cli_env(url),
            cwd=tmp_path,
            stdout=out,
            stderr=err,
        )
        try:
            wait_until_ready(base, proc)
            ready = httpx.get(f"{base}/ready", timeout=5)
            proc.send_signal(signal.SIGTERM)
            returncode = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    assert ready.status_code == 200
    assert ready.json()["database"] == "up"
    assert returncode == 0
    banner, logs = stdout.read_text(), stderr.read_text()
    assert f"serving on {base}" in banner
    assert "database: postgresql://postgres:***@" in banner
    assert "redis:    not configured" in banner
    assert f"docs:     {base}/docs" in banner
    assert "s3cret" not in banner + logs


@pytest.mark.parametrize(
    ("flags", "env", "logged"),
    [
        ([], {}, True),
        (["--no-access-log"], {}, False),
        ([], {"ACCESS_LOG": "false"}, False),
    ],
    ids=["default", "flag", "setting"],
)
def test_serve_logs_a_line_per_request_unless_told_not_to(
    fresh_database: Callable[[str], str],
    tmp_path: Path,
    flags: list[str],
    env: dict[str, str],
    logged: bool,
) -> None:
    url = fresh_database("cli_access_log")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stderr = tmp_path / "stderr.txt"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [DLSMS, "serve", "--port", str(port), *flags],
            env=cli_env(url, LOG_FORMAT="text", **env),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            wait_until_ready(base, proc)
            assert httpx.get(f"{base}/branches", timeout=5).status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert ('"GET /branches HTTP/1.1" 200' in stderr.read_text()) is logged
