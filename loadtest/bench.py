"""Run one load-test scenario against a server this script starts and stops.

    .venv/bin/python loadtest/bench.py listing-uncached --workers 1
    .venv/bin/python loadtest/bench.py listing-cached   --workers 2
    .venv/bin/python loadtest/bench.py booking          --workers 1 [--profile]
    .venv/bin/python loadtest/bench.py all              # every scenario, 1 then 2 workers

Each run: (re)seed if needed (booking: always, unless --no-reseed), mint JWTs for the
seeded students, start ``uvicorn app.main:app`` on 127.0.0.1 and a free port with
``--workers N``, wait for /ready, warm up, measure with wrk for --duration seconds,
print a summary (and, for booking, the SQL overlap check), then stop exactly the
server it started. Results are appended to loadtest/runs/results.jsonl; the server
log and wrk's raw output go next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import resource
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import harness
import seed as seeding
from harness import DATA, HERE, RUNS, VENV_BIN, log

PROFILES = HERE / "profiles"
LUA = HERE / "lua"
# DB 3 by default (0 is the default database, 7-15 the tests'); BENCH_REDIS_URL moves it,
# so that two bench.py runs on different --db databases never flush each other's cache.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
SCENARIOS = ("listing-uncached", "listing-cached", "booking")
# Calibration, not part of "all": /health of the service (middleware + SELECT 1), and two
# trivial apps from calibration.py (no database): what the machine and framework allow.
EXTRA_SCENARIOS = ("health", "calib-asgi", "calib-fastapi")
CALIBRATION_APPS = {"calib-asgi": "calibration:bare", "calib-fastapi": "calibration:fastapi_min"}
TARGETS = {  # what the issue asks for at 50 connections (1 worker)
    "listing-cached": "≥ 4,500 req/s, p99 ≤ 25 ms",
    "listing-uncached": "≥ 1,500 req/s",
    "booking": "≥ 2,000 req/s, 0 overlaps",
    "health": "none (calibration: GET /health = middleware + SELECT 1)",
    "calib-asgi": "none (calibration: raw ASGI app, no database)",
    "calib-fastapi": "none (calibration: one-route FastAPI app, no database)",
}


# --------------------------------------------------------------------------- data


async def seed_state(url: str) -> dict[str, Any] | None:
    try:
        conn = await asyncpg.connect(url)
    except (asyncpg.InvalidCatalogNameError, OSError):
        return None
    try:
        if not await conn.fetchval("SELECT to_regclass('loadtest_seed') IS NOT NULL"):
            return None
        row = await conn.fetchrow("SELECT seeded_at, max_reservation_id FROM loadtest_seed")
        return dict(row) if row else None
    finally:
        await conn.close()


async def write_inputs(url: str) -> dict[str, Path]:
    """Tokens for every seeded student, ACTIVE seat ids, branch names: one per line."""
    conn = await harness.pg(url)
    try:
        users = await conn.fetch(
            "SELECT id, student_id FROM users WHERE role = 'student' ORDER BY id"
        )
        seats = await conn.fetch("SELECT id FROM seats WHERE status = 'ACTIVE' ORDER BY id")
        branches = await conn.fetch("SELECT name FROM branches ORDER BY id")
    finally:
        await conn.close()
    tokens = harness.mint_tokens([(u["id"], u["student_id"]) for u in users])
    DATA.mkdir(exist_ok=True)
    files = {
        "tokens": DATA / "tokens.txt",
        "seats": DATA / "seats.txt",
        "branches": DATA / "branches.txt",
    }
    files["tokens"].write_text("\n".join(tokens.values()) + "\n")
    files["seats"].write_text("\n".join(str(s["id"]) for s in seats) + "\n")
    files["branches"].write_text("\n".join(b["name"] for b in branches) + "\n")
    return files


async def booking_check(url: str, since_id: int) -> dict[str, int]:
    """Overlapping active pairs (must be 0) and what the run left in the table."""
    conn = await harness.pg(url)
    try:
        seat = await conn.fetchval(seeding.OVERLAP_SEAT_SQL)
        user = await conn.fetchval(seeding.OVERLAP_USER_SQL)
        created = await conn.fetchval("SELECT count(*) FROM reservations WHERE id > $1", since_id)
        active_created = await conn.fetchval(
            f"SELECT count(*) FROM reservations WHERE id > $1 AND status IN {seeding.ACTIVE}",
            since_id,
        )
    finally:
        await conn.close()
    return {
        "seat_overlaps": seat,
        "user_overlaps": user,
        "rows_created": created,
        "active_rows_created": active_created,
    }


async def max_reservation_id(url: str) -> int:
    conn = await harness.pg(url)
    try:
        return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM reservations"))
    finally:
        await conn.close()


# --------------------------------------------------------------------------- server


def http(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310
        url,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# --------------------------------------------------------------------------- wrk


def wrk(
    base: str,
    script: str,
    script_args: list[str],
    *,
    duration: float,
    connections: int,
    threads: int,
    raw_path: Path | None,
) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA / script),
        base,
        "--",
        *script_args,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if raw_path is not None:
        raw_path.write_text(" ".join(cmd) + "\n\n" + out.stdout + out.stderr)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    result["wrk_cpu_s"] = round(
        after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2
    )
    return result


def start_profiler(pid: int, seconds: float, name: str, fmt: str) -> subprocess.Popen[bytes]:
    """py-spy on one worker: ``flamegraph`` (an SVG to look at) or ``raw`` (collapsed stacks
    that profile.py counts). Both go to loadtest/profiles/, which git ignores."""
    PROFILES.mkdir(exist_ok=True)
    out = PROFILES / f"{name}.{'svg' if fmt == 'flamegraph' else 'txt'}"
    return subprocess.Popen(
        [
            *(str(VENV_BIN / "py-spy"), "record", "-o", str(out), "--pid", str(pid)),
            *("--duration", str(int(seconds)), "--nonblocking", "--rate", "200"),
            *("--format", fmt),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


# --------------------------------------------------------------------------- runs


@contextlib.contextmanager
def exclusive_run(db: str) -> Iterator[None]:
    """One run at a time per bench database: two harnesses seeding and booking the same
    database at once (with the same random sequences) would wreck each other's numbers."""
    DATA.mkdir(exist_ok=True)
    with (DATA / f"{db}.lock").open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            log(f"  another bench.py run ({f.read().strip() or '?'}) uses {db}; waiting for it")
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)


