"""run_unit: one transaction with its outbox, run again after a deadlock abort, published
only after COMMIT. On the real PostgreSQL: the deadlock here is PostgreSQL's own."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from app.db.pool import Pool, create_pool
from app.errors import InvalidState, ServiceUnavailable
from app.models import NotificationType
from app.realtime.events import Changes
from app.services import unit_of_work
from app.services.unit_of_work import UnitOfWork, run_unit
from app.settings import Settings
from tests.factories import add_user

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


class RecordingPublisher:
    """Stands in for the cache-and-broker publisher: what was published, in order."""

    def __init__(self) -> None:
        self.published: list[Changes] = []

    async def publish(self, changes: Changes) -> None:
        self.published.append(changes)


@pytest.fixture
async def pool(database_url: str, settings: Settings) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url, settings)
    try:
        yield pool
    finally:
        await pool.close()


async def notifications(db: asyncpg.Connection) -> list[int]:
    return [r["user_id"] for r in await db.fetch("SELECT user_id FROM notifications ORDER BY id")]


async def test_a_deadlocked_unit_runs_again_whole_and_each_publishes_once(
    db: asyncpg.Connection, pool: Pool
) -> None:
    first, second = await add_user(db, "S0000001"), await add_user(db, "S0000002")
    both_hold_one = asyncio.Barrier(2)
    attempts: list[str] = []
    publisher = RecordingPublisher()

    def locking(name: str, order: tuple[int, int]) -> unit_of_work.Work[str]:
        async def work(uow: UnitOfWork) -> str:
            attempts.append(name)
            await uow.conn.execute("UPDATE users SET name = $2 WHERE id = $1", order[0], name)
            uow.notify(order[0], NotificationType.RESERVATION_CANCELLED, reason=name)
            uow.changes.branches.add(name)
            if len(attempts) <= 2:  # the first attempts meet; a rerun goes straight on
                await both_hold_one.wait()
            await uow.conn.execute("UPDATE users SET name = $2 WHERE id = $1", order[1], name)
            return name

        return work

    results = await asyncio.gather(
        run_unit(pool, publisher, now=NOW, work=locking("a", (first, second))),
        run_unit(pool, publisher, now=NOW, work=locking("b", (second, first))),
    )

    assert list(results) == ["a", "b"]
    assert len(attempts) == 3  # PostgreSQL aborted one of the two; it ran once more
    # The aborted attempt left nothing: one notification per unit, one publication each.
    assert sorted(await notifications(db)) == sorted([first, second])
    assert sorted(b for c in publisher.published for b in c.branches) == ["a", "b"]
    assert all(len(c.notifications) == 1 for c in publisher.published)


async def test_a_refused_unit_writes_and_publishes_nothing(
    db: asyncpg.Connection, pool: Pool
) -> None:
    student = await add_user(db, "S0000001")
    publisher = RecordingPublisher()

    async def work(uow: UnitOfWork) -> None:
        await uow.conn.execute("UPDATE users SET name = 'changed' WHERE id = $1", student)
        uow.notify(student, NotificationType.RESERVATION_CANCELLED, reason="x")
        uow.changes.branches.add("Main")
        raise InvalidState("refused after writing")

    with pytest.raises(InvalidState):
        await run_unit(pool, publisher, now=NOW, work=work)
    assert await db.fetchval("SELECT name FROM users WHERE id = $1", student) != "changed"
    assert await notifications(db) == []
    assert publisher.published == []


async def test_a_unit_that_keeps_deadlocking_is_a_503_after_its_attempts(pool: Pool) -> None:
    attempts = 0

    async def work(uow: UnitOfWork) -> None:
        nonlocal attempts
        attempts += 1
        raise asyncpg.DeadlockDetectedError("deadlock detected")

    with pytest.raises(ServiceUnavailable):
        await run_unit(pool, RecordingPublisher(), now=NOW, work=work)
    assert attempts == unit_of_work.ATTEMPTS


async def test_a_non_atomic_unit_may_not_write_notifications(
    db: asyncpg.Connection, pool: Pool
) -> None:
    student = await add_user(db, "S0000001")

    async def work(uow: UnitOfWork) -> None:
        uow.notify(student, NotificationType.RESERVATION_CANCELLED, reason="x")

    with pytest.raises(AssertionError, match="atomic=True"):
        await run_unit(pool, RecordingPublisher(), now=NOW, work=work, atomic=False)
    assert await notifications(db) == []
