"""Latency of GET /seats/suggest on the load-test data set, over real HTTP.

    .venv/bin/python loadtest/seed.py --db dlsms_suggest_bench      # once (~8 s)
    .venv/bin/python loadtest/suggest_bench.py --db dlsms_suggest_bench -n 4000 -c 4

Starts ``uvicorn app.main:app`` (1 worker, harness.Server: uvloop, httptools, no access
log) on the seeded database, waits for a quiet machine (harness.wait_for_quiet), warms
up, then sends ``-n`` requests from ``-c`` keep-alive connections. The client is a few
lines of raw HTTP/1.1 on asyncio (no HTTP library), so that it takes as little as
possible of the two shared cores from the server. The queries are varied and seeded:
half with a student's token (habits), a third restricted to a branch, preferred area,
power and monitor at random, a start of now or up to two days ahead on the quarter
hour, 60 to 240 minutes, limit 5, 10 or 20. Prints p50/p95/p99/max and the status
split, and appends a JSON line to loadtest/runs/suggest.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import harness

AREAS = ["Quiet Zone", "Reading Room", "Group Study", "Computer Lab", "Mezzanine"]
DURATIONS = [60, 90, 120, 180, 240]


async def bench_data(url: str) -> tuple[list[str], list[tuple[int, str]]]:
    conn = await harness.pg(url)
    try:
        branches = [r["name"] for r in await conn.fetch("SELECT name FROM branches ORDER BY id")]
        users = [
            (r["id"], r["student_id"])
            for r in await conn.fetch("SELECT id, student_id FROM users WHERE role = 'student'")
        ]
    finally:
        await conn.close()
    return branches, users


def fill_anchor() -> datetime:
    """Tomorrow 10:00 UTC: the start the fallback scenario asks for, far from the end of
    the (UTC) day so that seats do free up "today" whenever the benchmark runs."""
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    return tomorrow.replace(hour=10, minute=0, second=0, microsecond=0)


def requests(
    n: int, branches: list[str], tokens: list[str], rng: random.Random, *, full: str | None = None
) -> list[tuple[str, str | None]]:
    """``n`` (path with query, token or None); ``full``: every request for that branch,
    starting at fill_anchor() (the fallback, once fill_branch has taken every seat)."""
    now = datetime.now(UTC)
    quarter = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0)
    made: list[tuple[str, str | None]] = []
    for _ in range(n):
        query: dict[str, str] = {}
        if full is not None:
            query["branch"] = full
            query["start_time"] = fill_anchor().isoformat().replace("+00:00", "Z")
        elif rng.random() < 1 / 3:
            query["branch"] = rng.choice(branches)
        if rng.random() < 0.5:
            query["area"] = rng.choice(AREAS)
        for name in ("has_power", "has_monitor"):
            if rng.random() < 0.5:
                query[name] = rng.choice(("true", "false"))
        if full is None and rng.random() < 0.3:
            start = quarter + timedelta(minutes=15 * rng.randint(1, 4 * 48))
            query["start_time"] = start.isoformat().replace("+00:00", "Z")
        query["duration_minutes"] = str(rng.choice(DURATIONS))
        query["limit"] = str(rng.choice((5, 5, 10, 20)))
        token = rng.choice(tokens) if rng.random() < 0.5 else None
        made.append(("/seats/suggest?" + urlencode(query), token))
    return made


async def fill_branch(url: str, branch: str) -> int:
    """Take every ACTIVE seat of ``branch`` that is free at fill_anchor(), from then until
    30 to 135 minutes later (staggered; earlier when its next reservation starts
    sooner), each by a new student: no seat of the branch is free for two hours from the
    anchor, so suggestions for it fall back to the times the seats free up. Changes the
    bench database: re-seed after."""
    anchor = fill_anchor()
    conn = await harness.pg(url)
    try:
        async with conn.transaction():
            rows = await conn.fetch(
                """
                SELECT s.id, (SELECT min(r.start_time) FROM reservations r
                              WHERE r.seat_id = s.id AND r.start_time > $2
                                AND r.status IN ('HELD', 'CONFIRMED', 'CHECKED_IN')) AS next
                FROM seats s JOIN branches b ON b.id = s.branch_id
                WHERE b.name = $1 AND s.status = 'ACTIVE' AND NOT EXISTS (
                    SELECT 1 FROM reservations r WHERE r.seat_id = s.id
                      AND r.status IN ('HELD', 'CONFIRMED', 'CHECKED_IN')
                      AND r.start_time <= $2 AND $2 < r.end_time)
                ORDER BY s.id""",
                branch,
                anchor,
            )
            ends = []
            for n, row in enumerate(rows):
                end = anchor + timedelta(minutes=30 + 15 * (n % 8))
                ends.append(min(end, row["next"]) if row["next"] else end)
            await conn.execute(
                """
                WITH u AS (
                    INSERT INTO users (student_id, name, password_hash, role)
                    SELECT 'F' || lpad(i::text, 6, '0'), 'Fill ' || i, 'x', 'student'
                    FROM generate_series(1, cardinality($1::bigint[])) i
                    RETURNING id, substr(student_id, 2)::int AS n)
                INSERT INTO reservations (user_id, seat_id, start_time, end_time, status,
                                          created_at, updated_at)
                SELECT u.id, ($1::bigint[])[u.n], $2::timestamptz, ($3::timestamptz[])[u.n],
                       'CONFIRMED', now(), now()
                FROM u""",
                [row["id"] for row in rows],
                anchor,
                ends,
            )
    finally:
        await conn.close()
    return len(rows)


class Connection:
    """One keep-alive HTTP/1.1 connection; responses carry Content-Length (uvicorn)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, path: str, token: str | None) -> tuple[int, bytes]:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def fire(
    port: int, work: list[tuple[str, str | None]], concurrency: int
) -> tuple[list[float], dict[int, int], float]:
    """Send every request over ``concurrency`` connections; latencies in ms."""
    queue = iter(work)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        conn = await Connection.open(port)
        try:
            for path, token in queue:
                t = time.perf_counter()
                status, _ = await conn.get(path, token)
                latencies.append((time.perf_counter() - t) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


def percentile(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, round(p / 100 * (len(sorted_ms) - 1)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="dlsms_suggest_bench", help="a database seed.py made")
    p.add_argument("-n", "--requests", type=int, default=4000)
    p.add_argument("-c", "--concurrency", type=int, default=4)
    p.add_argument("--warmup", type=int, default=300, help="requests before measuring")
    p.add_argument("--quiet-wait", type=float, default=60)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--fill",
        metavar="BRANCH",
        help="take every seat of BRANCH free at tomorrow 10:00 UTC for 30-135 min and ask only "
        "for it then (the fallback path; changes the database: re-seed after)",
    )
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    args = p.parse_args()

    url = f"{args.server.rstrip('/')}/{args.db}"
    branches, users = asyncio.run(bench_data(url))
    tokens = list(harness.mint_tokens(users).values())
    if args.fill:
        harness.log(f"filled {asyncio.run(fill_branch(url, args.fill))} seats of {args.fill}")
    rng = random.Random(args.seed)
    harness.RUNS.mkdir(exist_ok=True)
    log_path = harness.RUNS / f"{harness.stamp()}-suggest.log"
    extra = dict(item.split("=", 1) for item in args.env)
    server = harness.Server(database_url=url, workers=1, log_path=log_path, extra_env=extra)
    try:
        server.wait_ready()
        path, token = requests(1, branches, tokens, rng, full=args.fill)[0]
        check = asyncio.run(_one(server.port, path, token))
        harness.log(f"check: {check[0]} {check[1][:160]!r}")
        asyncio.run(
            fire(server.port, requests(args.warmup, branches, tokens, rng, full=args.fill), 2)
        )
        quiet = harness.wait_for_quiet(args.quiet_wait)
        work = requests(args.requests, branches, tokens, rng, full=args.fill)
        before = harness.cpu_snapshot(server.cpu_pids(), args.db)
        latencies, statuses, secs = asyncio.run(fire(server.port, work, args.concurrency))
        cpu = harness.cpu_used(before, harness.cpu_snapshot(server.cpu_pids(), args.db), secs)
    finally:
        server.stop()
    ms = sorted(latencies)
    record: dict[str, Any] = {
        "scenario": f"suggest-full:{args.fill}" if args.fill else "suggest",
        "version": harness.git_version(),
        "requests": len(ms),
        "concurrency": args.concurrency,
        "rps": round(len(ms) / secs, 1),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(ms[-1], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "statuses": statuses,
        "cpu_cores": cpu,
        "quiet": quiet,
        "server_log": harness.server_log_summary(log_path),
    }
    harness.append_jsonl("suggest.jsonl", record)
    for key, value in record.items():
        print(f"{key:>12}: {value}")


async def _one(port: int, path: str, token: str | None) -> tuple[int, bytes]:
    conn = await Connection.open(port)
    try:
        return await conn.get(path, token)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
