"""Quotas under concurrency (api.md, "Quotas hold under concurrency"): twenty
simultaneous bookings by one student, on different seats and days, never exceed a
branch quota. Real clock, requests truly in flight together."""

import asyncio
from datetime import datetime, timedelta

import asyncpg
import httpx

from tests.concurrency.test_booking_races import POOL, outcome, tomorrow_at
from tests.conftest import ClientFactory
from tests.factories import add_branch, add_seat, add_student, booking

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


async def quota_branch(db: asyncpg.Connection, column: str, value: float) -> list[int]:
    branch = await add_branch(db, "Quota")
    await db.execute(f"UPDATE branches SET {column} = $2 WHERE id = $1", branch, value)
    return [await add_seat(db, branch, f"Q{n:02d}") for n in range(20)]


async def test_twenty_bookings_at_once_never_pass_the_daily_quota(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    api = await make_client(**POOL)
    seats = await quota_branch(db, "max_bookings_per_day", 3)
    student = await add_student(db, "S5000001")
    start = tomorrow_at(0)  # twenty different hours of one (UTC) day
    responses = await asyncio.gather(
        *(
            api.post(
                "/reservations",
                json=booking(seat, start + n * HOUR, start + n * HOUR + 30 * timedelta(minutes=1)),
                headers=student.headers,
            )
            for n, seat in enumerate(seats)
        )
    )
    outcomes = sorted(outcome(r) for r in responses)
    assert outcomes == [(201, None)] * 3 + [(409, "quota_exceeded")] * 17
    assert await counted(db, student.id) == 3


async def test_twenty_bookings_at_once_on_different_days_never_pass_the_weekly_hours(
    make_client: ClientFactory, db: asyncpg.Connection
) -> None:
    api: httpx.AsyncClient = await make_client(BOOKING_HORIZON_DAYS=30, **POOL)
    seats = await quota_branch(db, "max_hours_per_week", 5)
    student = await add_student(db, "S5000002")
    # Twenty two-hour bookings over the next fortnight: at most two per ISO week fit.
    first = tomorrow_at(9)

    def slot(n: int) -> datetime:
        return first + (n % 14) * DAY + (n // 14) * 3 * HOUR

    responses = await asyncio.gather(
        *(
            api.post(
                "/reservations",
                json=booking(
                    seat,
                    first + (n % 14) * DAY + (n // 14) * 3 * HOUR,
                    first + (n % 14) * DAY + (n // 14) * 3 * HOUR + 2 * HOUR,
                ),
                headers=student.headers,
            )
            for n, seat in enumerate(seats)
        )
    )
    assert {outcome(r) for r in responses} <= {(201, None), (409, "quota_exceeded")}
    rows = await db.fetch(
        "SELECT start_time, end_time FROM reservations WHERE user_id = $1 AND status = 'CONFIRMED'",
        student.id,
    )
    per_week: dict[tuple[int, int], float] = {}
    for row in rows:
        week = row["start_time"].isocalendar()[:2]
        hours = (row["end_time"] - row["start_time"]).total_seconds() / 3600
        per_week[week] = per_week.get(week, 0) + hours
    assert per_week and max(per_week.values()) <= 5
    assert sum(1 for r in responses if r.status_code == 201) == len(rows)


async def counted(db: asyncpg.Connection, user_id: int) -> int:
    total: int = await db.fetchval(
        "SELECT count(*) FROM reservations WHERE user_id = $1 AND status = 'CONFIRMED'", user_id
    )
    return total
