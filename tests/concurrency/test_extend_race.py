"""Extensions racing bookings of the time they add, on committed data and the real clock:
the exclusion constraints decide who gets the time, and the advisory locks the booking's
insert and the extension both take (seat, then user) keep them from deadlocking."""

import asyncio
import logging
import time
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.db.reservations import SEAT_LOCK, USER_LOCK
from app.timeutil import iso_z
from tests.concurrency.test_booking_races import ACTIVE, POOL, outcome, tomorrow_at
from tests.conftest import ClientFactory
from tests.factories import (
    Student,
    add_branch,
    add_reservation,
    add_seat,
    add_students,
    booking,
    eventually,
)

HOUR = timedelta(hours=1)
PAIRS = 20

# Any two active reservations of one seat, or of one user, whose intervals overlap.
_OVERLAPS = f"""
    SELECT a.id, b.id FROM reservations a JOIN reservations b
      ON a.id < b.id AND ({{same}})
     AND tstzrange(a.start_time, a.end_time, '[)') && tstzrange(b.start_time, b.end_time, '[)')
    WHERE a.status IN {ACTIVE} AND b.status IN {ACTIVE}
"""


async def extend(
    api: httpx.AsyncClient, student: Student, reservation_id: int, end: datetime
) -> httpx.Response:
    return await api.post(
        f"/reservations/{reservation_id}/extend",
        json={"end_time": iso_z(end)},
        headers=student.headers,
    )


def deadlock_retries(caplog: pytest.LogCaptureFixture) -> int:
    """Units of work run again after PostgreSQL aborted one to break a deadlock."""
    return sum(
        1
        for r in caplog.records
        if r.name == "app.services.unit_of_work" and r.getMessage().startswith("deadlock")
    )


