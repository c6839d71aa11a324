"""Finals-week rush: 5,000 students, 1,000 seats, one morning slot; then the waitlist.

    .venv/bin/python loadtest/rush.py                    # 1 worker, then 2
    .venv/bin/python loadtest/rush.py -w 2 --pick random
    .venv/bin/python loadtest/rush.py --students 50 --seats 10 -w 1 --concurrency 10  # smoke
    .venv/bin/python loadtest/rush.py --help

Needs the ``loadtest`` extra (``pip install -e '.[loadtest]'``: Locust and httpx-sse).

For each worker count, on a freshly seeded database ``dlsms_rush`` (``--branches`` 5
branches x 200 ACTIVE seats = ``--seats`` 1,000; ``--students`` 5,000 students
R000001..; nothing booked), with a server started by harness.Server (uvicorn,
``--workers N``, REDIS_URL=redis://127.0.0.1:6379/6 flushed first,
SCHEDULER_ENABLED=false, default pool of 20 a worker), for the slot tomorrow
09:00-12:00 UTC:

1. book (Locust, loadtest/rush_locust.py, ``--concurrency`` 150 users on keep-alive
   connections): every student, in a shuffled order, makes one attempt: ``--pick
   listed`` (default) reads the free seats of a random branch (``GET /seats?branch=
   &available_only=true&start_time=&end_time=``, cached in Redis) and books a random one
   of them (a random seat of that branch when none is listed); ``--pick random`` books
   a random seat of all. 5,000 ``POST /reservations``;
2. join (Locust again): every student without a seat joins the waitlist of that branch
   (``POST /waitlist {branch, start_time, end_time}``); on 409 ``slot_available`` (a
   seat of the branch is still free) they read the listing, try to book a free seat,
   and join again if that failed (at most 5 times);
3. streams (rush_offers.py, httpx-sse): every waiting student opens
   ``GET /notifications/stream`` with its token;
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

Checks (printed, all expected 0): overlapping active reservations of one seat and of
one user (seed.py's self-joins), lost offers: a cancelled seat-interval that is not
covered again by an active reservation while a WAITING entry of its branch (or of that
seat) fits in it, free for that entry's owner too (LOST_OFFERS_SQL), and 5xx answers.

Results: one JSON line per run in loadtest/runs/rush.jsonl; server and Locust logs next
to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bcrypt
import harness
import seed as seeding
from clients import Client
from harness import HERE, RUNS, VENV_BIN, log, pg
from rush_offers import Offers
from stats import Phase, iso, print_phase

from app.db.migrations import upgrade_to_head

DEFAULT_REDIS = "redis://127.0.0.1:6379/6"  # bench.py uses 3, sse_fanout.py 4, tests 7-15
ACTIVE = seeding.ACTIVE

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
        # After the run (server stopped): the checks' self-joins need fresh statistics to
        # answer in seconds, whatever --no-analyze left.
        await conn.execute("ANALYZE reservations; ANALYZE waitlist_entries")
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


def write_plan(
    args: argparse.Namespace, world: dict[str, Any], tokens: dict[int, str], path: Path
) -> dict[str, Any]:
    """What rush_locust.py needs: tokens, the shuffled order, each student's branch and
    random pick, the seats of each branch, the slot."""
    rng = random.Random(args.random_seed)
    users = [uid for uid, _ in world["users"]]
    rng.shuffle(users)
    seats = list(world["seat_branch"])
    branches = sorted(world["by_branch"])
    picks: dict[str, dict[str, Any]] = {}
    for uid in users:
        r = rng.random()
        if args.pick == "random":
            seat = seats[int(r * len(seats))]
            picks[str(uid)] = {"seat": seat, "branch": world["seat_branch"][seat]}
        else:
            picks[str(uid)] = {"branch": branches[int(r * len(branches))], "r": rng.random()}
    start, end = the_slot()
    plan = {
        "start_time": iso(start),
        "end_time": iso(end),
        "tokens": {str(uid): t for uid, t in tokens.items()},
        "students": {"book": [str(u) for u in users], "join": []},
        "picks": picks,
        "pick": args.pick,
        "by_branch": world["by_branch"],
        "random_seed": args.random_seed,
    }
    path.write_text(json.dumps(plan))
    return plan


def run_locust(
    base: str,
    plan: dict[str, Any],
    phase: str,
    args: argparse.Namespace,
    name: str,
    step: harness.StepCpu,
) -> tuple[dict[str, Any], list[Phase], float | None]:
    """One bulk phase in ``--locust-processes`` Locust processes (rush_locust.py, each
    with its slice of the students and of the users), until every student of the phase
    is done: what they recorded (merged), the phases by request name, and when the
    first request was sent (time.time())."""
    plan_path = RUNS / f"{name}.plan.json"
    plan_path.write_text(json.dumps(plan))
    students = len(plan["students"][phase])
    n = max(1, min(args.locust_processes, students))
    users_total = max(n, min(args.concurrency, students))
    procs: list[tuple[subprocess.Popen[bytes], Path, Any]] = []
    try:
        for i in range(n):
            users = users_total // n + (i < users_total % n)
            out = RUNS / f"{name}.locust-{phase}-{i}.json"
            out.unlink(missing_ok=True)
            cmd = [
                str(VENV_BIN / "locust"),
                *("-f", str(HERE / "rush_locust.py"), "--headless", "--host", base),
                *("-u", str(users), "-r", str(users), "--run-time", f"{args.phase_limit:g}s"),
                *("--stop-timeout", "30", "--only-summary", "--loglevel", "WARNING"),
            ]
            env = {
                **os.environ,
                "RUSH_PLAN": str(plan_path),
                "RUSH_PHASE": phase,
                "RUSH_OUT": str(out),
                "RUSH_SLICE": f"{i}/{n}",
            }
            log_file = (RUNS / f"{name}.locust-{phase}-{i}.log").open("w")
            proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
            procs.append((proc, out, log_file))
            step.add([proc.pid])
        for proc, _, _ in procs:
            proc.wait(timeout=args.phase_limit + 120)
    finally:
        for proc, _, log_file in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log_file.close()
    result: dict[str, Any] = {"requests": [], "holding": {}, "waiting": {}}
    for proc, out, _ in procs:
        if not out.exists():
            raise RuntimeError(f"locust exited {proc.returncode} without {out}; see its log")
        part = json.loads(out.read_text())
        result["requests"] += part["requests"]
        result["holding"].update(part["holding"])
        result["waiting"].update(part["waiting"])
    rows = result["requests"]
    phases: dict[str, Phase] = {}
    first = None
    if rows:
        first = min(sent for _, _, _, sent in rows)
        last = max(sent + secs for _, secs, _, sent in rows)
        for req_name, secs, status_label, sent in rows:
            if req_name not in phases:
                phases[req_name] = Phase(req_name, started=0.0, ended=last - first, t0_wall=first)
            phases[req_name].record(secs, sent, status_label)
    return result, sorted(phases.values(), key=lambda p: p.name), first


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


async def warm_up(base: str, world: dict[str, Any], tokens: dict[int, str]) -> None:
    """A few requests that touch the routes, on another slot (the day after)."""
    start, end = the_slot()
    day2 = {"start_time": iso(start + timedelta(days=1)), "end_time": iso(end + timedelta(days=1))}
    uid0 = world["users"][0][0]
    client = Client(base, 4)
    try:
        r = await client.request(
            "POST",
            "/reservations",
            token=tokens[uid0],
            body={"seat_id": next(iter(world["seat_branch"])), **day2},
        )
        assert r.status == 201, (r.status, r.body[:300])
        r2 = await client.request("DELETE", f"/reservations/{r.json['id']}", token=tokens[uid0])
        assert r2.status == 200, (r2.status, r2.body[:300])
        for b in sorted(world["by_branch"]):
            path = f"/seats?branch={urllib.parse.quote(b)}&available_only=true"
            await client.request("GET", path, token=tokens[uid0])
    finally:
        await client.aclose()


def run_phases(
    args: argparse.Namespace, server: harness.Server, url: str, name: str
) -> dict[str, Any]:
    world = asyncio.run(load_world(url))
    tokens = harness.mint_tokens(world["users"])
    asyncio.run(warm_up(server.base, world, tokens))
    plan = write_plan(args, world, tokens, RUNS / f"{name}.plan.json")
    phases: list[Phase] = []
    cpu0 = harness.cpu_snapshot(server.cpu_pids(), args.db)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    client0 = time.process_time()
    cpu_steps: dict[str, Any] = {}

    def step() -> harness.StepCpu:
        return harness.StepCpu(server.cpu_pids(), args.db, [])

    t_run = time.perf_counter()

    log(
        f"  1: {len(world['users'])} students book ({args.pick} pick), "
        f"{args.locust_processes} Locust process(es)"
    )
    s1 = step()
    booked, found, first = run_locust(server.base, plan, "book", args, name, s1)
    cpu_steps["1 book"] = s1.end(since=first)
    phases += found
    holding = {int(u): rid for u, rid in booked["holding"].items()}
    won = len(holding)
    log(f"     {won} seats taken; cpu {brief(cpu_steps['1 book'])}")
    analyzed = []
    if args.analyze:
        analyzed.append(asyncio.run(analyze(url, "after booking")))
    plan["students"]["join"] = [u for u in plan["students"]["book"] if int(u) not in holding]
    log(f"  2: {len(plan['students']['join'])} students join a waitlist, Locust")
    s2 = step()
    joined, found, first = run_locust(server.base, plan, "join", args, name, s2)
    cpu_steps["2 join"] = s2.end(since=first)
    phases += found
    holding.update({int(u): rid for u, rid in joined["holding"].items()})
    waiting = {int(u): eid for u, eid in joined["waiting"].items()}
    log(f"     {len(waiting)} waiting, {len(holding)} holding a seat")
    if args.analyze:
        analyzed.append(asyncio.run(analyze(url, "after joining")))

    later: dict[str, Phase] = {}
    start, _ = the_slot()
    offers = Offers(
        base=server.base,
        tokens=tokens,
        holding=holding,
        waiting=waiting,
        start=start,
        lost_offers_sql=LOST_OFFERS_SQL,
        phases=later,
        rng=random.Random(args.random_seed + 1),
    )
    result = asyncio.run(
        offers.run(
            url,
            concurrency=args.concurrency,
            open_concurrency=args.open_concurrency,
            cancel_share=args.cancel_share,
            settle_timeout=args.settle_timeout,
            processes=args.client_processes,
            runs=RUNS,
            name=name,
            cpu_of=step,
        )
    )
    cpu_steps.update(result.pop("cpu_steps"))
    for label in ("3 streams", "4 cancel+claim"):
        log(f"     cpu {label}: {brief(cpu_steps[label])}")
    secs = time.perf_counter() - t_run
    cpu = harness.cpu_used(cpu0, harness.cpu_snapshot(server.cpu_pids(), args.db), secs)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_s = children.ru_utime + children.ru_stime - children0.ru_utime - children0.ru_stime
    cpu["client"] = round((time.process_time() - client0 + children_s) / secs, 2)
    cpu["others"] = round(max(cpu["others"] - cpu["client"], 0.0), 2)
    cancelled = result.pop("cancelled_ids")
    check = asyncio.run(checks(url, cancelled, start))
    summaries = [p.summary() for p in [*phases, *later.values()]]
    totals: Counter[str] = Counter()
    for s in summaries:
        totals.update(s["status"])
    check["five_xx"] = sum(n for k, n in totals.items() if k.startswith("5"))
    return {
        "slot": [plan["start_time"], plan["end_time"]],
        "booked_in_phase_1": won,
        "phases": summaries,
        "status_totals": dict(sorted(totals.items())),
        "run_s": round(secs, 2),
        "analyze": analyzed,
        "cpu_cores": cpu,
        "cpu_steps": cpu_steps,
        **result,
        "checks": check,
    }


def run_one(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    url = seeding.db_url(args.server, args.db)
    log(f"== rush, {workers} worker(s): waiting for a quiet machine")
    quiet = harness.wait_for_quiet(args.quiet_wait)
    log(f"  load average {quiet['loadavg']}; seeding {url}")
    asyncio.run(seed_db(args))
    extra_env = {"SCHEDULER_ENABLED": "false"}
    for kv in args.env:
        k, _, v = kv.partition("=")
        extra_env[k] = v
    free, used = asyncio.run(harness.connection_headroom(url))
    pool_max = int(extra_env.get("DB_POOL_MAX_SIZE", 20))
    if free < workers * pool_max + 2:
        log(
            f"  warning: {free} free PostgreSQL slots ({used} used), server may want "
            f"{workers} x {pool_max}"
        )
    harness.flush_redis_db(args.redis_url)
    name = f"{harness.stamp()}-rush-w{workers}"
    RUNS.mkdir(exist_ok=True)
    server = harness.Server(
        database_url=url,
        workers=workers,
        log_path=RUNS / f"{name}.server.log",
        redis_url=args.redis_url,
        extra_env=extra_env,
        uvicorn_log_level=args.uvicorn_log_level,
        uvicorn_args=tuple(args.uvicorn_arg),
    )
    log(f"  server pid {server.proc.pid} on {server.base} env {extra_env}")
    try:
        server.wait_ready()
        with harness.WorkerMonitor(server) as workers_seen:
            result = run_phases(args, server, url, name)
    finally:
        server.stop()
        log(f"  server pid {server.proc.pid} stopped (exit {server.proc.returncode})")
    record = {
        "scenario": "rush",
        "client": "locust (phases 1-2) + httpx/httpx-sse (3-5), in several processes",
        "locust_processes": args.locust_processes,  # client_processes: rush_offers' record
        "workers": workers,
        "name": name,
        "command": "loadtest/rush.py " + " ".join(args.argv),
        "version": harness.git_version(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**quiet, "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "server_env": {**extra_env, "REDIS_URL": args.redis_url},
        "server_cmd": " ".join(server.cmd[server.cmd.index(harness.APP) :]),
        "worker_events": workers_seen.events,
        "students": args.students,
        "seats": args.seats,
        "concurrency": args.concurrency,
        "pick": args.pick,
        **result,
        "server_log": harness.server_log_summary(server.log_path),
    }
    path = harness.append_jsonl("rush.jsonl", record)
    print_summary(record)
    log(f"  appended to {path}")
    return record


def brief(c: dict[str, Any]) -> str:
    """One step's CPU in a line: cores of the server (sampled: mean and 2 s peak),
    PostgreSQL, the clients (sum of means; the busiest process's mean and peak), others."""
    srv, cli = c["server_sampled"], c["client"]
    return (
        f"server {srv['total_mean']} (peak {srv['max_process_peak']}), postgres "
        f"{c['postgres']}, clients {cli['total_mean']} in {cli['processes']} processes "
        f"(busiest {cli['max_process_mean']}, peak {cli['max_process_peak']}), "
        f"others {c['others']} over {c['seconds']} s"
    )


def print_summary(r: dict[str, Any]) -> None:
    c = r["checks"]
    print(
        f"\n== rush, {r['workers']} worker(s): {r['students']} students, {r['seats']} seats, "
        f"{r['concurrency']} connections, load avg {r['machine']['loadavg']} -> "
        f"{r['machine']['loadavg_after']}, others during the run: "
        f"{r['cpu_cores'].get('others')} cores ==",
        flush=True,
    )
    for p in r["phases"]:
        print_phase(p)
    for label, step_cpu in r["cpu_steps"].items():
        print(f"  cpu {label:<15} {brief(step_cpu)}", flush=True)
    print(
        f"  offers: {c['offers_made']} made, {r['offers_seen_on_streams']} seen on streams "
        f"(delivery {r['offer_delivery_ms']}), claims {dict(r['claims'])}, "
        f"missed by streams {len(r['offers_missed_by_streams'])}\n"
        f"  settle {r['settle_s']} s after the cancels were released (cancels answered in "
        f"{r['cancels_answered_s']} s){'' if r['settled_by_streams'] else ' NOT by streams'}\n"
        f"  status totals {r['status_totals']}\n"
        f"  checks: seat overlaps {c['seat_overlaps']}, user overlaps {c['user_overlaps']}, "
        f"lost offers {c['lost_offers']}, 5xx {c['five_xx']}; cancelled "
        f"{c['cancelled_by_run']}, re-covered {c['cancelled_recovered']}; slot {c['slot']}; "
        f"waitlist {c['waitlist']}\n"
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
    p.add_argument(
        "--locust-processes",
        type=int,
        default=4,
        help="Locust processes for phases 1-2, each with a slice of the students [4]",
    )
    p.add_argument(
        "--client-processes",
        type=int,
        default=4,
        help="processes holding the streams and sending the cancels and claims [4]",
    )
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
    p.add_argument(
        "--phase-limit", type=float, default=600, help="Locust's --run-time for a bulk phase, s"
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=600,
        help="wait up to this many s for other processes to use < 0.3 cores; 0: don't",
    )
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
    harness.raise_nofile(args.students + 4 * args.concurrency + 1000)
    for workers in args.workers:
        run_one(workers, args)


if __name__ == "__main__":
    main()
