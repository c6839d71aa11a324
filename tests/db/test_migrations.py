"""The Alembic migrations: up, down, up again, idempotent, and safe to start twice at once."""

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from app.db.migrations import downgrade_to_base, upgrade_to_head
from tests.conftest import MIGRATION_HEAD as HEAD

# The key alembic/env.py takes with pg_advisory_xact_lock before migrating.
MIGRATION_LOCK_ID = 7_318_402_133

TABLES = {
    "users",
    "branches",
    "seats",
    "reservations",
    "idempotency_keys",
    "waitlist_entries",
    "notifications",
    "audit_log",
    "branch_closures",
    "outbox",  # 0007 (issue 15)
    "webhook_endpoints",  # 0008 (issue 15)
}


def _fetch(url: str, sql: str) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(run())


def _tables(url: str) -> set[str]:
    rows = _fetch(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {name for (name,) in rows} - {"alembic_version"}


def _extensions(url: str) -> set[str]:
    return {name for (name,) in _fetch(url, "SELECT extname FROM pg_extension")}


def _versions(url: str) -> list[str]:
    return [version for (version,) in _fetch(url, "SELECT version_num FROM alembic_version")]


def test_upgrade_to_head_creates_every_table_and_btree_gist(
    fresh_database: Callable[[str], str],
) -> None:
    url = fresh_database("mig")
    assert _tables(url) == set()

    upgrade_to_head(url)

    assert _tables(url) == TABLES
    assert "btree_gist" in _extensions(url)
    assert _versions(url) == [HEAD]


def test_downgrade_to_base_removes_every_table_and_upgrade_works_again(
    fresh_database: Callable[[str], str],
) -> None:
    url = fresh_database("mig_down")
    upgrade_to_head(url)

    downgrade_to_base(url)
    assert _tables(url) == set()
    assert _versions(url) == []

    upgrade_to_head(url)
    assert _tables(url) == TABLES
    assert _versions(url) == [HEAD]


def test_upgrade_twice_is_a_no_op(fresh_database: Callable[[str], str]) -> None:
    url = fresh_database("mig_twice")
    upgrade_to_head(url)
    _fetch(url, "INSERT INTO branches (name) VALUES ('Kept') RETURNING id")

    upgrade_to_head(url)

    assert _tables(url) == TABLES
    assert _versions(url) == [HEAD]
    assert _fetch(url, "SELECT name FROM branches") == [("Kept",)]


def test_two_upgrades_started_at_once_both_succeed_and_leave_one_version(
    fresh_database: Callable[[str], str],
) -> None:
    url = fresh_database("mig_race")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def migrate() -> None:
        barrier.wait()
        try:
            upgrade_to_head(url)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    assert _tables(url) == TABLES
    assert _versions(url) == [HEAD]


async def _wait_for_lock_waiters(conn: asyncpg.Connection, count: int) -> None:
    sql = """
        SELECT count(*) FROM pg_locks
        WHERE locktype = 'advisory' AND NOT granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    """
    deadline = time.monotonic() + 30
    while await conn.fetchval(sql) < count:
        assert time.monotonic() < deadline, f"{count} migrations never queued on the lock"
        await asyncio.sleep(0.05)


@pytest.mark.slow
def test_two_instances_migrating_at_once_queue_on_the_advisory_lock(
    fresh_database: Callable[[str], str],
) -> None:
    url = fresh_database("mig_procs")
    script = (
        "import sys; from app.db.migrations import upgrade_to_head; upgrade_to_head(sys.argv[1])"
    )

    async def run() -> list[int]:
        # Hold the migration lock so both instances are surely inside env.py, waiting,
        # before either can start: then release it and let them race.
        holder = await asyncpg.connect(url)
        procs: list[asyncio.subprocess.Process] = []
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
            for _ in range(2):
                procs.append(
                    await asyncio.create_subprocess_exec(sys.executable, "-c", script, url)
                )
            await _wait_for_lock_waiters(holder, 2)
            await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
            async with asyncio.timeout(60):
                return [await proc.wait() for proc in procs]
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            await holder.close()

    assert asyncio.run(run()) == [0, 0]
    assert _tables(url) == TABLES
    assert _versions(url) == [HEAD]
