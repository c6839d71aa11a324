"""Outbox delivery latency: commit -> accepted by a real SMTP server, for e-mail.

    .venv/bin/python loadtest/outbox_latency.py                     # 1,000 at 100/s
    .venv/bin/python loadtest/outbox_latency.py --rate 0            # 1,000 at once

A fresh database (``--db``, dropped and created on the server of ``--server``, migrated
to head), an aiosmtpd server on a free local port in a process of its own (as a relay
is), and in this process the app's scheduler (app/jobs/scheduler.py) with SMTP_URL pointing there,
so the delivery job runs at its normal interval (app/jobs/outbox.py INTERVAL_SECONDS).
``-n`` units of work are committed through ``run_unit``, each queueing a booking
confirmation (the real writer: recipients and reservation read, Jinja2 templates, the
.ics) for its own student, at ``--rate`` per second (0: as fast as one connection
commits). The time after each COMMIT and the time the SMTP server accepted that
student's message (both ``time.monotonic``, one clock for the machine) give the
latency. Prints p50/p90/p99/max and appends a JSON line to loadtest/runs/outbox_latency.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness

from app.cache import SeatCache
from app.clock import SystemClock
from app.db.migrations import upgrade_to_head
from app.db.pool import create_pool
from app.jobs import outbox as outbox_job
from app.jobs.scheduler import start_scheduler
from app.realtime.broker import Broker
from app.realtime.publisher import Publisher
from app.services.mail import MailKind
from app.services.outbox import MailWriter
from app.services.unit_of_work import UnitOfWork, run_unit
from app.settings import Settings


class Sink:
    """Records when each recipient's message was accepted."""

    def __init__(self) -> None:
        self.accepted: dict[str, float] = {}
        self.duplicates = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        now = time.monotonic()
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.accepted:
                self.duplicates += 1
            self.accepted.setdefault(rcpt, now)
        return "250 Message accepted for delivery"


def smtp_process(port: int, conn: Any) -> None:
    """The SMTP server's process: runs until told to stop, then sends what it accepted."""
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    conn.send("ready")
    conn.recv()
    controller.stop()
    conn.send((sink.accepted, sink.duplicates))


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def fresh_database(server: str, name: str) -> str:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(server, name)
    await asyncio.to_thread(upgrade_to_head, url)
    return url


async def seed(url: str, n: int) -> list[tuple[int, int, str]]:
    """``n`` students with an address, each with one reservation tomorrow."""
    conn = await asyncpg.connect(url)
    try:
        branch = await conn.fetchval("INSERT INTO branches (name) VALUES ('Bench') RETURNING id")
        seats = await conn.fetch(
            "INSERT INTO seats (branch_id, area, label) "
            "SELECT $1, 'Quiet', 'S' || n FROM generate_series(1, $2) n RETURNING id",
            branch,
            n,
        )
        users = await conn.fetch(
            "INSERT INTO users (student_id, name, email, password_hash) "
            "SELECT 'B' || lpad(n::text, 6, '0'), 'Bench Student ' || n, "
            "'b' || n || '@bench.example', 'x' FROM generate_series(1, $1) n "
            "RETURNING id, email",
            n,
        )
        start = (datetime.now(UTC) + timedelta(days=1)).replace(
            hour=10, minute=0, second=0, microsecond=0
        )
        rows = []
        for seat, user in zip(seats, users, strict=True):
            rid = await conn.fetchval(
                "INSERT INTO reservations (user_id, seat_id, start_time, end_time, status, "
                "created_at, updated_at) VALUES ($1, $2, $3, $4, 'CONFIRMED', now(), now()) "
                "RETURNING id",
                user["id"],
                seat["id"],
                start,
                start + timedelta(hours=1),
            )
            rows.append((user["id"], rid, user["email"]))
        return rows
    finally:
        await conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="messages")
    parser.add_argument("--rate", type=float, default=100.0, help="commits per second; 0: burst")
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--db", default="dlsms_outbox_bench")
    args = parser.parse_args()

    url = await fresh_database(args.server, args.db)
    rows = await seed(url, args.n)
    port = harness.free_port()
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=smtp_process, args=(port, child), daemon=True)
    server.start()
    assert parent.recv() == "ready"
    settings = Settings(
        DATABASE_URL=url,
        JWT_SECRET=SecretStr("bench-" + "x" * 40),
        DLSMS_ENV="test",
        SMTP_URL=SecretStr(f"smtp://127.0.0.1:{port}"),
        MAIL_FROM="Bench <bench@bench.example>",
        PUBLIC_URL="https://seats.bench.example",
        SWEEP_INTERVAL_SECONDS=3600,
        DB_POOL_MIN_SIZE=2,
        DB_POOL_MAX_SIZE=10,
    )
    pool = await create_pool(url, settings)
    publisher = Publisher(SeatCache(None, 10), Broker(None, None), MailWriter(settings))
    scheduler = start_scheduler(pool, publisher, settings, SystemClock())
    committed: dict[str, float] = {}
    try:
        harness.log(
            f"{args.n} confirmations at {args.rate or 'max'}/s, job every "
            f"{outbox_job.INTERVAL_SECONDS} s"
        )
        began = time.monotonic()
        for i, (user_id, reservation_id, address) in enumerate(rows):
            if args.rate:
                delay = began + i / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

            async def work(
                uow: UnitOfWork, user_id: int = user_id, rid: int = reservation_id
            ) -> None:
                uow.mail(user_id, MailKind.BOOKING_CONFIRMED, reservation_id=rid)

            await run_unit(pool, publisher, now=datetime.now(UTC), work=work)
            committed[address] = time.monotonic()
        produced = time.monotonic() - began
        # Wait until the queue is empty (the job marks each message sent after acceptance).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            pending = await pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'")
            if not pending:
                break
            await asyncio.sleep(0.2)
    finally:
        await scheduler.stop(10)
        await pool.close()
        parent.send("stop")
        accepted, duplicates = parent.recv()
        server.join(10)

    latencies = [(accepted[a] - committed[a]) * 1000 for a in committed if a in accepted]
    record: dict[str, Any] = {
        "when": harness.stamp(),
        "git": harness.git_version(),
        "n": args.n,
        "rate": args.rate,
        "interval_s": outbox_job.INTERVAL_SECONDS,
        "produced_s": round(produced, 2),
        "delivered": len(latencies),
        "duplicates": duplicates,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p90_ms": round(percentile(latencies, 90), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
    }
    harness.log(str(record))
    harness.append_jsonl("outbox_latency.jsonl", record)


if __name__ == "__main__":
    asyncio.run(main())
