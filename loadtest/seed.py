"""Seed the load-test database: branches, seats, students and 300,000 reservations.

    .venv/bin/python loadtest/seed.py                 # (re)create dlsms_bench with the defaults
    .venv/bin/python loadtest/seed.py --help

Drops and recreates a dedicated database (default ``dlsms_bench`` on
postgresql://postgres@127.0.0.1:5432), applies the app's migrations, then fills it
with set-based SQL (generate_series), so a full seed takes seconds:

* ``--branches`` branches (5) with ``--seats`` seats (2,000) between them, 5 areas each;
  about 60 % have power, 25 % a monitor, 3 % are MAINTENANCE and 2 % CLOSED.
* ``--users`` students (500) ``B000001``.. with password ``password123`` (one bcrypt
  cost-4 hash shared by all; the load test mints JWTs instead of logging in).
* ``--reservations`` reservations (300,000) in three groups:
  - *now*: one CHECKED_IN reservation covering the present moment for ``--occupied``
    (20 %) of the ACTIVE seats, each by a different student, so listings see busy seats;
  - *future*: 2-hour slots from the next even slot for 14 days (168 slots), each slot
    holding ``--future-per-slot`` (100) reservations of distinct seats and distinct
    students (90 % CONFIRMED, 10 % CANCELLED), which respects both exclusion
    constraints by construction;
  - *past*: the rest, over the last ``--past-days`` (180) days, 08:00..21:30 UTC on
    half hours, 1..4 h long: 80 % COMPLETED, 8 % NO_SHOW, 12 % CANCELLED. NO_SHOWs of
    the last 45 days are capped at two per student, so nobody is suspended
    (3 in 30 days suspend for 7) and bookings are not refused with 403.

The randomness is seeded (``--random-seed``), and times are relative to the moment of
seeding, so re-seed before comparing runs (bench.py does that for booking runs).
A one-row table ``loadtest_seed`` records what was made and when.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import bcrypt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db.migrations import upgrade_to_head  # noqa: E402

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_DB = "dlsms_bench"
BRANCH_NAMES = [
    "Main Library",
    "Science Library",
    "Engineering Library",
    "Law Library",
    "Medical Library",
    "Arts Library",
    "Music Library",
    "Business Library",
]
AREAS = ["Quiet Zone", "Reading Room", "Group Study", "Computer Lab", "Mezzanine"]
ACTIVE = "('HELD', 'CONFIRMED', 'CHECKED_IN')"
# A no-show suspends for SUSPENSION_DAYS (7) from its start when NO_SHOW_LIMIT (3) fall in
# the NO_SHOW_WINDOW_DAYS (30) before it, so two at most in the last 30 + 7 days (plus
# a margin) keep every student bookable.
FAIR_USE_WINDOW_DAYS = 45
SLOT_HOURS = 2
HORIZON_DAYS = 14


def db_url(server: str, name: str) -> str:
    return f"{server.rstrip('/')}/{name}"


async def recreate_database(server: str, name: str) -> None:
    conn = await asyncpg.connect(db_url(server, "postgres"))
    try:
        # WITH (FORCE) ends sessions still connected to the bench database (PG 13+).
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def coprime_step(n: int) -> int:
    """A stride that visits every index mod n once (spreads a slot's seats over the floor)."""
    for step in (37, 41, 43, 47, 53, 59, 61, 67, 71, 73):
        if math.gcd(step, n) == 1:
            return step
    return 1


async def fill(conn: asyncpg.Connection, args: argparse.Namespace) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    now = datetime.now(UTC)
    await conn.execute("SELECT setseed($1)", args.random_seed)

    # Branches and seats: seats spread evenly, label "<area letter>-<nnn>".
    names = BRANCH_NAMES[: args.branches] + [
        f"Branch {i}" for i in range(len(BRANCH_NAMES) + 1, args.branches + 1)
    ]
    branch_ids = [
        await conn.fetchval(
            "INSERT INTO branches (name, timezone) VALUES ($1, $2) RETURNING id", name, args.tz
        )
        for name in names
    ]
    await conn.execute(
        """
        INSERT INTO seats (branch_id, area, label, has_power, has_monitor, status)
        SELECT b.id, a.area,
               left(a.area, 1) || '-' || lpad((i / cardinality($2::bigint[]) + 1)::text, 4, '0'),
               random() < 0.6, random() < 0.25,
               CASE WHEN random() < 0.03 THEN 'MAINTENANCE'
                    WHEN random() < 0.02 THEN 'CLOSED' ELSE 'ACTIVE' END
        FROM generate_series(0, $1 - 1) i
        JOIN LATERAL (SELECT ($2::bigint[])[1 + i % cardinality($2::bigint[])] AS id) b ON true
        JOIN LATERAL (SELECT ($3::text[])[1 + (i / cardinality($2::bigint[]))
                             % cardinality($3::text[])] AS area) a ON true
        """,
        args.seats,
        branch_ids,
        AREAS,
    )
    timings["branches+seats"] = time.perf_counter() - t

    t = time.perf_counter()
    password_hash = bcrypt.hashpw(b"password123", bcrypt.gensalt(rounds=4)).decode()
    await conn.execute(
        """
        INSERT INTO users (student_id, name, email, password_hash, role)
        SELECT 'B' || lpad(i::text, 6, '0'), 'Bench Student ' || i,
               'b' || lpad(i::text, 6, '0') || '@bench.example', $2, 'student'
        FROM generate_series(1, $1) i
        """,
        args.users,
        password_hash,
    )
    timings["users"] = time.perf_counter() - t

    user_ids: list[int] = [
        r["id"] for r in await conn.fetch("SELECT id FROM users WHERE role = 'student' ORDER BY id")
    ]
    active_sql = "SELECT id FROM seats WHERE status = 'ACTIVE' ORDER BY id"
    active_seats: list[int] = [r["id"] for r in await conn.fetch(active_sql)]
    all_seats: list[int] = [r["id"] for r in await conn.fetch("SELECT id FROM seats ORDER BY id")]
    n_users, n_active = len(user_ids), len(active_seats)

    # Now: CHECKED_IN reservations covering this moment, distinct seats and users.
    t = time.perf_counter()
    occupied = min(round(n_active * args.occupied), n_users)
    now_hour = now.replace(minute=0, second=0, microsecond=0)
    await conn.execute(
        """
        INSERT INTO reservations (user_id, seat_id, start_time, end_time, status,
                                  created_at, updated_at, checked_in_at)
        SELECT ($1::bigint[])[1 + i], ($2::bigint[])[1 + (i * $3) % cardinality($2::bigint[])],
               $4::timestamptz - interval '1 hour', $4::timestamptz + interval '2 hours',
               'CHECKED_IN', $4::timestamptz - interval '2 days',
               $4::timestamptz - interval '55 minutes', $4::timestamptz - interval '55 minutes'
        FROM generate_series(0, $5 - 1) i
        """,
        user_ids,
        active_seats,
        coprime_step(n_active),
        now_hour,
        occupied,
    )
    timings["now"] = time.perf_counter() - t

    # Future: 2 h slots right after the "now" rows; per slot distinct seats and users.
    t = time.perf_counter()
    slots = HORIZON_DAYS * 24 // SLOT_HOURS
    per_slot = min(args.future_per_slot, n_users, n_active)
    await conn.execute(
        """
        INSERT INTO reservations (user_id, seat_id, start_time, end_time, status,
                                  created_at, updated_at, cancelled_at, cancel_reason)
        SELECT ($1::bigint[])[1 + (u + k * 7) % cardinality($1::bigint[])],
               ($2::bigint[])[1 + (u * $3 + k * 13) % cardinality($2::bigint[])],
               st, st + interval '1 hour' * (1 + (u + k) % 2), status,
               created, created, CASE WHEN status = 'CANCELLED' THEN created END,
               CASE WHEN status = 'CANCELLED' THEN 'user' END
        FROM generate_series(0, $4 - 1) k,
             generate_series(0, $5 - 1) u,
             LATERAL (SELECT $6::timestamptz + interval '2 hours' + k * interval '2 hours' AS st,
                             CASE WHEN random() < 0.1 THEN 'CANCELLED' ELSE 'CONFIRMED' END
                               AS status,
                             $7::timestamptz - random() * interval '3 days' AS created) x
        """,
        user_ids,
        active_seats,
        coprime_step(n_active),
        slots,
        per_slot,
        now_hour,
        now,
    )
    n_future = slots * per_slot
    timings["future"] = time.perf_counter() - t

    # Past: the rest. Any seat (a seat may have been closed since), any student.
    t = time.perf_counter()
    n_past = max(args.reservations - occupied - n_future, 0)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    await conn.execute(
        """
        INSERT INTO reservations (user_id, seat_id, start_time, end_time, status,
                                  created_at, updated_at, checked_in_at, cancelled_at,
                                  cancel_reason)
        SELECT user_id, seat_id, st, st + dur, status,
               st - lead, st + dur,
               CASE WHEN status = 'COMPLETED' THEN st + random() * interval '10 minutes' END,
               CASE WHEN status = 'CANCELLED' THEN st - lead / 2 END,
               CASE WHEN status = 'CANCELLED' THEN 'user' END
        FROM (
            SELECT ($1::bigint[])[1 + floor(random() * cardinality($1::bigint[]))::int] AS user_id,
                   ($2::bigint[])[1 + floor(random() * cardinality($2::bigint[]))::int] AS seat_id,
                   $4::timestamptz - (2 + floor(random() * $5::int))::int * interval '1 day'
                      + interval '8 hours' + floor(random() * 28)::int * interval '30 minutes'
                      AS st,
                   (2 + floor(random() * 7))::int * interval '30 minutes' AS dur,
                   random() * interval '5 days' AS lead,
                   CASE WHEN r < 0.12 THEN 'CANCELLED' WHEN r < 0.20 THEN 'NO_SHOW'
                        ELSE 'COMPLETED' END AS status
            FROM (SELECT random() AS r FROM generate_series(1, $3)) g
        ) p
        """,
        user_ids,
        all_seats,
        n_past,
        today,
        args.past_days,
    )
    # Fair use: at most two recent NO_SHOWs per student, so nobody is suspended.
    demoted = await conn.execute(
        """
        UPDATE reservations SET status = 'COMPLETED', checked_in_at = start_time
        WHERE id IN (
            SELECT id FROM (
                SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY start_time) AS n
                FROM reservations
                WHERE status = 'NO_SHOW'
                  AND start_time > $1::timestamptz - $2::int * interval '1 day'
            ) x WHERE n > 2)
        """,
        now,
        FAIR_USE_WINDOW_DAYS,
    )
    timings["past"] = time.perf_counter() - t

    await conn.execute(
        """
        CREATE TABLE loadtest_seed (
            seeded_at timestamptz NOT NULL, max_reservation_id bigint NOT NULL,
            args text NOT NULL)
        """
    )
    await conn.execute(
        "INSERT INTO loadtest_seed SELECT $1, max(id), $2 FROM reservations",
        now,
        repr(vars(args)),
    )
    return {
        "timings": timings,
        "branches": len(branch_ids),
        "seats": len(all_seats),
        "active_seats": n_active,
        "students": n_users,
        "now": occupied,
        "future": n_future,
        "past": n_past,
        "no_shows_demoted": int(demoted.split()[-1]),
    }


async def summary(conn: asyncpg.Connection) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        """
        SELECT CASE WHEN end_time <= now() THEN 'past' WHEN start_time > now() THEN 'future'
                    ELSE 'now' END || ' ' || status AS k, count(*) AS n
        FROM reservations GROUP BY 1 ORDER BY 1
        """
    )
    overlaps = await conn.fetchval(OVERLAP_SEAT_SQL) + await conn.fetchval(OVERLAP_USER_SQL)
    return [(r["k"], r["n"]) for r in rows] + [("active overlaps (seat+user)", overlaps)]


