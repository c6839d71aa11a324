"""Background sweeps (api.md, "Background sweeps"): the sweep functions called directly
with a chosen ``now`` on a real pool; deadlines to the second, the notifications and
waitlist offers each change causes, and exactly-once under concurrent sweepers."""

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from app.cache import SeatCache
from app.db.pool import Pool
from app.jobs import scheduler, sweeps
from app.realtime.broker import Broker
from app.realtime.publisher import Publisher
from app.settings import Settings
from tests.conftest import PoolFactory, make_settings
from tests.factories import (
    CLAIM,
    GRACE,
    HOUR,
    MINUTE,
    RULES,
    SECOND,
    FrozenClock,
    add_branch,
    add_reservation,
    add_seat,
    add_user,
    at,
    eventually,
    iso,
    reservation_row,
)

NOW = at(10)
EXPIRED_REASON = "waitlist offer expired"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, **RULES)


@pytest.fixture
async def pool(make_pool: PoolFactory, settings: Settings) -> Pool:
    return await make_pool(settings)


@pytest.fixture
async def second_pool(make_pool: PoolFactory, settings: Settings) -> Pool:
    """Another instance's pool: its sweeps run on their own connections."""
    return await make_pool(settings)


@pytest.fixture
def broker() -> Broker:
    return Broker(None, None)


@pytest.fixture
def publisher(broker: Broker) -> Publisher:
    return Publisher(SeatCache(None, 10), broker)


@dataclass(frozen=True)
class Seat:
    branch_id: int
    seat_id: int


@pytest.fixture
async def seat(db: asyncpg.Connection) -> Seat:
    branch_id = await add_branch(db, "Main")
    return Seat(branch_id, await add_seat(db, branch_id, "A1"))


async def add_entry(
    db: asyncpg.Connection,
    *,
    user_id: int,
    branch_id: int,
    seat_id: int | None,
    start: datetime,
    end: datetime,
    status: str = "WAITING",
    reservation_id: int | None = None,
    offer_expires_at: datetime | None = None,
    created_at: datetime | None = None,
) -> int:
    created = created_at or NOW - HOUR
    entry_id: int = await db.fetchval(
        "INSERT INTO waitlist_entries (user_id, branch_id, seat_id, start_time, end_time, "
        "status, reservation_id, offer_expires_at, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
        user_id,
        branch_id,
        seat_id,
        start,
        end,
        status,
        reservation_id,
        offer_expires_at,
        created,
    )
    return entry_id


async def add_offer(
    db: asyncpg.Connection,
    place: Seat,
    *,
    user_id: int,
    start: datetime,
    end: datetime,
    expires_at: datetime,
) -> tuple[int, int]:
    """An OFFERED entry and its HELD reservation: (entry id, reservation id)."""
    reservation_id = await add_reservation(
        db,
        user_id=user_id,
        seat_id=place.seat_id,
        start=start,
        end=end,
        status="HELD",
        offer_expires_at=expires_at,
        created_at=expires_at - CLAIM,
    )
    entry_id = await add_entry(
        db,
        user_id=user_id,
        branch_id=place.branch_id,
        seat_id=place.seat_id,
        start=start,
        end=end,
        status="OFFERED",
        reservation_id=reservation_id,
        offer_expires_at=expires_at,
    )
    return entry_id, reservation_id


async def entry(db: asyncpg.Connection, entry_id: int) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM waitlist_entries WHERE id = $1", entry_id)
    assert row is not None
    return row


async def notifications(
    db: asyncpg.Connection, kind: str | None = None
) -> list[tuple[int, str, dict[str, Any]]]:
    """(user_id, type, data) in creation order."""
    rows = await db.fetch(
        "SELECT user_id, type, data::text AS data FROM notifications "
        "WHERE $1::text IS NULL OR type = $1 ORDER BY id",
        kind,
    )
    return [(row["user_id"], row["type"], json.loads(row["data"])) for row in rows]


