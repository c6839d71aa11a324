"""The booking invariants are PostgreSQL constraints: tested in SQL, alone and under contention."""

import asyncio
import random
import re
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from app.db import statuses
from app.errors import AlreadyExists, SeatConflict, UserOverlap, error_for_constraint
from app.models import ACTIVE_RESERVATION_STATUSES

T10 = datetime(2030, 1, 7, 10, tzinfo=UTC)
T11 = T10 + timedelta(hours=1)
T12 = T10 + timedelta(hours=2)
HOUR = timedelta(hours=1)


async def add_user(db: asyncpg.Connection, student_id: str = "S1") -> int:
    user_id: int = await db.fetchval(
        "INSERT INTO users (student_id, name, password_hash) VALUES ($1, 'Student', 'x') "
        "RETURNING id",
        student_id,
    )
    return user_id


async def add_branch(db: asyncpg.Connection, name: str = "Main Library") -> int:
    branch_id: int = await db.fetchval("INSERT INTO branches (name) VALUES ($1) RETURNING id", name)
    return branch_id


async def add_seat(db: asyncpg.Connection, branch_id: int, label: str = "A-01") -> int:
    seat_id: int = await db.fetchval(
        "INSERT INTO seats (branch_id, area, label) VALUES ($1, 'Quiet', $2) RETURNING id",
        branch_id,
        label,
    )
    return seat_id


async def book(
    db: asyncpg.Connection,
    user_id: int,
    seat_id: int,
    start: datetime = T10,
    end: datetime = T11,
    status: str = "CONFIRMED",
    offer_expires_at: datetime | None = None,
) -> int:
    if status == "HELD" and offer_expires_at is None:
        offer_expires_at = start
    reservation_id: int = await db.fetchval(
        "INSERT INTO reservations (user_id, seat_id, start_time, end_time, status, "
        "offer_expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        user_id,
        seat_id,
        start,
        end,
        status,
        offer_expires_at,
    )
    return reservation_id


async def wait_for(
    db: asyncpg.Connection,
    user_id: int,
    branch_id: int,
    seat_id: int | None,
    start: datetime = T10,
    end: datetime = T11,
) -> int:
    entry_id: int = await db.fetchval(
        "INSERT INTO waitlist_entries (user_id, branch_id, seat_id, start_time, end_time) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id",
        user_id,
        branch_id,
        seat_id,
        start,
        end,
    )
    return entry_id


async def two_users_one_seat(db: asyncpg.Connection) -> tuple[int, int, int]:
    seat = await add_seat(db, await add_branch(db))
    return await add_user(db, "S1"), await add_user(db, "S2"), seat


async def one_user_two_seats(db: asyncpg.Connection) -> tuple[int, int, int]:
    branch = await add_branch(db)
    return (
        await add_user(db),
        await add_seat(db, branch, "A-01"),
        await add_seat(db, branch, "A-02"),
    )


async def active_count(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM reservations WHERE status IN ('HELD', 'CONFIRMED', 'CHECKED_IN')"
    )
    return count


# --- reservations: one active reservation per seat and per user at any instant --------------


async def test_overlapping_reservations_for_one_seat_are_rejected(db: asyncpg.Connection) -> None:
    alice, bob, seat = await two_users_one_seat(db)
    await book(db, alice, seat, T10, T11)

    with pytest.raises(asyncpg.ExclusionViolationError) as caught:
        await book(db, bob, seat, T10 + timedelta(minutes=30), T12)

    assert caught.value.constraint_name == "reservations_seat_no_overlap"
    assert isinstance(error_for_constraint(caught.value), SeatConflict)


async def test_one_user_cannot_hold_two_seats_at_once(db: asyncpg.Connection) -> None:
    user, seat_a, seat_b = await one_user_two_seats(db)
    await book(db, user, seat_a, T10, T12)

    with pytest.raises(asyncpg.ExclusionViolationError) as caught:
        await book(db, user, seat_b, T11, T11 + HOUR)

    assert caught.value.constraint_name == "reservations_user_no_overlap"
    assert isinstance(error_for_constraint(caught.value), UserOverlap)


