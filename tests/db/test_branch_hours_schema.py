"""Branch hours, closures and policy in SQL: defaults and the constraints that hold them."""

import json
from datetime import date

import asyncpg
import pytest

from app.services import openings


async def add_branch(db: asyncpg.Connection, name: str = "Main Library") -> int:
    branch_id: int = await db.fetchval("INSERT INTO branches (name) VALUES ($1) RETURNING id", name)
    return branch_id


async def close(
    db: asyncpg.Connection, branch_id: int, first: date, last: date, open_json: str | None = None
) -> None:
    await db.execute(
        "INSERT INTO branch_closures (branch_id, date_from, date_to, reason, open) "
        "VALUES ($1, $2, $3, 'Holiday', $4::jsonb)",
        branch_id,
        first,
        last,
        open_json,
    )


async def test_a_new_branch_is_open_around_the_clock_with_the_global_policy(
    db: asyncpg.Connection,
) -> None:
    branch = await add_branch(db)
    row = await db.fetchrow(
        "SELECT hours::text, max_reservation_hours, booking_horizon_days, checkin_early_minutes, "
        "grace_minutes, claim_minutes, max_bookings_per_day, max_hours_per_week "
        "FROM branches WHERE id = $1",
        branch,
    )
    assert row is not None
    assert openings.parse_weekly(json.loads(row["hours"])) == openings.ALWAYS_OPEN
    assert [row[k] for k in list(row.keys())[1:]] == [None] * 7


async def test_hours_must_be_an_object(db: asyncpg.Connection) -> None:
    branch = await add_branch(db)
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await db.execute("UPDATE branches SET hours = '[]' WHERE id = $1", branch)
    assert caught.value.constraint_name == "branches_hours_object"


@pytest.mark.parametrize(
    ("column", "value"),
    [("max_reservation_hours", 0), ("grace_minutes", -1), ("max_bookings_per_day", -1)],
)
async def test_a_policy_value_out_of_range_is_refused(
    db: asyncpg.Connection, column: str, value: int
) -> None:
    branch = await add_branch(db)
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await db.execute(f"UPDATE branches SET {column} = $2 WHERE id = $1", branch, value)
    assert caught.value.constraint_name == "branches_policy_range"


async def test_a_closure_ends_on_or_after_its_first_day(db: asyncpg.Connection) -> None:
    branch = await add_branch(db)
    await close(db, branch, date(2026, 12, 24), date(2026, 12, 24))
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await close(db, branch, date(2026, 12, 31), date(2026, 12, 30))
    assert caught.value.constraint_name == "branch_closures_dates"


async def test_closures_of_one_branch_never_overlap_but_other_branches_may(
    db: asyncpg.Connection,
) -> None:
    main, science = await add_branch(db, "Main"), await add_branch(db, "Science")
    await close(db, main, date(2026, 12, 24), date(2026, 12, 26))
    await close(db, main, date(2026, 12, 27), date(2026, 12, 27))  # the next day: fine
    await close(db, science, date(2026, 12, 25), date(2026, 12, 25))
    with pytest.raises(asyncpg.ExclusionViolationError) as caught:
        await close(db, main, date(2026, 12, 26), date(2026, 12, 26))
    assert caught.value.constraint_name == "branch_closures_no_overlap"


async def test_special_hours_of_a_closure_are_a_list(db: asyncpg.Connection) -> None:
    branch = await add_branch(db)
    await close(
        db,
        branch,
        date(2026, 12, 24),
        date(2026, 12, 24),
        '[{"opens": "08:00", "closes": "12:00"}]',
    )
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await close(db, branch, date(2026, 12, 31), date(2026, 12, 31), '{"opens": "08:00"}')
    assert caught.value.constraint_name == "branch_closures_open_array"