async def per_reservation(db: asyncpg.Connection, kind: str, key: str) -> dict[int, int]:
    """How many notifications of ``kind`` name each id under ``key`` in their data."""
    rows = await db.fetch(
        "SELECT (data->>$2)::bigint AS about, count(*) AS n FROM notifications "
        "WHERE type = $1 GROUP BY 1",
        kind,
        key,
    )
    return {row["about"]: row["n"] for row in rows}


async def count_in_status(db: asyncpg.Connection, table: str, ids: list[int], status: str) -> int:
    count: int = await db.fetchval(
        f"SELECT count(*) FROM {table} WHERE id = ANY($1::bigint[]) AND status = $2", ids, status
    )
    return count


async def statuses(db: asyncpg.Connection, table: str) -> dict[str, int]:
    rows = await db.fetch(f"SELECT status, count(*) AS n FROM {table} GROUP BY status")
    return {row["status"]: row["n"] for row in rows}


# Deadlines, to the second


async def test_confirmed_reservation_becomes_no_show_one_second_after_the_grace_period(
    db: asyncpg.Connection, pool: Pool, publisher: Publisher, settings: Settings, seat: Seat
) -> None:
    owner = await add_user(db, "S0000001")
    start = NOW - GRACE
    booked = await add_reservation(
        db, user_id=owner, seat_id=seat.seat_id, start=start, end=start + HOUR
    )

    at_deadline = await sweeps.mark_no_shows(pool, publisher, settings, now=start + GRACE)
    assert at_deadline == 0
    assert (await reservation_row(db, booked))["status"] == "CONFIRMED"
    assert await notifications(db) == []

    after = await sweeps.mark_no_shows(pool, publisher, settings, now=start + GRACE + SECOND)
    assert after == 1
    row = await reservation_row(db, booked)
    assert row["status"] == "NO_SHOW"
    assert row["updated_at"] == start + GRACE + SECOND


async def test_checked_in_reservation_completes_when_its_end_time_comes(
    db: asyncpg.Connection, pool: Pool, publisher: Publisher, settings: Settings, seat: Seat
) -> None:
    owner = await add_user(db, "S0000001")
    end = NOW
    sitting = await add_reservation(
        db, user_id=owner, seat_id=seat.seat_id, start=end - HOUR, end=end, status="CHECKED_IN"
    )

    before = await sweeps.complete_checked_in(pool, publisher, settings, now=end - SECOND)
    assert before == 0
    assert (await reservation_row(db, sitting))["status"] == "CHECKED_IN"

    at_end = await sweeps.complete_checked_in(pool, publisher, settings, now=end)
    assert at_end == 1
    row = await reservation_row(db, sitting)
    assert row["status"] == "COMPLETED"
    assert row["end_time"] == end  # the booked end stays: nothing was cut short
    assert await notifications(db) == []


async def test_offer_is_kept_at_its_deadline_and_expires_one_second_later(
    db: asyncpg.Connection, pool: Pool, publisher: Publisher, settings: Settings, seat: Seat
) -> None:
    waiter = await add_user(db, "S0000001")
    deadline = NOW
    entry_id, held = await add_offer(
        db, seat, user_id=waiter, start=NOW + HOUR, end=NOW + 2 * HOUR, expires_at=deadline
    )

    # Claiming is still allowed at the deadline, so the sweep must leave it alone.
    at_deadline = await sweeps.expire_offers(pool, publisher, settings, now=deadline)
    assert at_deadline == 0
    assert (await reservation_row(db, held))["status"] == "HELD"
    assert (await entry(db, entry_id))["status"] == "OFFERED"

    later = deadline + SECOND
    after = await sweeps.expire_offers(pool, publisher, settings, now=later)
    assert after == 1
    row = await reservation_row(db, held)
    assert (row["status"], row["cancel_reason"], row["cancelled_at"]) == (
        "CANCELLED",
        EXPIRED_REASON,
        later,
    )
    assert (await entry(db, entry_id))["status"] == "EXPIRED"
    assert await notifications(db) == [
        (
            waiter,
            "waitlist.expired",
            {"entry_id": entry_id, "reservation_id": held, "seat_id": seat.seat_id},
        )
    ]