async def test_back_to_back_reservations_share_no_instant(db: asyncpg.Connection) -> None:
    alice, bob, seat = await two_users_one_seat(db)
    await book(db, alice, seat, T10, T11)
    await book(db, bob, seat, T11, T12)  # same seat, half-open [10,11) and [11,12)
    other_seat = await add_seat(db, await add_branch(db, "Science Library"), "S-01")
    await book(db, alice, other_seat, T11, T12)  # same user, next hour, another seat

    assert await active_count(db) == 3


@pytest.mark.parametrize("status", ["CANCELLED", "NO_SHOW", "COMPLETED"])
async def test_finished_reservation_does_not_block_the_seat_or_the_user(
    db: asyncpg.Connection, status: str
) -> None:
    alice, bob, seat = await two_users_one_seat(db)
    await book(db, alice, seat, status=status)

    await book(db, bob, seat)  # the seat is free again
    other_seat = await add_seat(db, await add_branch(db, "Science Library"), "S-01")
    await book(db, alice, other_seat)  # and so is alice

    assert await active_count(db) == 2


@pytest.mark.parametrize("status", ["HELD", "CONFIRMED", "CHECKED_IN"])
async def test_active_reservation_blocks_the_seat(db: asyncpg.Connection, status: str) -> None:
    alice, bob, seat = await two_users_one_seat(db)
    await book(db, alice, seat, status=status)

    with pytest.raises(asyncpg.ExclusionViolationError) as caught:
        await book(db, bob, seat)

    assert caught.value.constraint_name == "reservations_seat_no_overlap"


@pytest.mark.parametrize("status", ["HELD", "CHECKED_IN"])
async def test_held_or_checked_in_reservation_blocks_the_user(
    db: asyncpg.Connection, status: str
) -> None:
    user, seat_a, seat_b = await one_user_two_seats(db)
    await book(db, user, seat_a, status=status)

    with pytest.raises(asyncpg.ExclusionViolationError) as caught:
        await book(db, user, seat_b)

    assert caught.value.constraint_name == "reservations_user_no_overlap"


@pytest.mark.parametrize("end", [T10, T10 - HOUR], ids=["empty", "reversed"])
async def test_reservation_must_end_after_it_starts(db: asyncpg.Connection, end: datetime) -> None:
    alice, _, seat = await two_users_one_seat(db)

    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await book(db, alice, seat, T10, end)

    assert caught.value.constraint_name == "reservations_time_order"


async def test_unknown_reservation_status_is_rejected(db: asyncpg.Connection) -> None:
    alice, _, seat = await two_users_one_seat(db)

    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await book(db, alice, seat, status="PENDING")

    assert caught.value.constraint_name == "reservations_status_check"


async def test_held_reservation_needs_an_offer_deadline(db: asyncpg.Connection) -> None:
    alice, _, seat = await two_users_one_seat(db)

    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await db.execute(
            "INSERT INTO reservations (user_id, seat_id, start_time, end_time, status) "
            "VALUES ($1, $2, $3, $4, 'HELD')",
            alice,
            seat,
            T10,
            T11,
        )

    assert caught.value.constraint_name == "reservations_held_has_deadline"


# --- uniqueness ------------------------------------------------------------------------------


async def test_student_id_is_unique(db: asyncpg.Connection) -> None:
    await add_user(db, "S2021001")

    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        await add_user(db, "S2021001")

    assert caught.value.constraint_name == "users_student_id_key"
    assert isinstance(error_for_constraint(caught.value), AlreadyExists)


async def test_branch_name_is_unique(db: asyncpg.Connection) -> None:
    await add_branch(db, "Main Library")

    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        await add_branch(db, "Main Library")

    assert caught.value.constraint_name == "branches_name_key"
    assert isinstance(error_for_constraint(caught.value), AlreadyExists)


