"""Outbox delivery latency for webhooks: commit -> received by a real HTTP receiver.

    .venv/bin/python loadtest/webhook_latency.py                    # 1,000 at 100/s
    .venv/bin/python loadtest/webhook_latency.py --rate 0           # 1,000 at once

A fresh database (``--db``, dropped and created on the server of ``--server``, migrated
to head) with one endpoint taking ``reservation.created``, an HTTP receiver
(http.server, threaded) on a free local port in a process of its own, and in this
process the app's scheduler (app/jobs/scheduler.py), so the webhook job runs at its
normal interval (app/jobs/webhooks.py INTERVAL_SECONDS) and posts signed requests
(``WEBHOOK_ALLOW_PRIVATE=true``: the receiver is on loopback). ``-n`` units of work are
committed through ``run_unit``, each a ``reservation.created`` event of its own
reservation (the real writer: one INSERT ... SELECT with the reservation's fields), at
``--rate`` per second (0: as fast as one connection commits). The time after each
COMMIT and the time the receiver got that reservation's event (both
``time.monotonic``, one clock for the machine) give the latency. Prints p50/p90/p99/max
and appends a JSON line to loadtest/runs/webhook_latency.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness
from outbox_latency import fresh_database, percentile

from app.cache import SeatCache
from app.clock import SystemClock
from app.db import webhooks as webhooks_db
from app.db.pool import create_pool
from app.jobs import webhooks as webhooks_job
from app.jobs.scheduler import start_scheduler
from app.realtime.broker import Broker
from app.realtime.publisher import Publisher
from app.services.unit_of_work import UnitOfWork, run_unit
from app.services.webhooks import new_secret
from app.settings import Settings


class _Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


def receiver_process(port: int, conn: Any) -> None:
    """The receiver's process: records the first arrival of each reservation's event
    (and counts repeats of a webhook-id) until told to stop, then sends them."""
    received: dict[int, float] = {}
    seen: set[str] = set()
    duplicates = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            now = time.monotonic()
            msg_id = self.headers.get("webhook-id", "")
            if msg_id in seen:
                duplicates[0] += 1
            seen.add(msg_id)
            received.setdefault(int(json.loads(body)["data"]["reservation_id"]), now)
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send("ready")
    conn.recv()
    server.shutdown()
    conn.send((received, duplicates[0]))


async def seed(url: str, n: int, hook_url: str) -> list[int]:
    """``n`` reservations tomorrow (one student each) and the endpoint."""
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
            "INSERT INTO users (student_id, name, password_hash) "
            "SELECT 'B' || lpad(n::text, 6, '0'), 'Bench Student ' || n, 'x' "
            "FROM generate_series(1, $1) n RETURNING id",
            n,
        )
        start = (datetime.now(UTC) + timedelta(days=1)).replace(
            hour=10, minute=0, second=0, microsecond=0
        )
        ids = []
        for seat, user in zip(seats, users, strict=True):
            ids.append(
                await conn.fetchval(
                    "INSERT INTO reservations (user_id, seat_id, start_time, end_time, status,"
                    " created_at, updated_at) VALUES ($1, $2, $3, $4, 'CONFIRMED', now(), now())"
                    " RETURNING id",
                    user["id"],
                    seat["id"],
                    start,
                    start + timedelta(hours=1),
                )
            )
        await webhooks_db.insert_endpoint(
            conn,
            url=hook_url,
            events=["reservation.created"],
            description="bench",
            secret=new_secret(),
            now=datetime.now(UTC),
        )
        return ids
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="events")
    parser.add_argument("--rate", type=float, default=100.0, help="commits per second; 0: burst")
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--db", default="dlsms_webhook_bench")
    args = parser.parse_args()

    port = harness.free_port()
    url = await fresh_database(args.server, args.db)
    ids = await seed(url, args.n, f"http://127.0.0.1:{port}/hook")
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=receiver_process, args=(port, child), daemon=True)
    server.start()
    assert parent.recv() == "ready"
    settings = Settings(
        DATABASE_URL=url,
        JWT_SECRET=SecretStr("bench-" + "x" * 40),
        DLSMS_ENV="test",
        WEBHOOK_ALLOW_PRIVATE=True,
        SWEEP_INTERVAL_SECONDS=3600,
        DB_POOL_MIN_SIZE=2,
        DB_POOL_MAX_SIZE=10,
    )
    pool = await create_pool(url, settings)
    publisher = Publisher(SeatCache(None, 10), Broker(None, None))
    scheduler = start_scheduler(pool, publisher, settings, SystemClock())
    committed: dict[int, float] = {}
    try:
        harness.log(
            f"{args.n} reservation.created events at {args.rate or 'max'}/s, job every "
            f"{webhooks_job.INTERVAL_SECONDS} s"
        )
        began = time.monotonic()
        for i, rid in enumerate(ids):
            if args.rate:
                delay = began + i / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

            async def work(uow: UnitOfWork, rid: int = rid) -> None:
                uow.outbox.webhook("reservation.created", reservation_id=rid)

            await run_unit(pool, publisher, now=datetime.now(UTC), work=work)
            committed[rid] = time.monotonic()
        produced = time.monotonic() - began
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            pending = await pool.fetchval(
                "SELECT count(*) FROM outbox WHERE channel = 'webhook' AND status = 'pending'"
            )
            if not pending:
                break
            await asyncio.sleep(0.2)
        queued = await pool.fetchval("SELECT count(*) FROM outbox WHERE channel = 'webhook'")
    finally:
        await scheduler.stop(10)
        await pool.close()
        parent.send("stop")
        received, duplicates = parent.recv()
        server.join(10)

    latencies = [(received[r] - committed[r]) * 1000 for r in committed if r in received]
    record: dict[str, Any] = {
        "when": harness.stamp(),
        "git": harness.git_version(),
        "n": args.n,
        "rate": args.rate,
        "interval_s": webhooks_job.INTERVAL_SECONDS,
        "queued": queued,
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
    harness.append_jsonl("webhook_latency.jsonl", record)


if __name__ == "__main__":
    asyncio.run(main())