def run_one(scenario: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    with exclusive_run(args.db):
        return _run_one(scenario, workers, args)


def _run_one(scenario: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    url = seeding.db_url(args.server, args.db)
    # Wait for a quiet machine first, so that the seed is fresh when the run starts.
    quiet = harness.wait_for_quiet(args.quiet_wait)
    state = asyncio.run(seed_state(url))
    reseed = (
        state is None
        or args.reseed
        or (scenario == "booking" and not args.no_reseed)
        or datetime.now(UTC) - state["seeded_at"] > timedelta(hours=1)
    )
    if reseed:
        log(f"seeding {url} (loadtest/seed.py defaults)")
        asyncio.run(seeding.seed(seeding.parse_args(["--server", args.server, "--db", args.db])))
    files = asyncio.run(write_inputs(url))
    free, used = asyncio.run(harness.connection_headroom(url))
    pool = int(dict(kv.split("=", 1) for kv in args.env).get("DB_POOL_MAX_SIZE", 20))
    if free < workers * pool:
        log(
            f"  warning: PostgreSQL has {free} free connection slots ({used} in use by others),"
            f" the server may open {workers} x {pool}: expect 503s"
        )
    redis = scenario == "listing-cached"
    if redis:
        harness.flush_redis_db(REDIS_URL)

    stamp = harness.stamp()
    name = f"{stamp}-{scenario}-w{workers}"
    RUNS.mkdir(exist_ok=True)
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    server: harness.Server | harness.ClusterServer
    if args.instances:
        name = f"{stamp}-{scenario}-n{args.instances}"
        server = harness.ClusterServer(
            instances=args.instances,
            database_url=url,
            directory=RUNS / f"{name}.cluster",
            redis_url=REDIS_URL if redis else None,
            extra_env=extra_env,
        )
    else:
        server = harness.Server(
            database_url=url,
            workers=workers,
            log_path=RUNS / f"{name}.server.log",
            redis_url=REDIS_URL if redis else None,
            extra_env=extra_env,
            app=CALIBRATION_APPS.get(scenario, harness.APP),
        )
    log(
        f"{scenario}, {workers} worker(s): server pid {server.cpu_pids()[0]} on {server.base}"
        f"{' with REDIS_URL=' + REDIS_URL if redis else ' (no REDIS_URL)'}"
    )
    try:
        server.wait_ready()
        token = files["tokens"].read_text().split("\n", 1)[0]
        if scenario == "booking":
            today = int(
                datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
            )
            script = "booking.lua"
            script_args = [
                str(files["tokens"]),
                str(files["seats"]),
                str(today),
                str(args.days),
                str(args.first_hour),
                str(args.last_hour),
                str(args.random_seed),
            ]
            since_id = asyncio.run(max_reservation_id(url))
            status, body = http("GET", server.base + "/openapi.json", token)
            if '"/reservations"' not in body:
                raise RuntimeError("POST /reservations is not served by this app version yet")
        elif scenario == "health" or scenario in CALIBRATION_APPS:
            script, script_args = "plain.lua", ["/health"]
        else:
            script = "listing.lua"
            script_args = [str(files["branches"]), str(files["tokens"]), str(args.random_seed)]
            branch = files["branches"].read_text().split("\n", 1)[0]
            status, body = http(
                "GET",
                f"{server.base}/seats?available_only=true&branch=" + urllib.parse.quote(branch),
                token,
            )
            if status != 200:
                raise RuntimeError(f"GET /seats answered {status}: {body[:300]}")
            log(
                f"  GET /seats sample: {status}, total={json.loads(body)['total']}, "
                f"{len(body):,} bytes"
            )
        common = {"connections": args.connections, "threads": args.threads}
        warm_created = 0
        if args.warmup > 0:
            # Another random seed: the measured run must not replay the warm-up's bookings.
            warm_args = script_args
            if script in ("listing.lua", "booking.lua"):
                warm_args = [*script_args[:-1], str(args.random_seed + 1)]
            warm = wrk(
                server.base, script, warm_args, duration=args.warmup, raw_path=None, **common
            )
            log(f"  warm-up {args.warmup:g}s: {warm['requests']:,} requests")
            if script == "booking.lua":
                log(f"    {warm['counters']} {warm['other_status']}")
                warm_created = int(warm["counters"]["created"])
        profilers: list[subprocess.Popen[bytes]] = []
        if args.profile:
            for i, pid in enumerate(server.worker_pids()):
                secs = max(args.duration - 4, 3)
                for fmt in ("flamegraph", "raw"):
                    profilers.append(start_profiler(pid, secs, f"{name}-pid{i}", fmt))
        cpu_before = harness.cpu_snapshot(server.cpu_pids(), args.db)
        result = wrk(
            server.base,
            script,
            script_args,
            duration=args.duration,
            raw_path=RUNS / f"{name}.wrk.txt",
            **common,
        )
        secs = int(result["duration_us"]) / 1e6
        result["cpu_cores"] = harness.cpu_used(
            cpu_before, harness.cpu_snapshot(server.cpu_pids(), args.db), secs
        )
        result["cpu_cores"]["wrk"] = round(float(result["wrk_cpu_s"]) / secs, 2)
        result["cpu_cores"]["others"] = round(
            max(result["cpu_cores"]["others"] - result["cpu_cores"]["wrk"], 0.0), 2
        )
        for p in profilers:
            _, err = p.communicate(timeout=60)
            if p.returncode:
                log(f"  py-spy failed: {err.decode()[-500:]}")
        check = asyncio.run(booking_check(url, since_id)) if scenario == "booking" else {}
        if check:
            # Rows nobody here was told about: in flight when wrk stopped (at most one per
            # connection per wrk run), else a sign that someone else wrote to the database.
            check["unaccounted_rows"] = (
                check["rows_created"] - warm_created - int(result["counters"]["created"])
            )
    finally:
        server.stop()
        log(f"  server pid {server.cpu_pids()[0]} stopped")

    summary = summarize(scenario, workers, args, result, check)
    summary["server_log"] = harness.server_log_summary(server.log_path, top=5)
    summary["name"] = name
    summary["machine"] = quiet
    with (RUNS / "results.jsonl").open("a") as f:
        f.write(json.dumps({**summary, "wrk": result}) + "\n")
    print_summary(summary, result)
    return summary


def summarize(
    scenario: str,
    workers: int,
    args: argparse.Namespace,
    result: dict[str, Any],
    check: dict[str, int],
) -> dict[str, Any]:
    lat = result["latency_us"]
    assert isinstance(lat, dict)
    secs = int(result["duration_us"]) / 1e6
    requests = int(result["requests"])
    s: dict[str, Any] = {
        "scenario": scenario,
        "workers": workers,
        "instances_behind_nginx": args.instances,
        "connections": args.connections,
        "wrk_threads": args.threads,
        "duration_s": round(secs, 2),
        "requests": requests,
        "rps": round(requests / secs, 1),
        "p50_ms": lat["p50"] / 1000,
        "p95_ms": lat["p95"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "errors": result["errors"],
        "cpu_cores": result.get("cpu_cores"),
        "version": harness.git_version(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if scenario == "booking":
        s.update(result["counters"])
        s["other_status"] = result["other_status"]
        s.update(check)
    return s


def noisy(result: dict[str, Any]) -> bool:
    return float(result.get("cpu_cores", {}).get("others", 0.0)) > 0.3


def print_summary(s: dict[str, Any], result: dict[str, Any]) -> None:
    print(
        f"\n== {s['scenario']}, {s['workers']} worker(s), {s['connections']} connections, "
        f"{s['duration_s']} s ==\n"
        f"  {s['rps']:,} req/s ({s['requests']:,} requests)   "
        f"p50 {s['p50_ms']:.1f} ms   p95 {s['p95_ms']:.1f} ms   p99 {s['p99_ms']:.1f} ms   "
        f"max {s['max_ms']:.1f} ms\n"
        f"  socket/status errors: {s['errors']}\n"
        f"  CPU, average cores busy (of 2): {result.get('cpu_cores')}"
        + ("   <- a noisy neighbour: compare with care" if noisy(result) else "")
    )
    for message, count in s["server_log"].items():
        print(f"  server log: {count} x {message}")
    if s["scenario"] == "booking":
        n = max(int(s["requests"]), 1)

        def pct(k: str) -> str:
            return f"{s[k]:,} ({100 * int(s[k]) / n:.1f} %)"

        print(
            f"  201 created {pct('created')}   409 seat_conflict {pct('seat_conflict')}   "
            f"409 user_overlap {pct('user_overlap')}   other {pct('other_total')} "
            f"{s['other_status']}"
        )
        if result.get("samples"):
            for status, body in result["samples"].items():
                print(f"    sample {status}: {body[:200]}")
        print(
            f"  SQL check: seat overlaps {s['seat_overlaps']}, user overlaps "
            f"{s['user_overlaps']} (expected 0); rows created by the run "
            f"{s['rows_created']:,} ({s['active_rows_created']:,} active; includes the warm-up "
            "and requests in flight when wrk stopped)"
        )
        extra = int(s["unaccounted_rows"])
        if not 0 <= extra <= 2 * int(s["connections"]):
            print(
                f"  WARNING: {extra:,} rows more than the 201s counted: did something else "
                "write to the bench database during the run? Numbers are suspect."
            )
    print(f"  target (1 worker): {TARGETS[str(s['scenario'])]}\n", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("scenario", choices=(*SCENARIOS, *EXTRA_SCENARIOS, "all"))
    p.add_argument(
        "-w",
        "--workers",
        type=int,
        action="append",
        help="uvicorn workers; repeat for several (default 1; 'all': 1 and 2)",
    )
    p.add_argument("-d", "--duration", type=float, default=20, help="measured seconds [20]")
    p.add_argument("--warmup", type=float, default=3, help="warm-up seconds, not measured [3]")
    p.add_argument("-c", "--connections", type=int, default=50)
    p.add_argument("-t", "--threads", type=int, default=2, help="wrk threads [2]")
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy record every worker during the run (loadtest/profiles/)",
    )
    p.add_argument(
        "--instances",
        type=int,
        default=0,
        help="N single-worker instances behind nginx (deploy/cluster.py) instead of one "
        "uvicorn with --workers",
    )
    p.add_argument("--server", default=seeding.DEFAULT_SERVER)
    p.add_argument("--db", default=seeding.DEFAULT_DB)
    p.add_argument("--reseed", action="store_true", help="re-seed before every run")
    p.add_argument(
        "--no-reseed",
        action="store_true",
        help="booking: keep the data of earlier runs (default: re-seed)",
    )
    p.add_argument("--days", type=int, default=13, help="booking: days 1..N ahead [13]")
    p.add_argument("--first-hour", type=int, default=8, help="booking: earliest start [8]")
    p.add_argument("--last-hour", type=int, default=22, help="booking: starts before [22]")
    p.add_argument("--random-seed", type=int, default=12345)
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=60,
        help="wait up to this many s for other processes to use < 0.3 cores [60]; 0: don't",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra server environment, e.g. --env DB_POOL_MAX_SIZE=30",
    )
    args = p.parse_args(argv)
    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
    workers = args.workers or ([1, 2] if args.scenario == "all" else [1])
    summaries = []
    for w in workers:
        for sc in scenarios:
            try:
                summaries.append(run_one(sc, w, args))
            except Exception as exc:  # one failed run must not lose the others
                log(f"{sc}, {w} worker(s): FAILED: {type(exc).__name__}: {exc}")
    if len(summaries) > 1:
        print(
            "| scenario | workers | req/s | p50 ms | p95 ms | p99 ms "
            "| cores: server / postgres / others | notes |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
        for s in summaries:
            notes = ""
            if s["scenario"] == "booking":
                notes = (
                    f"201 {s['created']:,} / seat_conflict {s['seat_conflict']:,} / "
                    f"user_overlap {s['user_overlap']:,} / other {s['other_total']:,}; "
                    f"overlaps {int(s['seat_overlaps']) + int(s['user_overlaps'])}"
                )
            cpu = s.get("cpu_cores") or {}
            cores = " / ".join(f"{cpu.get(k, 0):.2f}" for k in ("server", "postgres", "others"))
            print(
                f"| {s['scenario']} | {s['workers']} | {s['rps']:,} | {s['p50_ms']:.1f} | "
                f"{s['p95_ms']:.1f} | {s['p99_ms']:.1f} | {cores} | {notes} |"
            )


if __name__ == "__main__":
    main()
