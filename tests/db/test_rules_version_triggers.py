"""Migration 0010: any change to a branch's rules gives it a rules_version never seen
before, however it is made (the processes' remembered rules depend on it:
app/services/rules.py RulesCache)."""

import json

import asyncpg

from tests.factories import add_branch


async def version(db: asyncpg.Connection, branch: int) -> int:
    return int(await db.fetchval("SELECT rules_version FROM branches WHERE id = $1", branch))


async def test_every_rules_column_of_a_branch_moves_the_version(db: asyncpg.Connection) -> None:
    branch = await add_branch(db, "Main")
    seen = {await version(db, branch)}
    changes = [
        ("hours", json.dumps({"monday": [{"opens": "08:00", "closes": "12:00"}]}), "::jsonb"),
        ("timezone", "Europe/Berlin", ""),
        ("name", "Main Library", ""),
        ("max_reservation_hours", 2.0, ""),
        ("booking_horizon_days", 3.0, ""),
        ("max_bookings_per_day", 1, ""),
        ("max_hours_per_week", 5.0, ""),
        ("claim_minutes", 7.0, ""),
    ]
    for column, value, cast in changes:
        await db.execute(f"UPDATE branches SET {column} = $2{cast} WHERE id = $1", branch, value)
        now = await version(db, branch)
        assert now not in seen, column
        seen.add(now)


async def test_an_update_that_changes_nothing_or_sets_the_version_itself_draws_none(
    db: asyncpg.Connection,
) -> None:
    branch = await add_branch(db, "Main")
    before = await version(db, branch)
    await db.execute("UPDATE branches SET name = name WHERE id = $1", branch)
    assert await version(db, branch) == before
    # The API's own new version (0006) is kept as it set it.
    await db.execute("UPDATE branches SET rules_version = 42 WHERE id = $1", branch)
    assert await version(db, branch) == 42


async def test_versions_never_come_back_when_the_tables_are_emptied_and_refilled(
    db: asyncpg.Connection,
) -> None:
    # The same ids, other rules (a test reset, a restore): a counter would start at 0
    # again, and a process would take the new branch's rules for the old one's.
    first = await add_branch(db, "Main")
    old = await version(db, first)
    await db.execute("TRUNCATE branches RESTART IDENTITY CASCADE")
    again = await add_branch(db, "Main")
    assert again == first
    assert await version(db, again) != old
    others = {await version(db, await add_branch(db, f"B{n}")) for n in range(20)}
    assert len(others) == 20


async def test_closures_inserted_moved_and_deleted_move_the_versions(
    db: asyncpg.Connection,
) -> None:
    main, other = await add_branch(db, "Main"), await add_branch(db, "Other")

    async def versions() -> tuple[int, int]:
        return await version(db, main), await version(db, other)

    start = await versions()
    closure = await db.fetchval(
        "INSERT INTO branch_closures (branch_id, date_from, date_to, reason)"
        " VALUES ($1, '2026-12-24', '2026-12-26', 'Holidays') RETURNING id",
        main,
    )
    inserted = await versions()
    assert inserted[0] != start[0] and inserted[1] == start[1]
    await db.execute("UPDATE branch_closures SET branch_id = $2 WHERE id = $1", closure, other)
    moved = await versions()
    assert moved[0] != inserted[0] and moved[1] != inserted[1]
    await db.execute("UPDATE branch_closures SET reason = 'Winter' WHERE id = $1", closure)
    renamed = await versions()
    assert renamed[0] == moved[0] and renamed[1] != moved[1]
    await db.execute("DELETE FROM branch_closures WHERE id = $1", closure)
    deleted = await versions()
    assert deleted[0] == renamed[0] and deleted[1] != renamed[1]
