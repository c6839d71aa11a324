"""Migration 0010: any change to a branch's rules moves its rules_version, however it is
made (the processes' remembered rules depend on it: app/services/rules.py RulesCache)."""

import json

import asyncpg

from tests.factories import add_branch


async def version(db: asyncpg.Connection, branch: int) -> int:
    return int(await db.fetchval("SELECT rules_version FROM branches WHERE id = $1", branch))


async def test_every_rules_column_of_a_branch_moves_the_version(db: asyncpg.Connection) -> None:
    branch = await add_branch(db, "Main")
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
        before = await version(db, branch)
        await db.execute(f"UPDATE branches SET {column} = $2{cast} WHERE id = $1", branch, value)
        assert await version(db, branch) == before + 1, column


async def test_an_update_that_changes_nothing_or_sets_the_version_itself_adds_nothing(
    db: asyncpg.Connection,
) -> None:
    branch = await add_branch(db, "Main")
    await db.execute("UPDATE branches SET name = name WHERE id = $1", branch)
    assert await version(db, branch) == 0
    # The API's own bump (0006) moves it once, not twice.
    await db.execute("UPDATE branches SET rules_version = rules_version + 1 WHERE id = $1", branch)
    assert await version(db, branch) == 1


async def test_closures_inserted_moved_and_deleted_move_the_versions(
    db: asyncpg.Connection,
) -> None:
    main, other = await add_branch(db, "Main"), await add_branch(db, "Other")
    closure = await db.fetchval(
        "INSERT INTO branch_closures (branch_id, date_from, date_to, reason)"
        " VALUES ($1, '2026-12-24', '2026-12-26', 'Holidays') RETURNING id",
        main,
    )
    assert (await version(db, main), await version(db, other)) == (1, 0)
    await db.execute("UPDATE branch_closures SET branch_id = $2 WHERE id = $1", closure, other)
    assert (await version(db, main), await version(db, other)) == (2, 1)
    await db.execute("UPDATE branch_closures SET reason = 'Winter' WHERE id = $1", closure)
    assert (await version(db, main), await version(db, other)) == (2, 2)
    await db.execute("DELETE FROM branch_closures WHERE id = $1", closure)
    assert (await version(db, main), await version(db, other)) == (2, 3)
