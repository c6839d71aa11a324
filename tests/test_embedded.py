"""The embedded PostgreSQL used when no DATABASE_URL is given: a real server, kept data,
and nothing left running after a clean stop."""

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest

from app.db.embedded import EmbeddedPostgres
from app.db.migrations import upgrade_to_head
from app.settings import Settings
from tests.conftest import MIGRATION_HEAD

pytestmark = pytest.mark.slow

DLSMS = str(Path(sys.executable).with_name("dlsms"))
T10 = datetime(2030, 1, 7, 10, tzinfo=UTC)


@pytest.fixture
def pg_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory whose server is not left running, whatever the test did."""
    data_dir = tmp_path / "pg"
    yield data_dir
    leftover = server_pid(data_dir)
    if leftover is not None and psutil.pid_exists(leftover):
        psutil.Process(leftover).terminate()
        wait_gone(leftover)


def server_pid(data_dir: Path) -> int | None:
    """The postmaster's pid from postmaster.pid, or None when the file is gone."""
    try:
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, IndexError, ValueError):
        return None


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid):
            return True
        time.sleep(0.1)
    return False


def run_sql(url: str, *statements: tuple[Any, ...]) -> list[Any]:
    """Run each (sql, *args) in order on one connection; the last one's rows are returned."""

    async def run() -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            rows: list[Any] = []
            for sql, *args in statements:
                rows = [tuple(row) for row in await conn.fetch(sql, *args)]
            return rows
        finally:
            await conn.close()

    return asyncio.run(run())


def add_seat_and_booking(url: str) -> None:
    run_sql(
        url,
        ("INSERT INTO users (student_id, name, password_hash) VALUES ('S1', 'A', 'x')",),
        ("INSERT INTO users (student_id, name, password_hash) VALUES ('S2', 'B', 'x')",),
        ("INSERT INTO branches (name) VALUES ('Main Library')",),
        ("INSERT INTO seats (branch_id, area, label) VALUES (1, 'Quiet', 'A-01')",),
        (
            "INSERT INTO reservations (user_id, seat_id, start_time, end_time) "
            "VALUES (1, 1, $1, $2)",
            T10,
            T10 + timedelta(hours=1),
        ),
    )


def test_embedded_server_runs_the_migrations_and_enforces_the_constraints(
    pg_dir: Path,
) -> None:
    embedded = EmbeddedPostgres(pg_dir)
    try:
        url = embedded.start()
        assert embedded.start_seconds is not None
        print(f"embedded PostgreSQL cold start: {embedded.start_seconds:.2f} s")
        assert url.startswith("postgresql://")

        upgrade_to_head(url)
        add_seat_and_booking(url)

        assert ("btree_gist",) in run_sql(url, ("SELECT extname FROM pg_extension",))
        with pytest.raises(asyncpg.ExclusionViolationError) as caught:
            run_sql(
                url,
                (
                    "INSERT INTO reservations (user_id, seat_id, start_time, end_time) "
                    "VALUES (2, 1, $1, $2)",
                    T10 + timedelta(minutes=30),
                    T10 + timedelta(hours=2),
                ),
            )
        assert caught.value.constraint_name == "reservations_seat_no_overlap"
    finally:
        embedded.stop()


def test_stop_ends_the_server_and_a_restart_keeps_the_data(
    pg_dir: Path,
) -> None:
    first = EmbeddedPostgres(pg_dir)
    try:
        url = first.start()
        upgrade_to_head(url)
        add_seat_and_booking(url)
        postmaster_pid = server_pid(pg_dir)
    finally:
        first.stop()

    assert postmaster_pid is not None
    assert wait_gone(postmaster_pid), "the postmaster outlived stop()"

    second = EmbeddedPostgres(pg_dir)
    try:
        url = second.start()
        assert second.start_seconds is not None
        print(f"embedded PostgreSQL warm start: {second.start_seconds:.2f} s")
        assert server_pid(pg_dir) != postmaster_pid
        assert run_sql(url, ("SELECT label FROM seats",)) == [("A-01",)]
        assert run_sql(url, ("SELECT count(*) FROM reservations",)) == [(1,)]
    finally:
        second.stop()


def test_a_dead_process_left_in_the_handle_list_does_not_keep_the_server_running(
    pg_dir: Path,
) -> None:
    holder = EmbeddedPostgres(pg_dir)
    holder.start()
    postmaster_pid = server_pid(pg_dir)
    # A process that was killed while using the server never removed itself.
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    assert not psutil.pid_exists(exited.pid)
    handles = pg_dir / ".handle_pids.json"
    handles.write_text(json.dumps([*json.loads(handles.read_text()), exited.pid]))

    again = EmbeddedPostgres(pg_dir)
    again.start()
    again.stop()

    assert postmaster_pid is not None
    assert wait_gone(postmaster_pid), "a stale handle kept the server running"


def test_migrate_without_database_url_uses_embedded_postgres_and_stops_it(
    pg_dir: Path, tmp_path: Path
) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if name.upper() not in {*Settings.model_fields, "TEST_DATABASE_URL"}
    }
    env["EMBEDDED_PG_DIR"] = str(pg_dir)

    result = subprocess.run(
        [DLSMS, "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert (pg_dir / "PG_VERSION").exists()
    assert server_pid(pg_dir) is None
    running_here = [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if str(pg_dir) in " ".join(proc.info["cmdline"] or [])
    ]
    assert running_here == []
    check = EmbeddedPostgres(pg_dir)
    try:
        url = check.start()
        assert run_sql(url, ("SELECT version_num FROM alembic_version",)) == [(MIGRATION_HEAD,)]
    finally:
        check.stop()