async def test_extensions_and_bookings_of_the_freed_time_leave_one_winner_per_seat(
    make_client: ClientFactory, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.services.unit_of_work")
    api = await make_client(**POOL)
    branch = await add_branch(db)
    seats = [await add_seat(db, branch, f"X{n}") for n in range(PAIRS)]
    owners = await add_students(db, "OWN", PAIRS)
    bookers = await add_students(db, "BKR", PAIRS)
    start, end, later = tomorrow_at(10), tomorrow_at(11), tomorrow_at(12)
    held = [
        await add_reservation(db, user_id=owner.id, seat_id=seat, start=start, end=end)
        for owner, seat in zip(owners, seats, strict=True)
    ]

    # Each seat's extension and the booking of exactly the time it adds, side by side,
    # all 40 in flight at once. Half the bookings carry an Idempotency-Key: a transaction
    # with as many round trips before its write as the extension's, so that on those
    # seats the extension is as likely to write first (a plain booking, one statement,
    # mostly beats it).
    calls: list[Coroutine[Any, Any, httpx.Response]] = []
    for n, (owner, booker, seat, reservation_id) in enumerate(
        zip(owners, bookers, seats, held, strict=True)
    ):
        calls.append(extend(api, owner, reservation_id, later))
        key = {"Idempotency-Key": f"book-{seat}"} if n % 2 else {}
        calls.append(
            api.post(
                "/reservations",
                json=booking(seat, end, later),
                headers={**booker.headers, **key},
            )
        )
    began = time.monotonic()
    responses = await asyncio.gather(*calls)
    elapsed = time.monotonic() - began

    outcomes = [outcome(r) for r in responses]
    expected = {(200, None), (201, None), (409, "seat_conflict")}
    assert set(outcomes) <= expected, [r.text for r in responses if outcome(r) not in expected]
    for n in range(PAIRS):
        extended, booked = outcomes[2 * n], outcomes[2 * n + 1]
        # Exactly one of the two got [11:00, 12:00) of this seat; the other was told why.
        assert sorted([extended, booked]) in (
            [(200, None), (409, "seat_conflict")],
            [(201, None), (409, "seat_conflict")],
        ), (n, extended, booked)
    assert outcomes.count((200, None)) + outcomes.count((201, None)) == PAIRS

    assert await db.fetch(_OVERLAPS.format(same="a.seat_id = b.seat_id")) == []
    assert await db.fetch(_OVERLAPS.format(same="a.user_id = b.user_id")) == []
    # What the answers say is what was committed.
    rows = await db.fetch(
        f"SELECT seat_id, user_id, start_time, end_time FROM reservations "
        f"WHERE status IN {ACTIVE} AND end_time > $1",
        end,
    )
    winners = {row["seat_id"]: row["user_id"] for row in rows}
    for n, (owner, booker, seat) in enumerate(zip(owners, bookers, seats, strict=True)):
        assert winners[seat] == (owner.id if outcomes[2 * n] == (200, None) else booker.id)
    assert len(rows) == PAIRS
    # The locks queue them: no deadlock to break, so no unit of work ran twice.
    assert deadlock_retries(caplog) == 0
    assert elapsed < 10, f"{elapsed:.1f} s for {2 * PAIRS} requests"


async def test_extensions_and_their_owners_booking_another_seat_then_leave_one_winner_each(
    make_client: ClientFactory, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # The user's side: each owner extends into the hour in which they also book another
    # seat; the user constraint decides, behind the user lock.
    caplog.set_level(logging.INFO, logger="app.services.unit_of_work")
    api = await make_client(**POOL)
    branch = await add_branch(db)
    seats = [await add_seat(db, branch, f"X{n}") for n in range(PAIRS)]
    others = [await add_seat(db, branch, f"Y{n}") for n in range(PAIRS)]
    owners = await add_students(db, "OWN", PAIRS)
    start, end, later = tomorrow_at(10), tomorrow_at(11), tomorrow_at(12)
    held = [
        await add_reservation(db, user_id=owner.id, seat_id=seat, start=start, end=end)
        for owner, seat in zip(owners, seats, strict=True)
    ]

    calls: list[Coroutine[Any, Any, httpx.Response]] = []
    for owner, other, reservation_id in zip(owners, others, held, strict=True):
        calls.append(extend(api, owner, reservation_id, later))
        calls.append(
            api.post("/reservations", json=booking(other, end, later), headers=owner.headers)
        )
    responses = await asyncio.gather(*calls)

    outcomes = [outcome(r) for r in responses]
    for n in range(PAIRS):
        assert sorted([outcomes[2 * n], outcomes[2 * n + 1]]) in (
            [(200, None), (409, "user_overlap")],
            [(201, None), (409, "user_overlap")],
        ), (n, outcomes[2 * n], outcomes[2 * n + 1], responses[2 * n].text)
    assert await db.fetch(_OVERLAPS.format(same="a.user_id = b.user_id")) == []
    assert await db.fetch(_OVERLAPS.format(same="a.seat_id = b.seat_id")) == []
    assert deadlock_retries(caplog) == 0


async def test_an_extension_takes_the_seat_then_the_user_booking_lock_before_it_writes(
    make_client: ClientFactory, db: asyncpg.Connection, database_url: str
) -> None:
    # Deterministic where the race above is not: another transaction holds the owner's
    # booking lock; the extension must be seen holding the seat's lock and waiting for the
    # owner's (the insert's order), and must write nothing until that lock is free.
    api = await make_client(**POOL)
    seat = await add_seat(db, await add_branch(db), "X1")
    [owner] = await add_students(db, "OWN", 1)
    reservation_id = await add_reservation(
        db, user_id=owner.id, seat_id=seat, start=tomorrow_at(10), end=tomorrow_at(11)
    )
    other = await asyncpg.connect(database_url)
    try:
        holding = other.transaction()
        await holding.start()
        await other.execute("SELECT pg_advisory_xact_lock($1, $2)", USER_LOCK, owner.id)
        pending = asyncio.create_task(extend(api, owner, reservation_id, tomorrow_at(12)))

        async def locks() -> set[tuple[int, int, bool]]:
            rows = await db.fetch(_EXTENSION_LOCKS, other.get_server_pid())
            return {(row["classid"], row["objid"], row["granted"]) for row in rows}

        seen = await eventually(
            locks,
            lambda found: (USER_LOCK, owner.id, False) in found,
            within=5,
            interval=0.02,
            what="the extension waiting for the owner's booking lock",
        )
        assert seen == {(SEAT_LOCK, seat, True), (USER_LOCK, owner.id, False)}
        assert not pending.done()
        assert await db.fetchval(
            "SELECT end_time FROM reservations WHERE id = $1", reservation_id
        ) == tomorrow_at(11)
        await holding.rollback()
        response = await asyncio.wait_for(pending, 5)
    finally:
        await other.close()
    assert response.status_code == 200, response.text
    assert response.json()["end_time"] == iso_z(tomorrow_at(12))


# The advisory locks (two-int form) held or awaited by backends other than ``$1``.
_EXTENSION_LOCKS = """
    SELECT classid::int, objid::int, granted FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 2 AND pid <> $1 AND pid <> pg_backend_pid()
"""


async def test_one_students_simultaneous_extensions_never_exceed_the_weekly_hours_quota(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    # Ten one-hour reservations on one day, a quota of 15 hours a week: of ten
    # simultaneous extensions by an hour each, exactly five fit. Each counts the others
    # under the student's booking lock, so none can count before another has written.
    api = await make_client(**POOL)
    branch = await add_branch(db)
    await db.execute("UPDATE branches SET max_hours_per_week = 15 WHERE id = $1", branch)
    seats = [await add_seat(db, branch, f"Q{n}") for n in range(10)]
    [student] = await add_students(db, "QUOTA", 1)
    held = [
        await add_reservation(
            db,
            user_id=student.id,
            seat_id=seat,
            start=tomorrow_at(2 * n),
            end=tomorrow_at(2 * n + 1),
        )
        for n, seat in enumerate(seats)
    ]

    responses = await asyncio.gather(
        *(
            extend(api, student, reservation_id, tomorrow_at(2 * n + 2))
            for n, reservation_id in enumerate(held)
        )
    )

    outcomes = sorted(outcome(r) for r in responses)
    expected = [(200, None)] * 5 + [(409, "quota_exceeded")] * 5
    assert outcomes == expected, [r.text for r in responses]
    booked_hours = await db.fetchval(
        "SELECT sum(extract(epoch FROM end_time - start_time)) / 3600 FROM reservations "
        "WHERE user_id = $1",
        student.id,
    )
    assert booked_hours == 15
