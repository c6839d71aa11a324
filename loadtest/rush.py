"""Finals-week rush: 5,000 students, 1,000 seats, one morning slot; then the waitlist.

    .venv/bin/python loadtest/rush.py                    # 1 worker, then 2
    .venv/bin/python loadtest/rush.py -w 2 --pick random
    .venv/bin/python loadtest/rush.py --help

For each worker count, on a freshly seeded database ``dlsms_rush`` (``--branches`` 5
branches x 200 ACTIVE seats = ``--seats`` 1,000; ``--students`` 5,000 students
R000001..; nothing booked), with a server started like bench.py's (uvicorn,
``--workers N``, REDIS_URL=redis://127.0.0.1:6379/6 flushed first,
SCHEDULER_ENABLED=false, default pool of 20 a worker), for the slot tomorrow
09:00-12:00 UTC:

1. book: every student, in a shuffled order, ``--concurrency`` (150) at a time on
   keep-alive connections, makes one attempt: ``--pick listed`` (default) reads the
   free seats of a random branch (``GET /seats?branch=&available_only=true&start_time=
   &end_time=``, cached in Redis) and books a random one of them (a random seat of
   that branch when none is listed); ``--pick random`` books a random seat of all.
   5,000 ``POST /reservations``;
2. join: every student without a seat joins the waitlist of that branch
   (``POST /waitlist {branch, start_time, end_time}``); on 409 ``slot_available`` (a
   seat of the branch is still free) they read the listing, try to book a free seat,
   and join again if that failed (at most 5 times);
3. streams: every waiting student opens ``GET /notifications/stream`` with its token;
4. cancel: 30 % (``--cancel-share``) of the students holding a seat cancel at once
   (``DELETE /reservations/{id}``, all queued at the same moment on ``--concurrency``
   connections). Each cancellation offers the seat to the oldest waiting entry of the
   branch (a HELD reservation and a ``waitlist.offer`` notification); the offered
   student claims it as soon as the event arrives on its stream
   (``POST /waitlist/{entry_id}/claim``, on another ``--concurrency`` connections);
5. settle: done when every cancel was answered, every offer seen on a stream was
   claimed, and PostgreSQL agrees (no HELD reservation left in the slot, no lost
   offer). Offers that never arrive on a stream are found after ``--settle-timeout``
   seconds of no progress, reported, and claimed through ``GET /waitlist``.
   Time to settle = from the moment the cancels are released to the last claim answer.

Unless ``--no-analyze``, the harness runs ANALYZE on reservations and waitlist_entries
after phases 1 and 2 (autovacuum cannot keep up with tables that fill in seconds, and
with an empty table's statistics the offer query takes seconds: see loadtest/README.md).

Checks (SQL, printed, all expected 0): overlapping active reservations of one seat and
of one user (seed.py's self-joins), and lost offers: a cancelled seat-interval that is
not covered again by an active reservation while a WAITING entry of its branch (or of
that seat) fits in it, free for that entry's owner too (LOST_OFFERS_SQL).

Results: one JSON line per run in loadtest/runs/rush.jsonl; server logs next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
import urllib.parse
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aload
import bcrypt
import seed as seeding
from aload import ConnPool, Phase, SseEvent, SseStream, dist_ms, iso, log, parse_iso, pg

from app.db.migrations import upgrade_to_head

DEFAULT_REDIS = "redis://127.0.0.1:6379/6"  # bench.py uses 3, sse_fanout.py 4, tests 15
ACTIVE = seeding.ACTIVE
RETRIES = 3  # attempts of a cancel or claim whose connection broke (no answer)

# Seat-intervals released by the cancellations ($1: their reservation ids) that sit idle
# although a WAITING entry would fit: same branch (branch-level, or that very seat),
# its whole interval inside the released one, the seat free over it, and its owner
# holding nothing that overlaps it. Each such cancelled reservation is a lost offer.
LOST_OFFERS_SQL = f"""
    SELECT count(*) FROM reservations c JOIN seats s ON s.id = c.seat_id
    WHERE c.id = ANY($1::bigint[]) AND c.status = 'CANCELLED' AND s.status = 'ACTIVE'
      -- quick exit: an active reservation covers all of the released time again
      AND NOT EXISTS (
          SELECT 1 FROM reservations a
          WHERE a.seat_id = c.seat_id AND a.status IN {ACTIVE}
            AND tstzrange(a.start_time, a.end_time, '[)')
                @> tstzrange(greatest(c.start_time, c.cancelled_at), c.end_time, '[)'))
      AND EXISTS (
          SELECT 1 FROM waitlist_entries w
          WHERE w.status = 'WAITING' AND w.branch_id = s.branch_id
            AND (w.seat_id IS NULL OR w.seat_id = c.seat_id)
            AND tstzrange(w.start_time, w.end_time, '[)')
                <@ tstzrange(greatest(c.start_time, c.cancelled_at), c.end_time, '[)')
            AND NOT EXISTS (
                SELECT 1 FROM reservations a
                WHERE a.seat_id = c.seat_id AND a.status IN {ACTIVE}
                  AND tstzrange(a.start_time, a.end_time, '[)')
                      && tstzrange(w.start_time, w.end_time, '[)'))
            AND NOT EXISTS (
                SELECT 1 FROM reservations u
                WHERE u.user_id = w.user_id AND u.status IN {ACTIVE}
                  AND tstzrange(u.start_time, u.end_time, '[)')
                      && tstzrange(w.start_time, w.end_time, '[)')))