async def test_seat_label_is_unique_within_a_branch_only(db: asyncpg.Connection) -> None:
    main, science = await add_branch(db, "Main Library"), await add_branch(db, "Science Library")
    await add_seat(db, main, "A-01")
    await add_seat(db, science, "A-01")

    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        await add_seat(db, main, "A-01")

    assert caught.value.constraint_name == "seats_branch_label_key"
    assert isinstance(error_for_constraint(caught.value), AlreadyExists)


async def test_unnamed_constraint_is_not_turned_into_a_domain_error(
    db: asyncpg.Connection,
) -> None:
    alice, _, seat = await two_users_one_seat(db)

    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await book(db, alice, seat, T10, T10)

    with pytest.raises(asyncpg.CheckViolationError):
        error_for_constraint(caught.value)


# --- waitlist --------------------------------------------------------------------------------


async def test_same_user_cannot_wait_twice_for_one_seat_and_moment(
    db: asyncpg.Connection,
) -> None:
    alice, _, seat = await two_users_one_seat(db)
    branch: int = await db.fetchval("SELECT branch_id FROM seats WHERE id = $1", seat)
    await wait_for(db, alice, branch, seat, T10, T11)

    with pytest.raises(asyncpg.ExclusionViolationError) as caught:
        await wait_for(db, alice, branch, seat, T10 + timedelta(minutes=30), T12)

    assert caught.value.constraint_name == "waitlist_no_duplicate"
    assert isinstance(error_for_constraint(caught.value), AlreadyExists)


async def test_branch_level_and_seat_level_waits_may_coexist(db: asyncpg.Connection) -> None:
    alice, bob, seat = await two_users_one_seat(db)
    branch: int = await db.fetchval("SELECT branch_id FROM seats WHERE id = $1", seat)
    await wait_for(db, alice, branch, seat)
    await wait_for(db, alice, branch, None)  # any seat of the branch, same interval
    await wait_for(db, bob, branch, seat)  # another user, same seat

    with pytest.raises(asyncpg.ExclusionViolationError) as caught:
        await wait_for(db, alice, branch, None)  # but only one branch-level entry

    assert caught.value.constraint_name == "waitlist_no_duplicate"
    assert await db.fetchval("SELECT count(*) FROM waitlist_entries") == 3


async def test_closed_waitlist_entry_does_not_block_a_new_one(db: asyncpg.Connection) -> None:
    alice, _, seat = await two_users_one_seat(db)
    branch: int = await db.fetchval("SELECT branch_id FROM seats WHERE id = $1", seat)
    first = await wait_for(db, alice, branch, seat)
    await db.execute("UPDATE waitlist_entries SET status = 'CANCELLED' WHERE id = $1", first)

    await wait_for(db, alice, branch, seat)

    assert await db.fetchval("SELECT count(*) FROM waitlist_entries") == 2


# --- real concurrency: separate connections, committed inserts, started together ------------


async def race_to_book(
    database_url: str, attempts: list[tuple[int, int]]
) -> list[int | BaseException]:
    """Each (user, seat) books an interval overlapping 10:30-11:00 on its own connection;
    all connect first, then are released at once."""
    # Deadlocks are found only after deadlock_timeout (1 s by default), and each new wait
    # restarts that timer: on a slow machine twenty inserters that all keep colliding took
    # minutes. A short timeout keeps the storm short; it changes nothing about who wins.
    conns = await asyncio.gather(
        *(
            asyncpg.connect(database_url, server_settings={"deadlock_timeout": "20ms"})
            for _ in attempts
        )
    )
    start_together = asyncio.Barrier(len(attempts))

    async def attempt(conn: asyncpg.Connection, index: int, user_id: int, seat_id: int) -> int:
        await start_together.wait()
        start = T10 + timedelta(minutes=index % 30)
        # Two inserts that conflict can each find the other's index entry and wait on it;
        # PostgreSQL then aborts one with "deadlock detected" (40P01) rather than an
        # exclusion violation. Whoever inserts reservations must retry on it, as here: the
        # retry then meets the committed winner and gets the exclusion violation. The
        # random pause keeps the losers from colliding again in lockstep; it doubles with
        # each deadlock (up to 0.5 s), because with fifty inserters a fixed short pause
        # can keep them all colliding until none commits (seen in CI).
        for tries in range(50):
            try:
                return await book(conn, user_id, seat_id, start, T11)
            except asyncpg.DeadlockDetectedError:
                pause = min(0.5, 0.01 * 2**tries)
                await asyncio.sleep(random.uniform(0, pause))  # noqa: S311 (jitter)
        raise AssertionError("still deadlocking after 50 attempts")

    try:
        tasks = [
            asyncio.create_task(attempt(conn, index, user, seat))
            for index, (conn, (user, seat)) in enumerate(zip(conns, attempts, strict=True))
        ]
        return await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await asyncio.gather(*(conn.close() for conn in conns))