async def test_sweeps_leave_reservations_in_other_states_alone(
    db: asyncpg.Connection, pool: Pool, publisher: Publisher, settings: Settings
) -> None:
    branch = await add_branch(db, "Main")
    long_ago = NOW - 5 * HOUR
    kept = {}
    for i, status in enumerate(["COMPLETED", "CANCELLED", "NO_SHOW"]):
        place = await add_seat(db, branch, f"K{i}")
        owner = await add_user(db, f"K{i}")
        kept[status] = await add_reservation(
            db, user_id=owner, seat_id=place, start=long_ago, end=long_ago + HOUR, status=status
        )
    # Active but not yet due: starts later, ends later, offer still open.
    later = NOW + HOUR
    for i, status in enumerate(["CONFIRMED", "CHECKED_IN", "HELD"]):
        place = await add_seat(db, branch, f"L{i}")
        owner = await add_user(db, f"L{i}")
        kept[f"future {status}"] = await add_reservation(
            db,
            user_id=owner,
            seat_id=place,
            start=NOW - GRACE + SECOND if status == "CONFIRMED" else NOW - HOUR,
            end=later,
            status=status,
            offer_expires_at=later if status == "HELD" else None,
        )

    result = await sweeps.run_all(pool, publisher, settings, now=NOW)

    assert result == sweeps.SweepResult()
    for name, reservation_id in kept.items():
        assert (await reservation_row(db, reservation_id))["status"] == name.split()[-1]
    assert await notifications(db) == []


# Notifications


async def test_each_no_show_notifies_its_owner_once_after_commit(
    db: asyncpg.Connection,
    pool: Pool,
    publisher: Publisher,
    broker: Broker,
    settings: Settings,
    seat: Seat,
) -> None:
    alice = await add_user(db, "S0000001")
    bob = await add_user(db, "S0000002")
    first = await add_reservation(
        db, user_id=alice, seat_id=seat.seat_id, start=NOW - 3 * HOUR, end=NOW - 2 * HOUR
    )
    second = await add_reservation(
        db, user_id=bob, seat_id=seat.seat_id, start=NOW - HOUR, end=NOW - 30 * MINUTE
    )

    with broker.hub.user(alice) as stream:
        assert await sweeps.mark_no_shows(pool, publisher, settings, now=NOW) == 2
        assert await sweeps.mark_no_shows(pool, publisher, settings, now=NOW + MINUTE) == 0

        assert await notifications(db) == [
            (
                alice,
                "reservation.no_show",
                {
                    "reservation_id": first,
                    "seat_id": seat.seat_id,
                    "start_time": iso(NOW - 3 * HOUR),
                },
            ),
            (
                bob,
                "reservation.no_show",
                {"reservation_id": second, "seat_id": seat.seat_id, "start_time": iso(NOW - HOUR)},
            ),
        ]
        # Alice's stream hears about her own no-show only, once.
        message = stream.queue.get_nowait()
        assert stream.queue.empty()
    assert message["kind"] == "notification"
    assert message["user_id"] == alice
    assert message["notification"]["type"] == "reservation.no_show"
    assert message["notification"]["data"]["reservation_id"] == first


# Releases feed the waitlist


