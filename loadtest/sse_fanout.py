"""SSE fan-out: 2,000 notification streams on one instance, memory per stream, and how
fast 100 simultaneous waitlist offers reach their subscribers.

    .venv/bin/python loadtest/sse_fanout.py                   # with Redis, then without
    .venv/bin/python loadtest/sse_fanout.py --mode redis --rounds 5
    .venv/bin/python loadtest/sse_fanout.py --help

Per mode (``redis``: REDIS_URL=redis://127.0.0.1:6379/4, flushed first; ``local``: no
REDIS_URL, in-process fan-out), on a freshly seeded database ``dlsms_sse``:

1. starts ``uvicorn app.main:app`` with one worker (started like bench.py does) and
   DB_POOL_MAX_SIZE=10, warms it up (a few requests, a few streams opened and closed);
2. reads the server's RSS/USS and open descriptors, opens 2,000 streams
   (``GET /notifications/stream``, one per seeded student, each with its own JWT),
   reads them again: (after - before) / 2,000 is the memory a stream costs; counts the
   app's PostgreSQL backends (streams must not hold pool connections) and the server's
   CPU while the streams sit idle for ``--hold`` seconds (one heartbeat each);
3. offer rounds (``--rounds``): 100 seats are booked (CONFIRMED, seeded) by 100
   "holder" users for a slot tomorrow; 100 of the subscribers each join the waitlist
   of one of those seats (POST /waitlist); then the 100 holders cancel at once
   (100 concurrent DELETE /reservations/{id} on 100 warm connections). Each
   subscriber's stream must deliver its ``waitlist.offer``; the other 1,900 streams
   stay open and must receive nothing;
4. closes the streams and stops the server it started (SIGTERM to its process group).

Delays, all on this machine's wall clock (the server, PostgreSQL and this process run
on the same host, so time.time() and the server's datetime.now() read one clock):

* ``from_commit``: from the moment the offer's transaction committed, as seen by a
  LISTEN connection in a process of its own (commit_probe.py; a trigger the harness
  adds to the bench database only: ``AFTER INSERT ON notifications ... pg_notify``;
  PostgreSQL delivers NOTIFY at COMMIT), to the event's arrival on the subscriber's
  stream. Closest to "commit to delivery" (the LISTEN path's own delay, well under a
  millisecond on an idle machine, is not included). ``--no-commit-probe`` leaves the trigger out.
* ``from_created``: from the notification's ``created_at`` (the service's ``now`` for
  the request, taken before the transaction began) to arrival: commit-to-delivery plus
  the request's pool wait and transaction.
* ``from_send``: from just before this process wrote the DELETE to arrival: what the
  cancelling user's click to the waiting user's screen costs, end to end.

Results: one JSON line per mode in loadtest/runs/sse_fanout.jsonl, server logs next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import clients
import harness
import psutil
import seed as seeding
import stats
from clients import Client, SseEvent, SseStream
from harness import RUNS, log, pg
from stats import Phase, dist_ms, iso, parse_iso
from stream_workers import StreamWorkers, split

from app.db.migrations import upgrade_to_head

DEFAULT_REDIS = "redis://127.0.0.1:6379/4"  # bench.py uses 3, the tests 7-15
SLOT = timedelta(hours=2)
METRICS = (
    "dlsms_sse_subscribers",
    "dlsms_db_pool_size",
    "dlsms_db_pool_in_use",
    "dlsms_db_pool_max",
)


def slot_start(first: datetime, round_no: int) -> datetime:
    return first + round_no * SLOT


def first_slot() -> datetime:
    """Tomorrow 08:00 UTC: future, inside the booking horizon, rounds 2 h apart."""
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, 8, tzinfo=UTC)


# --------------------------------------------------------------------------- seed


async def seed_db(args: argparse.Namespace) -> dict[str, Any]:
    """(Re)create the database: 1 branch, --offers seats, --subscribers students,
    --offers holders, and each holder's CONFIRMED booking of one seat for each round."""
    url = seeding.db_url(args.server, args.db)
    await seeding.recreate_database(args.server, args.db)
    await asyncio.to_thread(upgrade_to_head, url)
    first = first_slot()
    conn = await pg(url)
    try:
        async with conn.transaction():
            branch = await conn.fetchval(
                "INSERT INTO branches (name, timezone) VALUES ('SSE Library', 'UTC') RETURNING id"
            )
            await conn.execute(
                """INSERT INTO seats (branch_id, area, label, has_power, has_monitor, status)
                   SELECT $1, 'Quiet Zone', 'Q-' || lpad(i::text, 4, '0'), true, false, 'ACTIVE'
                   FROM generate_series(1, $2) i""",
                branch,
                args.offers,
            )
            pw = bcrypt.hashpw(b"password123", bcrypt.gensalt(rounds=4)).decode()
            for prefix, n in (("S", args.subscribers), ("H", args.offers)):
                await conn.execute(
                    """INSERT INTO users (student_id, name, password_hash, role)
                       SELECT $1 || lpad(i::text, 6, '0'), 'SSE ' || $1 || i, $3, 'student'
                       FROM generate_series(1, $2) i""",
                    prefix,
                    n,
                    pw,
                )
            await conn.execute(
                """INSERT INTO reservations (user_id, seat_id, start_time, end_time, status,
                                             created_at, updated_at)
                   SELECT h.id, s.id, $1::timestamptz + r * interval '2 hours',
                          $1::timestamptz + (r + 1) * interval '2 hours', 'CONFIRMED', now(), now()
                   FROM (SELECT id, row_number() OVER (ORDER BY id) n FROM users
                         WHERE student_id LIKE 'H%') h
                   JOIN (SELECT id, row_number() OVER (ORDER BY id) n FROM seats) s ON s.n = h.n,
                        generate_series(0, $2 - 1) r""",
                first,
                args.rounds,
            )
            if args.commit_probe:
                await conn.execute(
                    """CREATE FUNCTION loadtest_commit_probe() RETURNS trigger
                       LANGUAGE plpgsql AS $$
                       BEGIN PERFORM pg_notify('loadtest_commit', NEW.id::text); RETURN NULL; END
                       $$;
                       CREATE TRIGGER loadtest_commit_probe AFTER INSERT ON notifications
                       FOR EACH ROW EXECUTE FUNCTION loadtest_commit_probe();"""
                )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return {"first_slot": iso(first)}