def split_outcomes(
    results: list[int | BaseException],
) -> tuple[list[int], list[asyncpg.ExclusionViolationError]]:
    """Booked reservation ids and exclusion violations; any other failure fails the test."""
    others = [
        r
        for r in results
        if isinstance(r, BaseException) and not isinstance(r, asyncpg.ExclusionViolationError)
    ]
    assert others == []
    booked = [r for r in results if isinstance(r, int)]
    rejected = [r for r in results if isinstance(r, asyncpg.ExclusionViolationError)]
    return booked, rejected


async def test_fifty_users_racing_for_one_seat_leave_exactly_one_booking(
    db: asyncpg.Connection, database_url: str
) -> None:
    seat = await add_seat(db, await add_branch(db))
    users = [await add_user(db, f"S{n:03d}") for n in range(50)]

    results = await race_to_book(database_url, [(user, seat) for user in users])

    booked, rejected = split_outcomes(results)
    assert len(booked) == 1
    assert len(rejected) == 49
    assert {r.constraint_name for r in rejected} == {"reservations_seat_no_overlap"}
    assert await active_count(db) == 1
    assert await db.fetchval("SELECT id FROM reservations") == booked[0]


async def test_one_user_racing_for_twenty_seats_gets_exactly_one(
    db: asyncpg.Connection, database_url: str
) -> None:
    branch = await add_branch(db)
    user = await add_user(db)
    seats = [await add_seat(db, branch, f"A-{n:02d}") for n in range(20)]

    results = await race_to_book(database_url, [(user, seat) for seat in seats])

    booked, rejected = split_outcomes(results)
    assert len(booked) == 1
    assert len(rejected) == 19
    assert {r.constraint_name for r in rejected} == {"reservations_user_no_overlap"}
    assert await active_count(db) == 1


def statuses_named_in(sql: str) -> set[str]:
    """The status literals a predicate names: 'HELD'::text in a definition, 'HELD' in ours."""
    return set(re.findall(r"'([A-Z_]+)'", sql))


@pytest.mark.parametrize(
    "constraint", ["reservations_seat_no_overlap", "reservations_user_no_overlap"]
)
async def test_the_active_status_predicate_is_the_exclusion_constraints_own(
    db: asyncpg.Connection, constraint: str
) -> None:
    # Queries that decide "is this seat taken" must count exactly the reservations the
    # constraints guard, or a listing and a booking would disagree about a seat.
    definition: str = await db.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1", constraint
    )
    assert definition.startswith("EXCLUDE USING gist")
    active = {s.value for s in ACTIVE_RESERVATION_STATUSES}
    assert statuses_named_in(definition) == active
    assert statuses_named_in(statuses.ACTIVE) == active


async def test_partial_indexes_on_active_reservations_use_the_same_predicate(
    db: asyncpg.Connection,
) -> None:
    # A partial index is only used when the query's predicate implies the index's.
    rows = await db.fetch(
        "SELECT indexname, indexdef FROM pg_indexes "
        "WHERE tablename = 'reservations' AND indexdef LIKE '%CHECKED_IN%'"
    )
    active_indexes = [
        row for row in rows if "CONFIRMED" in row["indexdef"] and "HELD" in row["indexdef"]
    ]
    assert active_indexes, "expected partial indexes over the active statuses"
    for row in active_indexes:
        assert statuses_named_in(row["indexdef"]) == statuses_named_in(statuses.ACTIVE), row[
            "indexname"
        ]