"""
# The cancelled seat-intervals covered again by an active reservation (for the report).
RECOVERED_SQL = f"""
    SELECT count(*) FROM reservations c
    WHERE c.id = ANY($1::bigint[]) AND c.status = 'CANCELLED' AND EXISTS (
        SELECT 1 FROM reservations a
        WHERE a.seat_id = c.seat_id AND a.status IN {ACTIVE}
          AND tstzrange(a.start_time, a.end_time, '[)')
              @> tstzrange(c.start_time, c.end_time, '[)'))
"""


def the_slot() -> tuple[datetime, datetime]:
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    start = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, tzinfo=UTC)
    return start, start + timedelta(hours=3)


# --------------------------------------------------------------------------- seed


async def seed_db(args: argparse.Namespace) -> None:
    url = seeding.db_url(args.server, args.db)
    await seeding.recreate_database(args.server, args.db)
    await asyncio.to_thread(upgrade_to_head, url)
    conn = await pg(url)
    try:
        async with conn.transaction():
            names = seeding.BRANCH_NAMES[: args.branches] + [
                f"Branch {i}" for i in range(len(seeding.BRANCH_NAMES) + 1, args.branches + 1)
            ]
            branch_ids = [
                await conn.fetchval(
                    "INSERT INTO branches (name, timezone) VALUES ($1, 'UTC') RETURNING id", n
                )
                for n in names
            ]
            await conn.execute(
                """INSERT INTO seats (branch_id, area, label, has_power, has_monitor, status)
                   SELECT ($2::bigint[])[1 + i % cardinality($2::bigint[])],
                          ($3::text[])[1 + (i / cardinality($2::bigint[])) % 5],
                          'R-' || lpad((i / cardinality($2::bigint[]) + 1)::text, 4, '0'),
                          i % 3 <> 0, i % 4 = 0, 'ACTIVE'
                   FROM generate_series(0, $1 - 1) i""",
                args.seats,
                branch_ids,
                seeding.AREAS,
            )
            pw = bcrypt.hashpw(b"password123", bcrypt.gensalt(rounds=4)).decode()
            await conn.execute(
                """INSERT INTO users (student_id, name, password_hash, role)
                   SELECT 'R' || lpad(i::text, 6, '0'), 'Rush Student ' || i, $2, 'student'
                   FROM generate_series(1, $1) i""",
                args.students,
                pw,
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def load_world(url: str) -> dict[str, Any]:
    conn = await pg(url)
    try:
        users = await conn.fetch("SELECT id, student_id FROM users ORDER BY id")
        seats = await conn.fetch(
            "SELECT s.id, b.name FROM seats s JOIN branches b ON b.id = s.branch_id ORDER BY s.id"
        )
    finally:
        await conn.close()
    by_branch: dict[str, list[int]] = {}
    for s in seats:
        by_branch.setdefault(s["name"], []).append(s["id"])
    return {
        "users": [(u["id"], u["student_id"]) for u in users],
        "seat_branch": {s["id"]: s["name"] for s in seats},
        "by_branch": by_branch,
    }


async def checks(url: str, cancelled: list[int], start: datetime) -> dict[str, Any]:
    conn = await pg(url)
    try:
        row = await conn.fetchrow(
            f"""SELECT
                  count(*) FILTER (WHERE status IN {ACTIVE}) AS active,
                  count(*) FILTER (WHERE status = 'HELD') AS held,
                  count(*) FILTER (WHERE status = 'CONFIRMED') AS confirmed,
                  count(*) FILTER (WHERE status = 'CANCELLED') AS cancelled,
                  count(DISTINCT seat_id) FILTER (WHERE status IN {ACTIVE}) AS seats_taken
                FROM reservations WHERE start_time = $1""",
            start,
        )
        wl = await conn.fetch("SELECT status, count(*) AS n FROM waitlist_entries GROUP BY 1")
        offers = await conn.fetchval(
            "SELECT count(*) FROM waitlist_entries WHERE reservation_id IS NOT NULL"
        )
        notes = await conn.fetch("SELECT type, count(*) AS n FROM notifications GROUP BY 1")
        return {
            "seat_overlaps": await conn.fetchval(seeding.OVERLAP_SEAT_SQL),
            "user_overlaps": await conn.fetchval(seeding.OVERLAP_USER_SQL),
            "lost_offers": await conn.fetchval(LOST_OFFERS_SQL, cancelled),
            "cancelled_recovered": await conn.fetchval(RECOVERED_SQL, cancelled),
            "cancelled_by_run": len(cancelled),
            "slot": dict(row) if row else {},
            "waitlist": {r["status"]: r["n"] for r in wl},
            "offers_made": offers,
            "notifications": {r["type"]: r["n"] for r in notes},
        }
    finally:
        await conn.close()


# --------------------------------------------------------------------------- run


class Rush:
    def __init__(self, args: argparse.Namespace, port: int, world: dict[str, Any]) -> None:
        self.args = args
        self.host, self.port = "127.0.0.1", port
        self.rng = random.Random(args.random_seed)
        self.world = world
        self.tokens = aload.mint_tokens(world["users"])
        self.start, self.end = the_slot()
        self.qs_interval = (
            f"start_time={urllib.parse.quote(iso(self.start))}"
            f"&end_time={urllib.parse.quote(iso(self.end))}"
        )
        self.interval = {"start_time": iso(self.start), "end_time": iso(self.end)}
        self.phases: dict[str, Phase] = {}
        self.branches = sorted(world["by_branch"])
        self.holding: dict[int, int] = {}  # user -> reservation id
        self.want_branch: dict[int, str] = {}
        self.waiting: dict[int, int] = {}  # user -> entry id

    def phase(self, name: str) -> Phase:
        if name not in self.phases:
            self.phases[name] = Phase(name)
        return self.phases[name]

    async def free_seats(self, conn: aload.HttpConn, uid: int, branch: str, tag: str) -> list[int]:
        q = urllib.parse.quote(branch)
        r = await conn.request(
            "GET",
            f"/seats?branch={q}&available_only=true&{self.qs_interval}&limit=500",
            token=self.tokens[uid],
        )
        self.phase(tag).record(r)
        if r.status != 200:
            return []
        return [s["id"] for s in r.json["items"] if s["available"]]

    async def book(self, conn: aload.HttpConn, uid: int, seat_id: int, tag: str) -> bool:
        r = await conn.request(
            "POST",
            "/reservations",
            token=self.tokens[uid],
            body={"seat_id": seat_id, **self.interval},
        )
        self.phase(tag).record(r)
        if r.status == 201:
            self.holding[uid] = r.json["id"]
            return True
        return False

    # -- 1: everyone tries once
    async def phase_book(self, pool: ConnPool) -> None:
        users = [uid for uid, _ in self.world["users"]]
        self.rng.shuffle(users)
        picks = {uid: self.rng.random() for uid in users}

        async def one(uid: int) -> None:
            async with pool.conn() as conn:
                if self.args.pick == "random":
                    seat = list(self.world["seat_branch"])[int(picks[uid] * self.args.seats)]
                    branch = self.world["seat_branch"][seat]
                else:
                    branch = self.branches[int(picks[uid] * len(self.branches))]
                    free = await self.free_seats(conn, uid, branch, "1 list")
                    choices = free or self.world["by_branch"][branch]
                    seat = choices[int(self.rng.random() * len(choices))]
                self.want_branch[uid] = branch
                await self.book(conn, uid, seat, "1 book")

        self.phase("1 list" if self.args.pick == "listed" else "1 book")
        self.phase("1 book")
        await asyncio.gather(*(one(uid) for uid in users))
        for name in ("1 list", "1 book"):
            if name in self.phases:
                self.phases[name].done()

    # -- 2: the rest join their branch's waitlist
    async def phase_join(self, pool: ConnPool) -> None:
        losers = [uid for uid, _ in self.world["users"] if uid not in self.holding]
        self.phase("2 join")

        async def one(uid: int) -> None:
            branch = self.want_branch[uid]
            async with pool.conn() as conn:
                for _ in range(5):
                    r = await conn.request(
                        "POST",
                        "/waitlist",
                        token=self.tokens[uid],
                        body={"branch": branch, **self.interval},
                    )
                    self.phase("2 join").record(r)
                    if r.status == 201:
                        self.waiting[uid] = r.json["id"]
                        return
                    if r.label != "409 slot_available":
                        return
                    free = await self.free_seats(conn, uid, branch, "2 fallback list")
                    if free and await self.book(
                        conn, uid, self.rng.choice(free), "2 fallback book"
                    ):
                        return

        await asyncio.gather(*(one(uid) for uid in losers))
        for name, p in self.phases.items():
            if name.startswith("2"):
                p.started = self.phases["2 join"].started
                p.t0_wall = self.phases["2 join"].t0_wall
                p.done()

    # -- 3..5: streams, cancellations, offers, claims, settle
    async def phase_offers(self, url: str) -> dict[str, Any]:
        args = self.args
        claim_pool = ConnPool(self.host, self.port, args.concurrency)
        cancel_pool = ConnPool(self.host, self.port, args.concurrency)
        offers_seen: dict[int, dict[str, Any]] = {}  # entry id -> notification
        delivery: list[float] = []
        to_claimed: list[float] = []
        claimed: dict[int, str] = {}  # entry id -> last claim answer
        claim_tasks: list[asyncio.Task[None]] = []
        other_events: Counter[str] = Counter()
        progress = asyncio.Event()
        last_claim_answer = [0.0]
        cancel_phase = self.phase("4 cancel")
        claim_phase = self.phase("4 claim")

        async def claim(uid: int, entry_id: int) -> None:
            for attempt in range(RETRIES):  # a student retries when the connection breaks
                r = await claim_pool.request(
                    "POST", f"/waitlist/{entry_id}/claim", token=self.tokens[uid]
                )
                claim_phase.record(r)
                if r.status != 0 or attempt == RETRIES - 1:
                    break
                await asyncio.sleep(1.0)
            claimed[entry_id] = r.label
            created = offers_seen[entry_id].get("created_at")
            if created and r.status == 200:
                to_claimed.append(time.time() - parse_iso(created))
            if r.status == 200:
                self.holding[uid] = r.json["reservation"]["id"]
                self.waiting.pop(uid, None)
            last_claim_answer[0] = time.perf_counter()
            progress.set()

        def on_event(stream: SseStream, ev: SseEvent) -> None:
            if ev.event != "waitlist.offer":
                other_events[ev.event or "?"] += 1
                return
            body = json.loads(ev.data)
            entry_id = body["data"]["entry_id"]
            if entry_id in offers_seen:
                other_events["duplicate offer"] += 1
                return
            offers_seen[entry_id] = body
            delivery.append(ev.arrived - parse_iso(body["created_at"]))
            claim_tasks.append(asyncio.create_task(claim(stream.key, entry_id)))
            progress.set()

        streams = [
            SseStream(self.host, self.port, self.tokens[uid], on_event, key=uid, reconnect=True)
            for uid in self.waiting
        ]
        log(f"  3: opening {len(streams)} streams")
        opened = await aload.open_streams(streams, args.open_concurrency)
        log(
            f"     {opened['open']}/{opened['streams']} open in {opened['wall_s']}s, "
            f"handshake p50 {opened['handshake_ms']['p50']} ms p99 "
            f"{opened['handshake_ms']['p99']} ms {opened['failures'] or ''}"
        )
        await asyncio.gather(claim_pool.warm(), cancel_pool.warm())
        await asyncio.sleep(1.0)

        async def reclaim_missed(conn: Any) -> list[dict[str, Any]]:
            """Offers still OFFERED (their event never came, or the claim failed): found by
            SQL, then claimed the way a student without a live stream would: GET /waitlist,
            then claim."""
            rows = await conn.fetch(
                "SELECT id, user_id FROM waitlist_entries WHERE status = 'OFFERED' ORDER BY id"
            )
            missed = []
            for row in rows:
                uid = row["user_id"]
                r = await claim_pool.request("GET", "/waitlist", token=self.tokens[uid])
                self.phase("5 reconcile list").record(r)
                missed.append(
                    {
                        "entry_id": row["id"],
                        "user_id": uid,
                        "seen_on_stream": row["id"] in offers_seen
                        and "created_at" in offers_seen[row["id"]],
                        "claim_answer": claimed.get(row["id"]),
                    }
                )
                for e in r.json["items"] if r.status == 200 else []:
                    if e["status"] == "OFFERED":
                        offers_seen.setdefault(e["id"], {"missed": True})
                        claim_tasks.append(asyncio.create_task(claim(uid, e["id"])))
            if missed:
                log(f"  !! {len(missed)} offers still OFFERED: {missed[:3]}")
            return missed

        holders = sorted(self.holding)
        cancellers = self.rng.sample(holders, round(len(holders) * args.cancel_share))
        attempted = [self.holding[uid] for uid in cancellers]
        go = asyncio.Event()

        async def cancel(uid: int) -> None:
            await go.wait()
            rid = self.holding[uid]
            for attempt in range(RETRIES):  # a student retries when the connection breaks
                r = await cancel_pool.request(
                    "DELETE", f"/reservations/{rid}", token=self.tokens[uid]
                )
                cancel_phase.record(r)
                if r.status != 0 or attempt == RETRIES - 1:
                    break
                await asyncio.sleep(1.0)
            if r.status == 200:
                self.holding.pop(uid, None)

        log(f"  4: {len(cancellers)} of {len(holders)} seat holders cancel at once")
        tasks = [asyncio.create_task(cancel(uid)) for uid in cancellers]
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        cancel_phase.started = claim_phase.started = t0
        cancel_phase.t0_wall = claim_phase.t0_wall = time.time()
        go.set()
        await asyncio.gather(*tasks)
        cancel_phase.done()
        cancels_answered = time.perf_counter()

        # Settle: every offer seen is claimed and PostgreSQL has no HELD row nor lost offer.
        conn = await pg(url)
        missed_offers: list[dict[str, Any]] = []
        settled_by_streams = True
        lost = None
        try:
            last_progress = time.perf_counter()
            while True:
                progress.clear()
                if claim_tasks:
                    await asyncio.gather(*claim_tasks)
                if len(claimed) == len(offers_seen):
                    held = await conn.fetchval(
                        "SELECT count(*) FROM reservations WHERE status = 'HELD'"
                        " AND start_time = $1",
                        self.start,
                    )
                    if held == 0:
                        lost = await conn.fetchval(LOST_OFFERS_SQL, attempted)
                        if lost == 0:
                            break
                    if time.perf_counter() - last_progress > args.settle_timeout:
                        settled_by_streams = False
                        found = await reclaim_missed(conn)
                        missed_offers += found
                        if not found:
                            log(f"  !! {lost} lost offers and nothing HELD: not settling")
                            break
                        last_progress = time.perf_counter()
                        continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(progress.wait(), 0.05)
                if progress.is_set():
                    last_progress = time.perf_counter()
        finally:
            await conn.close()
        settle_end = max(last_claim_answer[0], cancels_answered)
        claim_phase.ended = settle_end
        await asyncio.sleep(1.0)  # stray events (duplicates, wrong users) show up now
        drops = Counter(d for s in streams for d in s.drops)
        for s in streams:
            s.close()
        claim_pool.close()
        cancel_pool.close()
        return {
            "streams": opened,
            "cancellers": len(cancellers),
            "cancelled_ids": attempted,
            "offers_seen_on_streams": sum(1 for b in offers_seen.values() if "created_at" in b),
            "claims": Counter(claimed.values()),
            "offers_missed_by_streams": missed_offers,
            "settled_by_streams": settled_by_streams,
            "settle_s": round(settle_end - t0, 3),
            "cancels_answered_s": round(cancels_answered - t0, 3),
            "offer_delivery_ms": dist_ms(delivery),
            "offer_to_claimed_ms": dist_ms(to_claimed),
            "other_events": dict(other_events),
            "stream_drops": dict(drops),
            "streams_reconnected": sum(1 for s in streams if s.drops),
        }


async def analyze(url: str, when: str) -> dict[str, Any]:
    """ANALYZE what the rush just filled: what autovacuum does within a minute or so of
    this many changes, done here at fixed points so runs are comparable (--no-analyze
    leaves it to autovacuum: see the README for the plan that stale statistics get)."""
    t = time.perf_counter()
    conn = await pg(url)
    try:
        await conn.execute("ANALYZE reservations; ANALYZE waitlist_entries")
    finally:
        await conn.close()
    took = round(time.perf_counter() - t, 2)
    log(f"     ANALYZE {when}: {took}s")
    return {"when": when, "took_s": took}


async def run_async(
    args: argparse.Namespace, server: aload.AppServer, url: str, workers: int
) -> dict[str, Any]:
    world = await load_world(url)
    rush = Rush(args, server.port, world)
    pool = ConnPool(rush.host, server.port, args.concurrency)
    await pool.warm()
    # Warm-up: a few requests that touch the routes, on another slot (the day after).
    day2 = {
        "start_time": iso(rush.start + timedelta(days=1)),
        "end_time": iso(rush.end + timedelta(days=1)),
    }
    uid0 = world["users"][0][0]
    r = await pool.request(
        "POST",
        "/reservations",
        token=rush.tokens[uid0],
        body={"seat_id": next(iter(world["seat_branch"])), **day2},
    )
    assert r.status == 201, (r.status, r.body[:300])
    r2 = await pool.request("DELETE", f"/reservations/{r.json['id']}", token=rush.tokens[uid0])
    assert r2.status == 200, (r2.status, r2.body[:300])
    for b in rush.branches:
        async with pool.conn() as c:
            await rush.free_seats(c, uid0, b, "warm-up")
    rush.phases.clear()
    await pool.warm()

    cpu0 = aload.cpu_snapshot(server.proc.pid, args.db)
    client0 = time.process_time()
    t_run = time.perf_counter()
    log(f"  1: {len(world['users'])} students book ({args.pick} pick)")
    await rush.phase_book(pool)
    won = len(rush.holding)
    log(f"     {won} seats taken")
    analyzed = []
    if args.analyze:
        analyzed.append(await analyze(url, "after booking"))
    log(f"  2: {len(world['users']) - won} students join a waitlist")
    await rush.phase_join(pool)
    log(f"     {len(rush.waiting)} waiting, {len(rush.holding)} holding a seat")
    if args.analyze:
        analyzed.append(await analyze(url, "after joining"))
    pool.close()
    offers = await rush.phase_offers(url)
    secs = time.perf_counter() - t_run
    cpu = aload.cpu_used(cpu0, aload.cpu_snapshot(server.proc.pid, args.db), secs)
    cpu["client"] = round((time.process_time() - client0) / secs, 2)
    cancelled = offers.pop("cancelled_ids")
    check = await checks(url, cancelled, rush.start)
    phases = [p.summary() for p in rush.phases.values() if p.name != "warm-up"]
    totals: Counter[str] = Counter()
    for p in phases:
        totals.update(p["status"])
    return {
        "slot": [iso(rush.start), iso(rush.end)],
        "booked_in_phase_1": won,
        "phases": phases,
        "status_totals": dict(sorted(totals.items())),
        "run_s": round(secs, 2),
        "analyze": analyzed,
        "cpu_cores": cpu,
        **offers,
        "checks": check,
    }


def run_one(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    url = seeding.db_url(args.server, args.db)
    log(f"== rush, {workers} worker(s): waiting for a quiet machine")
    quiet = aload.wait_until_quiet(args.quiet_wait)
    log(f"  load average {quiet['loadavg']}; seeding {url}")
    asyncio.run(seed_db(args))
    extra_env = {"REDIS_URL": args.redis_url, "SCHEDULER_ENABLED": "false"}
    for kv in args.env:
        k, _, v = kv.partition("=")
        extra_env[k] = v
    free, used = asyncio.run(aload.connection_headroom(url))
    pool_max = int(extra_env.get("DB_POOL_MAX_SIZE", 20))
    if free < workers * pool_max + 2:
        log(
            f"  warning: {free} free PostgreSQL slots ({used} used), server may want "
            f"{workers} x {pool_max}"
        )
    aload.flush_redis_db(args.redis_url)
    stamp = datetime.now().astimezone().strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-rush-w{workers}"
    aload.RUNS.mkdir(exist_ok=True)
    server = aload.AppServer(
        database_url=url,
        workers=workers,
        log_path=aload.RUNS / f"{name}.server.log",
        extra_env=extra_env,
        uvicorn_log_level=args.uvicorn_log_level,
        uvicorn_args=tuple(args.uvicorn_arg),
    )
    log(f"  server pid {server.proc.pid} on {server.base} env {extra_env}")
    try:
        server.wait_ready()
        with aload.Watcher() as watcher, aload.WorkerMonitor(server) as workers_seen:
            result = asyncio.run(run_async(args, server, url, workers))
    finally:
        server.stop()
        log(f"  server pid {server.proc.pid} stopped (exit {server.proc.returncode})")
    record = {
        "scenario": "rush",
        "workers": workers,
        "name": name,
        "command": "loadtest/rush.py " + " ".join(args.argv),
        "version": aload.git_version(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            **quiet,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            # wrk/pytest/bench.py seen during the run (samples every 2 s): a noisy run
            "others_during_run": dict(watcher.seen),
        },
        "server_env": extra_env,
        "server_cmd": " ".join(server.cmd[server.cmd.index("app.main:app") :]),
        "worker_events": workers_seen.events,
        "students": args.students,
        "seats": args.seats,
        "concurrency": args.concurrency,
        "pick": args.pick,
        **result,
        "server_log": aload.server_log_summary(server.log_path),
    }
    path = aload.append_jsonl("rush.jsonl", record)
    print_summary(record)
    log(f"  appended to {path}")
    return record


def print_summary(r: dict[str, Any]) -> None:
    c = r["checks"]
    print(
        f"\n== rush, {r['workers']} worker(s): {r['students']} students, {r['seats']} seats, "
        f"{r['concurrency']} connections, load avg {r['machine']['loadavg']} -> "
        f"{r['machine']['loadavg_after']}, others during the run: "
        f"{r['machine']['others_during_run'] or 'none'} ==",
        flush=True,
    )
    for p in r["phases"]:
        aload.print_phase(p)
    print(
        f"  offers: {c['offers_made']} made, {r['offers_seen_on_streams']} seen on streams "
        f"(delivery {r['offer_delivery_ms']}), claims {dict(r['claims'])}, "
        f"missed by streams {len(r['offers_missed_by_streams'])}\n"
        f"  settle {r['settle_s']} s after the cancels were released (cancels answered in "
        f"{r['cancels_answered_s']} s){'' if r['settled_by_streams'] else ' NOT by streams'}\n"
        f"  status totals {r['status_totals']}\n"
        f"  checks: seat overlaps {c['seat_overlaps']}, user overlaps {c['user_overlaps']}, "
        f"lost offers {c['lost_offers']}; cancelled {c['cancelled_by_run']}, re-covered "
        f"{c['cancelled_recovered']}; slot {c['slot']}; waitlist {c['waitlist']}\n"
        f"  cpu cores {r['cpu_cores']}; run {r['run_s']} s; stream drops "
        f"{r['stream_drops'] or 0} ({r['streams_reconnected']} reconnected); "
        f"other events {r['other_events'] or 0}; "
        f"server log: {r['server_log'] or 'clean'}",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-w", "--workers", type=int, action="append", help="[1, then 2]")
    p.add_argument("--students", type=int, default=5000)
    p.add_argument("--seats", type=int, default=1000)
    p.add_argument("--branches", type=int, default=5)
    p.add_argument("--pick", choices=("listed", "random"), default="listed")
    p.add_argument("--concurrency", type=int, default=150, help="client connections a phase")
    p.add_argument("--open-concurrency", type=int, default=200, help="stream handshakes at once")
    p.add_argument("--cancel-share", type=float, default=0.3)
    p.add_argument("--settle-timeout", type=float, default=15.0)
    p.add_argument("--random-seed", type=int, default=42)
    p.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="no ANALYZE after booking and after joining (autovacuum decides)",
    )
    p.add_argument("--redis-url", default=DEFAULT_REDIS)
    p.add_argument("--server", default=seeding.DEFAULT_SERVER)
    p.add_argument("--db", default="dlsms_rush")
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
    args.workers = args.workers or [1, 2]
    if not args.db.startswith("dlsms_") or args.db == "dlsms_bench":
        p.error("--db must be a dedicated dlsms_* database (it is dropped and recreated)")
    args.argv = sys.argv[1:]
    return args


def main() -> None:
    args = parse_args()
    # SIGTERM (e.g. `kill`, or a background job whose SIGINT is ignored) unwinds like
    # Ctrl-C, so the server this script started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    aload.raise_nofile(args.students + 4 * args.concurrency + 1000)
    aload.use_uvloop()
    for workers in args.workers:
        run_one(workers, args)


if __name__ == "__main__":
    main()