async def test_no_show_offers_the_rest_of_its_slot_to_a_waiting_entry(
    db: asyncpg.Connection, pool: Pool, publisher: Publisher, settings: Settings, seat: Seat
) -> None:
    alice = await add_user(db, "S0000001")
    bob = await add_user(db, "S0000002")
    start = NOW - GRACE - SECOND
    missed = await add_reservation(
        db, user_id=alice, seat_id=seat.seat_id, start=start, end=start + 2 * HOUR
    )
    waiting = await add_entry(
        db,
        user_id=bob,
        branch_id=seat.branch_id,
        seat_id=seat.seat_id,
        start=NOW + 30 * MINUTE,
        end=start + 2 * HOUR,
    )

    assert await sweeps.mark_no_shows(pool, publisher, settings, now=NOW) == 1

    assert (await reservation_row(db, missed))["status"] == "NO_SHOW"
    offered = await entry(db, waiting)
    assert offered["status"] == "OFFERED"
    assert offered["offer_expires_at"] == NOW + CLAIM
    held = await reservation_row(db, offered["reservation_id"])
    assert (held["user_id"], held["seat_id"], held["status"]) == (bob, seat.seat_id, "HELD")
    assert (held["start_time"], held["end_time"]) == (NOW + 30 * MINUTE, start + 2 * HOUR)
    assert held["offer_expires_at"] == NOW + CLAIM
    assert await notifications(db, "waitlist.offer") == [
        (
            bob,
            "waitlist.offer",
            {
                "entry_id": waiting,
                "reservation_id": held["id"],
                "seat_id": seat.seat_id,
                "start_time": iso(NOW + 30 * MINUTE),
                "end_time": iso(start + 2 * HOUR),
                "offer_expires_at": iso(NOW + CLAIM),
            },
        )
    ]


async def test_expired_offer_passes_to_the_next_in_line(
    db: asyncpg.Connection, pool: Pool, publisher: Publisher, settings: Settings, seat: Seat
) -> None:
    first_user = await add_user(db, "S0000001")
    second_user = await add_user(db, "S0000002")
    start, end = NOW + HOUR, NOW + 2 * HOUR
    first, first_offer = await add_offer(
        db, seat, user_id=first_user, start=start, end=end, expires_at=NOW - SECOND
    )
    second = await add_entry(
        db,
        user_id=second_user,
        branch_id=seat.branch_id,
        seat_id=seat.seat_id,
        start=start,
        end=end,
        created_at=NOW - 30 * MINUTE,
    )

    assert await sweeps.expire_offers(pool, publisher, settings, now=NOW) == 1

    assert (await entry(db, first))["status"] == "EXPIRED"
    assert (await reservation_row(db, first_offer))["status"] == "CANCELLED"
    passed_on = await entry(db, second)
    assert passed_on["status"] == "OFFERED"
    held = await reservation_row(db, passed_on["reservation_id"])
    assert (held["user_id"], held["status"], held["offer_expires_at"]) == (
        second_user,
        "HELD",
        NOW + CLAIM,
    )
    assert [(user, kind) for user, kind, _ in await notifications(db)] == [
        (first_user, "waitlist.expired"),
        (second_user, "waitlist.offer"),
    ]


# Exactly once with several sweepers


@dataclass(frozen=True)
class Population:
    """``n`` seats of one branch with one row of each kind per seat."""

    branch_id: int
    seats: list[int]


async def populate(db: asyncpg.Connection, n: int) -> Population:
    branch_id = await add_branch(db, "Main")
    rows = await db.fetch(
        "INSERT INTO seats (branch_id, area, label) "
        "SELECT $1, 'Quiet', 'S' || n FROM generate_series(1, $2) n RETURNING id",
        branch_id,
        n,
    )
    return Population(branch_id, [row["id"] for row in rows])


async def add_users(db: asyncpg.Connection, prefix: str, n: int) -> list[int]:
    rows = await db.fetch(
        "INSERT INTO users (student_id, name, password_hash) "
        "SELECT $1 || n, 'T', 'x' FROM generate_series(1, $2) n RETURNING id",
        prefix,
        n,
    )
    return [row["id"] for row in rows]


