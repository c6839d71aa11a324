"""The pool lends connections in the order they were asked for (app/db/pool.py FairPool):
a connection released while requests wait goes to the longest waiter, never to a
newcomer that happened to ask at the right moment."""

import asyncio

from app.db.pool import connection, create_pool
from tests.conftest import make_settings


async def test_a_released_connection_goes_to_the_longest_waiter(database_url: str) -> None:
    settings = make_settings(database_url, DB_POOL_MIN_SIZE=1, DB_POOL_MAX_SIZE=1)
    pool = await create_pool(database_url, settings)
    served: list[str] = []
    let_go = asyncio.Event()

    async def hold() -> None:
        async with connection(pool):
            await let_go.wait()

    async def take(name: str) -> None:
        async with connection(pool) as conn:
            served.append(name)
            await conn.fetchval("SELECT 1")

    try:
        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.05)
        waiting = [asyncio.create_task(take(f"waiter {i}")) for i in range(5)]
        await asyncio.sleep(0.05)  # all five are queued, in this order
        let_go.set()
        newcomers = []
        for i in range(5):  # while the queue drains, others keep arriving
            newcomers.append(asyncio.create_task(take(f"newcomer {i}")))
            await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(holder, *waiting, *newcomers), 10)
    finally:
        await pool.close()

    assert served[:5] == [f"waiter {i}" for i in range(5)], served