async def load_people(url: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    conn = await pg(url)
    try:
        rows = await conn.fetch("SELECT id, student_id FROM users ORDER BY id")
    finally:
        await conn.close()
    subs = [(r["id"], r["student_id"]) for r in rows if r["student_id"].startswith("S")]
    holders = [(r["id"], r["student_id"]) for r in rows if r["student_id"].startswith("H")]
    return subs, holders


async def holder_bookings(url: str, start: datetime) -> list[dict[str, Any]]:
    """The holders' CONFIRMED bookings of one round, by seat order."""
    conn = await pg(url)
    try:
        rows = await conn.fetch(
            """SELECT id, user_id, seat_id FROM reservations
               WHERE start_time = $1 AND status = 'CONFIRMED' ORDER BY seat_id""",
            start,
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def app_backends(url: str, db: str) -> dict[str, int]:
    """The server's PostgreSQL connections to the bench database (not the harness's)."""
    conn = await pg(url)
    try:
        row = await conn.fetchrow(
            """SELECT count(*) AS total, count(*) FILTER (WHERE state = 'active') AS active,
                      count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS in_tx
               FROM pg_stat_activity
               WHERE datname = $1 AND coalesce(application_name, '') <> 'loadtest-harness'
                 AND backend_type = 'client backend'""",
            db,
        )
    finally:
        await conn.close()
    assert row is not None
    return dict(row)


# --------------------------------------------------------------------------- measure


def memory(pid: int) -> dict[str, Any]:
    p = psutil.Process(pid)
    full = p.memory_full_info()
    return {"rss": full.rss, "uss": full.uss, "fds": p.num_fds(), "threads": p.num_threads()}


class Inbox:
    """What the streams received: offers by user (reported by the stream workers)."""

    def __init__(self) -> None:
        self.offers: dict[int, tuple[float, dict[str, Any]]] = {}
        self.duplicates = 0
        self.other: Counter[str] = Counter()
        self.arrived = asyncio.Event()
        self.expected: set[int] = set()

    def __call__(self, stream: SseStream, ev: SseEvent) -> None:
        """An event on a stream of this process (the warm-up's)."""
        if ev.event != "waitlist.offer":
            self.other[ev.event or "?"] += 1
            return
        self.offer(stream.key, ev.arrived, json.loads(ev.data))

    def report(self, _child: int, message: dict[str, Any]) -> None:
        """A stream worker's report: an offer arrived on one of its streams."""
        if message["t"] == "event":
            self.offer(message["key"], message["arrived"], message["body"])

    def offer(self, user_id: int, arrived: float, body: dict[str, Any]) -> None:
        if user_id in self.offers:
            self.duplicates += 1
            return
        self.offers[user_id] = (arrived, body)
        if self.expected and self.expected <= self.offers.keys():
            self.arrived.set()


async def offer_round(
    args: argparse.Namespace,
    url: str,
    base: str,
    round_no: int,
    first: datetime,
    subs: list[tuple[int, str]],
    tokens: dict[int, str],
    inbox: Inbox,
    commits: dict[int, float],
) -> dict[str, Any]:
    start = slot_start(first, round_no)
    end = start + SLOT
    bookings = await holder_bookings(url, start)
    waiters = subs[round_no * args.offers : (round_no + 1) * args.offers]
    assert len(bookings) == len(waiters) == args.offers, (len(bookings), len(waiters))
    pool = Client(base, args.offers)
    await pool.warm()

    join = Phase("waitlist join")
    entries: dict[int, int] = {}

    async def join_one(user_id: int, seat_id: int) -> None:
        body = {"seat_id": seat_id, "start_time": iso(start), "end_time": iso(end)}
        r = await pool.request("POST", "/waitlist", token=tokens[user_id], body=body)
        join.record(r.latency, r.sent_at, r.label)
        if r.status == 201:
            entries[user_id] = r.json["id"]

    await asyncio.gather(
        *(join_one(uid, b["seat_id"]) for (uid, _), b in zip(waiters, bookings, strict=True))
    )
    join.done()
    seat_waiter = {b["seat_id"]: uid for (uid, _), b in zip(waiters, bookings, strict=True)}

    inbox.offers.clear()
    inbox.arrived.clear()
    inbox.expected = set(entries)
    await asyncio.sleep(1.0)
    await pool.warm()  # fresh connections: the DELETEs must not pay for a connect

    cancel = Phase("cancel")
    sent: dict[int, tuple[float, float]] = {}  # seat -> (sent_at, answered_at)
    go = asyncio.Event()

    async def cancel_one(b: dict[str, Any]) -> None:
        await go.wait()
        r = await pool.request("DELETE", f"/reservations/{b['id']}", token=tokens[b["user_id"]])
        cancel.record(r.latency, r.sent_at, r.label)
        sent[b["seat_id"]] = (r.sent_at, time.time())

    # one warm connection for each DELETE: the pool holds exactly args.offers
    tasks = [asyncio.create_task(cancel_one(b)) for b in bookings]
    await asyncio.sleep(0.05)  # every task waits on `go`
    cancel.started = time.perf_counter()
    cancel.t0_wall = time.time()
    go.set()
    await asyncio.gather(*tasks)
    cancel.done()
    await pool.aclose()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(inbox.arrived.wait(), args.timeout)
    await asyncio.sleep(0.5)  # a late duplicate or a stray event would show up now

    from_send, from_created, from_commit, before_answer = [], [], [], 0
    missing = sorted(set(entries) - inbox.offers.keys())
    wrong_seat = 0
    for seat_id, uid in seat_waiter.items():
        if uid not in inbox.offers:
            continue
        arrived, body = inbox.offers[uid]
        if body["data"]["seat_id"] != seat_id:
            wrong_seat += 1
        sent_at, answered_at = sent[seat_id]
        from_send.append(arrived - sent_at)
        from_created.append(arrived - parse_iso(body["created_at"]))
        if body["id"] in commits:
            from_commit.append(arrived - commits[body["id"]])
        if arrived < answered_at:
            before_answer += 1
    return {
        "round": round_no,
        "slot": [iso(start), iso(end)],
        "joins": join.summary(),
        "cancels": cancel.summary(),
        "expected": len(entries),
        "arrived": len(inbox.offers),
        "missing_users": missing,
        "duplicates": inbox.duplicates,
        "wrong_seat": wrong_seat,
        "arrived_before_delete_answer": before_answer,
        "delay_from_commit_ms": dist_ms(from_commit),
        "delay_from_created_ms": dist_ms(from_created),
        "delay_from_send_ms": dist_ms(from_send),
        "_raw": {
            "from_commit": from_commit,
            "from_created": from_created,
            "from_send": from_send,
            "delete": cancel.latencies,
        },
    }


async def measure(
    args: argparse.Namespace, server: harness.Server, url: str, first: str, name: str
) -> dict[str, Any]:
    base = server.base
    pids = server.worker_pids()
    assert len(pids) == 1, pids
    pid = pids[0]
    subs, holders = await load_people(url)
    tokens = harness.mint_tokens(subs + holders)
    inbox = Inbox()
    out: dict[str, Any] = {"server_pid": pid}

    # Warm-up: the code paths a stream and a cancel take, once, before the baseline.
    stream_clients = clients.StreamClients(base)
    pool = Client(base, 4)
    for _ in range(20):
        await pool.request("GET", "/health")
    r = await pool.request("GET", "/notifications", token=tokens[subs[0][0]])
    assert r.status == 200, (r.status, r.body[:300])
    await pool.aclose()
    warm = [SseStream(stream_clients.get(0), tokens[uid], inbox, key=uid) for uid, _ in subs[-20:]]
    await clients.open_streams(warm, 20)
    for s in warm:
        s.close()
    await asyncio.sleep(2.0)
    mem0 = memory(pid)
    out["before"] = {**mem0, "pg_backends": await app_backends(url, args.db)}
    log(f"  server pid {pid}: rss {mem0['rss'] / 2**20:.1f} MiB, {mem0['fds']} fds before")

    # The streams live in --client-processes children (stream_workers.py), a slice each:
    # 10,000 streams in one Python process made the client the bottleneck.
    processes = max(1, min(args.client_processes, len(subs)))
    specs = [
        {
            "base": base,
            "streams": [[uid, tokens[uid]] for uid, _ in mine],
            "open_concurrency": max(1, args.open_concurrency // processes),
        }
        for mine in split(subs, processes)
    ]
    workers = StreamWorkers(specs, inbox.report, RUNS, name)
    try:
        return await measure_with(args, server, url, first, workers, out, mem0, inbox, subs, tokens)
    except BaseException:
        await workers.kill()
        raise
    finally:
        await stream_clients.aclose()


async def measure_with(
    args: argparse.Namespace,
    server: harness.Server,
    url: str,
    first: str,
    workers: StreamWorkers,
    out: dict[str, Any],
    mem0: dict[str, Any],
    inbox: Inbox,
    subs: list[tuple[int, str]],
    tokens: dict[int, str],
) -> dict[str, Any]:
    base, pid = server.base, out["server_pid"]
    opening = harness.StepCpu(server.cpu_pids(), args.db, [])
    await workers.start()
    opening.add(workers.pids)
    opened = await workers.opened()
    out["open"] = opened
    out["open_cpu"] = opening.end()
    log(
        f"  opened {opened['open']}/{opened['streams']} streams in {opened['wall_s']}s "
        f"(handshake p50 {opened['handshake_ms']['p50']} ms, p99 {opened['handshake_ms']['p99']}"
        f" ms) {opened['failures'] or ''}"
    )
    await asyncio.sleep(3.0)
    mem1 = memory(pid)
    n_open = opened["open"]
    out["with_streams"] = {**mem1, "pg_backends": await app_backends(url, args.db)}
    probe = Client(base, 1)
    r = await probe.request("GET", "/metrics")
    await probe.aclose()
    out["with_streams"]["metrics"] = stats.metrics(r.body.decode(), METRICS)
    delta = mem1["rss"] - mem0["rss"]
    out["per_stream"] = {
        "rss_bytes": round(delta / max(n_open, 1)),
        "uss_bytes": round((mem1["uss"] - mem0["uss"]) / max(n_open, 1)),
        "streams": n_open,
    }
    log(
        f"  with {n_open} streams: rss {mem1['rss'] / 2**20:.1f} MiB (+{delta / 2**20:.1f} MiB,"
        f" {delta / max(n_open, 1) / 1024:.1f} KiB a stream), {mem1['fds']} fds, "
        f"app PostgreSQL backends {out['with_streams']['pg_backends']}"
    )

    # Idle: every stream gets a heartbeat at least every 15 s.
    bytes0 = await workers.bytes_read()
    idling = harness.StepCpu(server.cpu_pids(), args.db, workers.pids)
    t0 = time.monotonic()
    await asyncio.sleep(args.hold)
    held = time.monotonic() - t0
    idle = idling.end()
    out["idle"] = {
        "seconds": round(held, 1),
        "bytes_received": await workers.bytes_read() - bytes0,  # heartbeats
        "server_cores": idle["server"],
        "cpu_cores": idle,
    }
    log(
        f"  idle {held:.0f}s: {out['idle']['bytes_received']:,} bytes of heartbeats, server "
        f"{idle['server']:.3f} cores"
    )

    # Commit probe: NOTIFY reaches a LISTEN connection at COMMIT; it listens in a process
    # of its own (commit_probe.py), which stamps each one the moment it arrives.
    commits: dict[int, float] = {}
    listener: asyncio.subprocess.Process | None = None
    probe_reader: asyncio.Task[None] | None = None
    if args.commit_probe:
        listener = await asyncio.create_subprocess_exec(
            sys.executable,
            str(harness.HERE / "commit_probe.py"),
            url,
            "loadtest_commit",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert listener.stdout is not None
        assert (await listener.stdout.readline()).strip() == b"listening"

        async def read_probe(stdout: asyncio.StreamReader) -> None:
            while line := await stdout.readline():
                payload, at = line.split()
                commits.setdefault(int(payload), float(at))

        probe_reader = asyncio.create_task(read_probe(listener.stdout))

    rounds = []
    first_dt = datetime.fromisoformat(first.replace("Z", "+00:00"))
    rounds_step = harness.StepCpu(server.cpu_pids(), args.db, workers.pids)
    for round_no in range(args.rounds):
        res = await offer_round(args, url, base, round_no, first_dt, subs, tokens, inbox, commits)
        rounds.append(res)
        c, f, s = (
            res["delay_from_commit_ms"],
            res["delay_from_created_ms"],
            res["delay_from_send_ms"],
        )
        log(
            f"  round {round_no}: {res['arrived']}/{res['expected']} offers arrived; "
            f"commit->stream p50 {c['p50']} p99 {c['p99']} max {c['max']} ms; "
            f"created_at->stream p50 {f['p50']} p99 {f['p99']} max {f['max']} ms; "
            f"DELETE sent->stream p50 {s['p50']} p99 {s['p99']} max {s['max']} ms; "
            f"DELETE {res['cancels']['status']} p50 {res['cancels']['latency_ms']['p50']} "
            f"p99 {res['cancels']['latency_ms']['p99']} ms"
        )
        await asyncio.sleep(1.0)
    rounds_cpu = rounds_step.end()
    if listener is not None and listener.stdin is not None and probe_reader is not None:
        listener.stdin.close()
        await listener.wait()
        await probe_reader
    out["rounds"] = [{k: v for k, v in r.items() if k != "_raw"} for r in rounds]
    out["rounds_cpu_cores"] = rounds_cpu
    raw = {k: [x for r in rounds for x in r["_raw"][k]] for k in rounds[0]["_raw"]}
    out["all_rounds"] = {
        "expected": sum(r["expected"] for r in rounds),
        "arrived": sum(r["arrived"] for r in rounds),
        "duplicates": sum(r["duplicates"] for r in rounds),
        "wrong_seat": sum(r["wrong_seat"] for r in rounds),
        "delay_from_commit_ms": dist_ms(raw["from_commit"]),
        "delay_from_created_ms": dist_ms(raw["from_created"]),
        "delay_from_send_ms": dist_ms(raw["from_send"]),
        "delete_latency_ms": dist_ms(raw["delete"]),
    }
    out["after_rounds"] = memory(pid)
    finals = await workers.stop()  # closes the streams
    other: Counter[str] = Counter(inbox.other)
    ended: Counter[str] = Counter()
    for f in finals:
        other.update(f["other_events"])
        ended.update(f["ended_early"])
    out["events_other_than_offers"] = dict(other)
    out["streams_ended_early"] = ended
    out["client"] = {
        "processes": len(finals),
        "cpu_s": [f["cpu_s"] for f in finals],
        "max_rss_mib": [round(f["max_rss_kib"] / 1024, 1) for f in finals],
        "orchestrator_rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1),
    }
    await asyncio.sleep(3.0)
    out["after_close"] = {**memory(pid), "pg_backends": await app_backends(url, args.db)}
    return out


# --------------------------------------------------------------------------- run


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    url = seeding.db_url(args.server, args.db)
    log(f"== sse-fanout, mode {mode}: waiting for a quiet machine")
    quiet = harness.wait_for_quiet(args.quiet_wait)
    log(f"  load average {quiet['loadavg']}; seeding {url}")
    seeded = asyncio.run(seed_db(args))
    extra_env = {
        "DB_POOL_MAX_SIZE": str(args.pool_max),
        "DB_POOL_MIN_SIZE": str(min(2, args.pool_max)),
        "SSE_HEARTBEAT_SECONDS": "15",
    }
    if mode == "redis":
        harness.flush_redis_db(args.redis_url)
        extra_env["REDIS_URL"] = args.redis_url
    for kv in args.env:
        k, _, v = kv.partition("=")
        extra_env[k] = v
    name = f"{harness.stamp()}-sse-fanout-{mode}"
    RUNS.mkdir(exist_ok=True)
    server = harness.Server(
        database_url=url,
        workers=1,
        log_path=RUNS / f"{name}.server.log",
        extra_env=extra_env,
        uvicorn_log_level=args.uvicorn_log_level,
        uvicorn_args=tuple(args.uvicorn_arg),
    )
    log(f"  server pid {server.proc.pid} on {server.base} env {extra_env}")
    try:
        server.wait_ready()
        with harness.WorkerMonitor(server) as workers_seen:
            result = asyncio.run(measure(args, server, url, seeded["first_slot"], name))
    finally:
        server.stop()
        log(f"  server pid {server.proc.pid} stopped (exit {server.proc.returncode})")
    record = {
        "scenario": "sse-fanout",
        "mode": mode,
        "name": name,
        "command": "loadtest/sse_fanout.py " + " ".join(args.argv),
        "client": "httpx + httpx-sse",
        "version": harness.git_version(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**quiet, "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "server_env": extra_env,
        "server_cmd": " ".join(server.cmd[server.cmd.index(harness.APP) :]),
        "worker_events": workers_seen.events,
        "subscribers": args.subscribers,
        "offers_per_round": args.offers,
        **result,
        "server_log": harness.server_log_summary(server.log_path),
    }
    path = harness.append_jsonl("sse_fanout.jsonl", record)
    print_summary(record)
    log(f"  appended to {path}")
    return record


def print_summary(r: dict[str, Any]) -> None:
    mib = 2**20
    b, w, a = r["before"], r["with_streams"], r["all_rounds"]
    print(
        f"\n== sse-fanout, {r['mode']}: {r['open']['open']} streams, 1 worker, "
        f"load avg {r['machine']['loadavg']} -> {r['machine']['loadavg_after']}, others "
        f"during the offer rounds: {r['rounds_cpu_cores'].get('others')} cores ==\n"
        f"  server RSS {b['rss'] / mib:.1f} -> {w['rss'] / mib:.1f} MiB: "
        f"{r['per_stream']['rss_bytes'] / 1024:.1f} KiB a stream "
        f"(USS {r['per_stream']['uss_bytes'] / 1024:.1f} KiB); fds {b['fds']} -> {w['fds']}; "
        f"after close {r['after_close']['rss'] / mib:.1f} MiB\n"
        f"  app PostgreSQL backends with all streams open: {w['pg_backends']}; "
        f"/metrics {w.get('metrics')}\n"
        f"  idle: {r['idle']['server_cores']} server cores over {r['idle']['seconds']} s "
        f"({r['idle']['bytes_received']:,} bytes of heartbeats)\n"
        f"  offers: {a['arrived']}/{a['expected']} arrived, {a['duplicates']} duplicates, "
        f"{a['wrong_seat']} on a wrong seat, other events {r['events_other_than_offers']}\n"
        f"  commit -> stream   {a['delay_from_commit_ms']}\n"
        f"  created -> stream  {a['delay_from_created_ms']}\n"
        f"  DELETE -> stream   {a['delay_from_send_ms']}\n"
        f"  streams ended early: {dict(r['streams_ended_early']) or 0}; "
        f"server log: {r['server_log'] or 'clean'}",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--mode",
        action="append",
        choices=("redis", "local"),
        help="fan-out through Redis or in-process; repeat for both [redis, then local]",
    )
    p.add_argument("--subscribers", type=int, default=2000)
    p.add_argument("--offers", type=int, default=100, help="simultaneous offers a round")
    p.add_argument("--rounds", type=int, default=3, help="offer rounds (2 h slots from 08:00)")
    p.add_argument("--pool-max", type=int, default=10, help="DB_POOL_MAX_SIZE of the server")
    p.add_argument("--open-concurrency", type=int, default=100, help="handshakes at once")
    p.add_argument(
        "--client-processes",
        type=int,
        default=4,
        help="processes holding the streams, a slice each [4]",
    )
    p.add_argument("--hold", type=float, default=16.0, help="idle seconds with all streams")
    p.add_argument("--timeout", type=float, default=30.0, help="wait for offers, seconds")
    p.add_argument("--no-commit-probe", dest="commit_probe", action="store_false")
    p.add_argument("--redis-url", default=DEFAULT_REDIS)
    p.add_argument("--server", default=seeding.DEFAULT_SERVER)
    p.add_argument("--db", default="dlsms_sse")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    p.add_argument(
        "--uvicorn-arg",
        action="append",
        default=[],
        help="extra uvicorn option, e.g. --uvicorn-arg=--timeout-worker-healthcheck=30",
    )
    p.add_argument(
        "--uvicorn-log-level",
        default="warning",
        help="uvicorn's own log [warning]; info also logs every request (the app routes "
        "uvicorn.access to its handler), which costs throughput",
    )
    p.add_argument("--quiet-wait", type=float, default=600, help="wait for no wrk/pytest, s")
    args = p.parse_args()
    args.mode = args.mode or ["redis", "local"]
    if args.rounds * args.offers > args.subscribers:
        p.error("--rounds x --offers must not exceed --subscribers")
    if args.rounds > 7:
        p.error("--rounds at most 7 (2 h slots from 08:00 within one day)")
    if not args.db.startswith("dlsms_") or args.db in ("dlsms_bench",):
        p.error("--db must be a dedicated dlsms_* database (it is dropped and recreated)")
    args.argv = sys.argv[1:]
    return args


def main() -> None:
    args = parse_args()
    # SIGTERM (e.g. `kill`, or a background job whose SIGINT is ignored) unwinds like
    # Ctrl-C, so the server this script started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # The server (started from here) holds every stream; the stream workers raise their own.
    harness.raise_nofile(args.subscribers + 1000)
    for mode in args.mode:
        run_mode(mode, args)


if __name__ == "__main__":
    main()