async def bulk_reservations(
    db: asyncpg.Connection,
    users: list[int],
    seats: list[int],
    *,
    start: datetime,
    end: datetime,
    status: str,
    offer_expires_at: datetime | None = None,
) -> list[int]:
    rows = await db.fetch(
        "INSERT INTO reservations (user_id, seat_id, start_time, end_time, status, "
        "checked_in_at, offer_expires_at, created_at, updated_at) "
        "SELECT u, s, $3::timestamptz, $4::timestamptz, $5::text, "
        "CASE WHEN $5::text = 'CHECKED_IN' THEN $3::timestamptz END, $6::timestamptz, "
        "$7::timestamptz, $7::timestamptz "
        "FROM unnest($1::bigint[], $2::bigint[]) AS t(u, s) RETURNING id",
        users,
        seats,
        start,
        end,
        status,
        offer_expires_at,
        start - HOUR,
    )
    return [row["id"] for row in rows]


async def bulk_entries(
    db: asyncpg.Connection,
    users: list[int],
    place: Population,
    *,
    start: datetime,
    end: datetime,
    status: str = "WAITING",
    reservations: list[int] | None = None,
    offer_expires_at: datetime | None = None,
) -> list[int]:
    no_reservations: list[int | None] = [None] * len(users)
    rows = await db.fetch(
        "INSERT INTO waitlist_entries (user_id, branch_id, seat_id, start_time, end_time, "
        "status, reservation_id, offer_expires_at, created_at, updated_at) "
        "SELECT u, $3::bigint, s, $4::timestamptz, $5::timestamptz, $6::text, r, "
        "$7::timestamptz, $8::timestamptz, $8::timestamptz "
        "FROM unnest($1::bigint[], $2::bigint[], $9::bigint[]) AS t(u, s, r) RETURNING id",
        users,
        place.seats,
        place.branch_id,
        start,
        end,
        status,
        offer_expires_at,
        NOW - 2 * HOUR,
        reservations or no_reservations,
    )
    return [row["id"] for row in rows]


@dataclass(frozen=True)
class DueRows:
    no_shows: list[int]
    no_show_waiters: list[int]
    completions: list[int]
    offers: list[int]
    offer_entries: list[int]
    next_in_line: list[int]


async def arrange_due_rows(db: asyncpg.Connection, n: int) -> DueRows:
    """On each of ``n`` seats: a CONFIRMED reservation past its grace period with a
    WAITING entry for the rest of its slot; a CHECKED_IN one that has ended; an offer
    past its deadline with another entry waiting behind it."""
    place = await populate(db, n)
    no_shows = await bulk_reservations(
        db,
        await add_users(db, "NS", n),
        place.seats,
        start=NOW - 30 * MINUTE,
        end=NOW + 30 * MINUTE,
        status="CONFIRMED",
    )
    no_show_waiters = await bulk_entries(
        db, await add_users(db, "NW", n), place, start=NOW + 5 * MINUTE, end=NOW + 30 * MINUTE
    )
    completions = await bulk_reservations(
        db,
        await add_users(db, "CI", n),
        place.seats,
        start=NOW - 2 * HOUR,
        end=NOW - HOUR,
        status="CHECKED_IN",
    )
    offered_users = await add_users(db, "OF", n)
    offers = await bulk_reservations(
        db,
        offered_users,
        place.seats,
        start=NOW + HOUR,
        end=NOW + 2 * HOUR,
        status="HELD",
        offer_expires_at=NOW - SECOND,
    )
    offer_entries = await bulk_entries(
        db,
        offered_users,
        place,
        start=NOW + HOUR,
        end=NOW + 2 * HOUR,
        status="OFFERED",
        reservations=offers,
        offer_expires_at=NOW - SECOND,
    )
    next_in_line = await bulk_entries(
        db, await add_users(db, "NX", n), place, start=NOW + HOUR, end=NOW + 2 * HOUR
    )
    return DueRows(no_shows, no_show_waiters, completions, offers, offer_entries, next_in_line)