# Pairs of active reservations that overlap on one seat (col=seat_id) or for one user.
_OVERLAPPING_PAIRS = """
    SELECT count(*) FROM reservations a JOIN reservations b
      ON b.{col} = a.{col} AND b.id > a.id
     AND tstzrange(b.start_time, b.end_time, '[)') && tstzrange(a.start_time, a.end_time, '[)')
    WHERE a.status IN {active} AND b.status IN {active}
"""
OVERLAP_SEAT_SQL = _OVERLAPPING_PAIRS.format(col="seat_id", active=ACTIVE)
OVERLAP_USER_SQL = _OVERLAPPING_PAIRS.format(col="user_id", active=ACTIVE)


async def seed(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    url = db_url(args.server, args.db)
    t = time.perf_counter()
    await recreate_database(args.server, args.db)
    t_create = time.perf_counter() - t
    t = time.perf_counter()
    await asyncio.to_thread(upgrade_to_head, url)
    t_migrate = time.perf_counter() - t
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            made = await fill(conn, args)
        t = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        t_analyze = time.perf_counter() - t
        counts = await summary(conn) if args.verbose else []
    finally:
        await conn.close()
    timings = made.pop("timings")
    assert isinstance(timings, dict)
    print(f"seeded {url}")
    print(
        f"  {made['branches']} branches, {made['seats']} seats ({made['active_seats']} ACTIVE), "
        f"{made['students']} students"
    )
    total = int(made["now"]) + int(made["future"]) + int(made["past"])
    print(
        f"  {total:,} reservations: {made['now']} CHECKED_IN now, {made['future']:,} in future "
        f"2 h slots, {made['past']:,} past ({made['no_shows_demoted']} recent NO_SHOWs demoted)"
    )
    for key, n in counts:
        print(f"    {key:<28} {n:>8,}")
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
    print(
        f"  took {time.perf_counter() - started:.1f}s: create db {t_create:.1f}s, migrate "
        f"{t_migrate:.1f}s, {steps}, vacuum analyze {t_analyze:.1f}s"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL, no db name")
    p.add_argument("--db", default=DEFAULT_DB, help="database to (re)create [dlsms_bench]")
    p.add_argument("--branches", type=int, default=5)
    p.add_argument("--seats", type=int, default=2000)
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--reservations", type=int, default=300_000)
    p.add_argument("--future-per-slot", type=int, default=100)
    p.add_argument("--occupied", type=float, default=0.2, help="share of ACTIVE seats in use now")
    p.add_argument("--past-days", type=int, default=180)
    p.add_argument("--tz", default="UTC", help="branch time zone")
    p.add_argument("--random-seed", type=float, default=0.42, help="setseed() value in [-1, 1]")
    p.add_argument("-v", "--verbose", action="store_true", help="print counts by status")
    args = p.parse_args(argv)
    if args.db in ("postgres", "template0", "template1") or not args.db.replace("_", "").isalnum():
        p.error(f"refusing to recreate database {args.db!r}")
    return args


if __name__ == "__main__":
    asyncio.run(seed(parse_args()))