async def offered_entries(db: asyncpg.Connection, ids: list[int]) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT w.id, r.user_id, r.status, w.user_id AS entrant FROM waitlist_entries w "
        "JOIN reservations r ON r.id = w.reservation_id "
        "WHERE w.id = ANY($1::bigint[]) AND w.status = 'OFFERED'",
        ids,
    )


N = 200


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # Several batches per sweep, so that two sweepers interleave batch by batch.
    monkeypatch.setattr(sweeps, "BATCH", 25)


@pytest.mark.usefixtures("small_batches")
async def test_concurrent_no_show_sweeps_change_and_notify_each_reservation_once(
    db: asyncpg.Connection,
    pool: Pool,
    second_pool: Pool,
    publisher: Publisher,
    settings: Settings,
) -> None:
    due = await arrange_due_rows(db, N)

    counts = await asyncio.gather(
        sweeps.mark_no_shows(pool, publisher, settings, now=NOW),
        sweeps.mark_no_shows(second_pool, publisher, settings, now=NOW),
    )

    assert sum(counts) == N
    assert await count_in_status(db, "reservations", due.no_shows, "NO_SHOW") == N
    assert await per_reservation(db, "reservation.no_show", "reservation_id") == dict.fromkeys(
        due.no_shows, 1
    )
    # Every released slot went to its waiting entry, once.
    offers = await offered_entries(db, due.no_show_waiters)
    assert len(offers) == N
    assert all(o["user_id"] == o["entrant"] and o["status"] == "HELD" for o in offers)
    assert await per_reservation(db, "waitlist.offer", "entry_id") == dict.fromkeys(
        due.no_show_waiters, 1
    )


@pytest.mark.usefixtures("small_batches")
async def test_concurrent_completion_sweeps_complete_each_reservation_once(
    db: asyncpg.Connection,
    pool: Pool,
    second_pool: Pool,
    publisher: Publisher,
    settings: Settings,
) -> None:
    due = await arrange_due_rows(db, N)

    counts = await asyncio.gather(
        sweeps.complete_checked_in(pool, publisher, settings, now=NOW),
        sweeps.complete_checked_in(second_pool, publisher, settings, now=NOW),
    )

    assert sum(counts) == N
    assert await count_in_status(db, "reservations", due.completions, "COMPLETED") == N
    assert await notifications(db) == []


@pytest.mark.usefixtures("small_batches")
async def test_concurrent_offer_sweeps_expire_and_pass_on_each_offer_once(
    db: asyncpg.Connection,
    pool: Pool,
    second_pool: Pool,
    publisher: Publisher,
    settings: Settings,
) -> None:
    due = await arrange_due_rows(db, N)

    counts = await asyncio.gather(
        sweeps.expire_offers(pool, publisher, settings, now=NOW),
        sweeps.expire_offers(second_pool, publisher, settings, now=NOW),
    )

    assert sum(counts) == N
    assert (
        await db.fetchval(
            "SELECT count(*) FROM reservations WHERE id = ANY($1::bigint[]) "
            "AND status = 'CANCELLED' AND cancel_reason = $2",
            due.offers,
            EXPIRED_REASON,
        )
        == N
    )
    assert await count_in_status(db, "waitlist_entries", due.offer_entries, "EXPIRED") == N
    assert await per_reservation(db, "waitlist.expired", "entry_id") == dict.fromkeys(
        due.offer_entries, 1
    )
    assert len(await offered_entries(db, due.next_in_line)) == N
    assert await per_reservation(db, "waitlist.offer", "entry_id") == dict.fromkeys(
        due.next_in_line, 1
    )


@pytest.mark.usefixtures("small_batches")
async def test_two_instances_running_every_sweep_at_once_change_each_row_once(
    db: asyncpg.Connection,
    pool: Pool,
    second_pool: Pool,
    publisher: Publisher,
    settings: Settings,
) -> None:
    due = await arrange_due_rows(db, N)

    first, second = await asyncio.gather(
        sweeps.run_all(pool, publisher, settings, now=NOW),
        sweeps.run_all(second_pool, publisher, settings, now=NOW),
    )

    assert first.no_shows + second.no_shows == N
    assert first.completed + second.completed == N
    assert first.expired_offers + second.expired_offers == N
    assert await statuses(db, "reservations") == {
        "NO_SHOW": N,
        "COMPLETED": N,
        "CANCELLED": N,
        "HELD": 2 * N,  # the no-shows' waiters and the next in line behind expired offers
    }
    assert await statuses(db, "waitlist_entries") == {"OFFERED": 2 * N, "EXPIRED": N}
    kinds = await db.fetch("SELECT type, count(*) AS n FROM notifications GROUP BY type")
    assert {row["type"]: row["n"] for row in kinds} == {
        "reservation.no_show": N,
        "waitlist.expired": N,
        "waitlist.offer": 2 * N,
    }
    assert await per_reservation(db, "waitlist.offer", "entry_id") == dict.fromkeys(
        due.no_show_waiters + due.next_in_line, 1
    )


# run_all housekeeping and the scheduler tick


async def test_run_all_forgets_idempotency_keys_past_their_expiry(
    db: asyncpg.Connection, pool: Pool, publisher: Publisher, settings: Settings
) -> None:
    owner = await add_user(db, "S0000001")
    for key, expires_at in [("old", NOW - SECOND), ("fresh", NOW + SECOND)]:
        await db.execute(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response, "
            "created_at, expires_at) VALUES ($1, $2, 'h', 201, '{}', $3, $4)",
            owner,
            key,
            expires_at - timedelta(hours=24),
            expires_at,
        )

    result = await sweeps.run_all(pool, publisher, settings, now=NOW)

    assert result.idempotency_keys_removed == 1
    assert await db.fetchval("SELECT array_agg(key) FROM idempotency_keys") == ["fresh"]


async def test_failing_sweep_is_logged_and_does_not_stop_the_scheduler(
    pool: Pool, publisher: Publisher, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await pool.close()

    with caplog.at_level(logging.ERROR, logger="app.jobs.scheduler"):
        await scheduler.sweep_once(pool, publisher, settings, FrozenClock(NOW))  # no raise

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].name == "app.jobs.scheduler"
    assert errors[0].exc_info is not None


async def test_scheduler_sweeps_on_every_tick_at_the_apps_clock(
    db: asyncpg.Connection, pool: Pool, publisher: Publisher, database_url: str, seat: Seat
) -> None:
    # The real APScheduler wiring, ticking every 50 ms, on a clock frozen at NOW: a
    # reservation missed before it starts is swept by the first tick, and one added
    # after that tick by a later one (the interval job keeps running).
    settings = make_settings(database_url, GRACE_MINUTES=15, SWEEP_INTERVAL_SECONDS=0.05)
    owner = await add_user(db, "S0000001")
    first = await add_reservation(
        db, user_id=owner, seat_id=seat.seat_id, start=NOW - HOUR, end=NOW - 30 * MINUTE
    )

    sweeper = scheduler.start_scheduler(pool, publisher, settings, FrozenClock(NOW))
    try:
        await eventually(
            lambda: reservation_row(db, first),
            lambda row: row["status"] == "NO_SHOW",
            within=10,
            interval=0.02,
            what="the first tick sweeps the missed reservation",
        )
        second = await add_reservation(
            db, user_id=owner, seat_id=seat.seat_id, start=NOW - 2 * HOUR, end=NOW - 90 * MINUTE
        )
        await eventually(
            lambda: reservation_row(db, second),
            lambda row: row["status"] == "NO_SHOW",
            within=10,
            interval=0.02,
            what="a later tick sweeps the reservation added after the first",
        )
    finally:
        await sweeper.stop(grace_seconds=5)
