"""gRPC vs REST, side by side in one run on one server and one seeded database.

    .venv/bin/python loadtest/grpc_bench.py     # seeds dlsms_grpc_bench, drops it after
    .venv/bin/python loadtest/grpc_bench.py --duration 30 --processes 2 --keep-db

(Re)creates a scratch database with seed.py's defaults, starts one server
(``harness.Server``: one uvicorn worker, uvloop, httptools, no access log) with
``GRPC_PORT`` set, so that the same process answers both interfaces over the same pool,
then measures, each for ``--duration`` seconds after ``--warmup`` seconds, at
``--callers`` (50) concurrent callers:

* ``listing``: ``GET /seats?available_only=true&branch=B`` and
  ``SeatService.GetSeats(branch=B, available_only=true)``, a random student's token;
* ``booking``: ``POST /reservations`` and ``ReservationService.CreateReservation``, a
  random student, seat and slot (as loadtest/lua/booking.lua: a day ahead, a start on a
  whole or half hour in 08:00-22:00 UTC, 60/90/120 minutes). Each client (and each
  round) books in a block of days of its own among days 1-12 (three clients, one round:
  1-4, 5-8, 9-12), where the seed made the same density of bookings, so that none of
  them books into the others' slots.

with three clients, one after the other:

* ``rest-wrk``: wrk (-c callers, -t 2) with bench.py's Lua scripts: the project's REST
  reference, the lightest client there is;
* ``rest-py``: ``--processes`` Python processes of raw HTTP/1.1 keep-alive connections
  on asyncio (the callers spread over them, one connection each);
* ``grpc-py``: ``--processes`` Python processes of grpc.aio, one channel (HTTP/2
  connection) each, the callers spread over them as concurrent calls;

``rest-py`` and ``grpc-py`` are the same client (same processes, event loop, request
mix and timing), so they compare the interfaces; wrk shows what REST does when the
client costs least. Every row gives req/s, p50/p95/p99/max, the answers by kind, and the
average cores used by the server, PostgreSQL and the client during the measured
seconds; booking rows are checked in SQL (no overlapping active pair). A JSON line goes
to loadtest/runs/grpc_bench.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import time
import urllib.parse
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench
import harness
import seed as seeding

DEFAULT_DB = "dlsms_grpc_bench"
CLIENTS = ("rest-wrk", "rest-py", "grpc-py")
OPERATIONS = ("listing", "booking")
BOOKABLE_DAYS = 12  # days 1..12 ahead: inside BOOKING_HORIZON_DAYS (14) and the seed's
FIRST_HOUR, LAST_HOUR = 8, 22


@dataclass
class Spec:
    """What one client process does: its share of the callers, its data, and when."""

    client: str  # rest-py or grpc-py
    operation: str
    callers: int
    http_port: int
    grpc_port: int
    tokens: list[str]
    branches: list[str]
    seats: list[int]
    first_day: int  # booking: days first_day .. first_day + days - 1 ahead
    days: int
    start_at: float  # time.time() when measuring starts (warm-up before)
    warmup: float
    duration: float
    random_seed: int


def day_block(client: str, round_: int, args: argparse.Namespace) -> tuple[int, int]:
    """(first day, days) that ``client`` books in round ``round_``: a block of its own,
    untouched by the other clients and rounds, as many days as there is room for."""
    blocks = len(args.clients) * args.rounds
    days = max(BOOKABLE_DAYS // blocks, 1)
    index = (round_ - 1) * len(args.clients) + args.clients.index(client)
    return 1 + (index * days) % BOOKABLE_DAYS, days


def slots(first_day: int, days: int) -> list[tuple[datetime, datetime]]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    made = []
    for day in range(first_day, first_day + days):
        for half in range(FIRST_HOUR * 2, LAST_HOUR * 2):
            start = today + timedelta(days=day, minutes=30 * half)
            made += [(start, start + timedelta(minutes=m)) for m in (60, 90, 120)]
    return made


# --------------------------------------------------------------------------- clients


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; uvicorn answers with Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        self.writer.write(head + body)
        answer = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in answer.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return int(answer[9:12]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def rest_caller(spec: Spec, rng: random.Random) -> Any:
    """A coroutine function: one request on a connection, answering its kind."""
    auth = [f"Authorization: Bearer {t}\r\n" for t in spec.tokens]
    if spec.operation == "listing":
        paths = [
            "/seats?available_only=true&branch=" + urllib.parse.quote(b) for b in spec.branches
        ]

        async def listing(conn: HttpConnection) -> str:
            head = f"GET {rng.choice(paths)} HTTP/1.1\r\nHost: bench\r\n{rng.choice(auth)}\r\n"
            status, _ = await conn.send(head.encode())
            return str(status)

        return listing
    times = slots(spec.first_day, spec.days)

    async def booking(conn: HttpConnection) -> str:
        start, end = rng.choice(times)
        body = json.dumps(
            {
                "seat_id": rng.choice(spec.seats),
                "start_time": start.isoformat(),
                "end_time": end.isoformat(),
            }
        ).encode()
        head = (
            f"POST /reservations HTTP/1.1\r\nHost: bench\r\n{rng.choice(auth)}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        status, answer = await conn.send(head.encode(), body)
        if status == 409:
            return f"409 {json.loads(answer).get('code')}"
        return str(status)

    return booking


async def run_rest(spec: Spec) -> tuple[list[float], dict[str, int], float]:
    rng = random.Random(spec.random_seed)
    call = rest_caller(spec, rng)
    connections = [await HttpConnection.open(spec.http_port) for _ in range(spec.callers)]
    try:
        return await drive(spec, [lambda c=c: call(c) for c in connections])
    finally:
        for conn in connections:
            conn.close()


async def run_grpc(spec: Spec) -> tuple[list[float], dict[str, int], float]:
    import grpc
    from google.protobuf.timestamp_pb2 import Timestamp

    from app.grpc.generated import dlsms_pb2 as pb
    from app.grpc.generated import dlsms_pb2_grpc as pb_grpc

    rng = random.Random(spec.random_seed)
    auth = [(("authorization", f"Bearer {t}"),) for t in spec.tokens]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{spec.grpc_port}") as channel:
        await channel.channel_ready()
        if spec.operation == "listing":
            seats = pb_grpc.SeatServiceStub(channel)
            requests = [pb.GetSeatsRequest(branch=b, available_only=True) for b in spec.branches]

            async def call() -> str:
                try:
                    await seats.GetSeats(rng.choice(requests), metadata=rng.choice(auth))
                except grpc.aio.AioRpcError as error:
                    return str(error.code().name)
                return "OK"

        else:
            reservations = pb_grpc.ReservationServiceStub(channel)
            times = [
                (Timestamp(seconds=int(s.timestamp())), Timestamp(seconds=int(e.timestamp())))
                for s, e in slots(spec.first_day, spec.days)
            ]

            async def call() -> str:
                start, end = rng.choice(times)
                request = pb.CreateReservationRequest(
                    seat_id=rng.choice(spec.seats), start_time=start, end_time=end
                )
                try:
                    await reservations.CreateReservation(request, metadata=rng.choice(auth))
                except grpc.aio.AioRpcError as error:
                    return f"{error.code().name} {reason(error)}"
                return "OK"

        return await drive(spec, [call] * spec.callers)


def reason(error: Any) -> str | None:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return None


async def drive(spec: Spec, callers: list[Any]) -> tuple[list[float], dict[str, int], float]:
    """Each caller calls in a loop from start_at - warmup to start_at + duration; the
    calls sent from start_at on are measured. Also the process's CPU seconds meanwhile."""
    loop = asyncio.get_running_loop()
    begin = loop.time() + (spec.start_at - spec.warmup - time.time())
    measure = begin + spec.warmup
    end = measure + spec.duration
    latencies: list[float] = []
    kinds: dict[str, int] = {}
    cpu: list[float] = []

    async def caller(call: Any) -> None:
        while (now := loop.time()) < end:
            kind = await call()
            if now >= measure:
                latencies.append(loop.time() - now)
                kinds[kind] = kinds.get(kind, 0) + 1

    async def clock() -> None:
        await asyncio.sleep(max(measure - loop.time(), 0))
        cpu.append(time.process_time())
        await asyncio.sleep(max(end - loop.time(), 0))
        cpu.append(time.process_time())

    await asyncio.sleep(max(begin - loop.time(), 0))
    await asyncio.gather(clock(), *(caller(c) for c in callers))
    return latencies, kinds, cpu[1] - cpu[0]


def client_process(spec: Spec) -> tuple[list[float], dict[str, int], float]:
    run = run_rest if spec.client == "rest-py" else run_grpc
    return asyncio.run(run(spec))


# --------------------------------------------------------------------------- runs


def percentile_ms(ordered: list[float], q: float) -> float:
    """Nearest rank, in ms, of latencies in seconds (sorted)."""
    k = max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))
    return round(ordered[int(k)] * 1000, 1)


def python_clients(
    client: str,
    operation: str,
    round_: int,
    args: argparse.Namespace,
    data: dict[str, Any],
    server: Any,
) -> dict[str, Any]:
    first_day, days = day_block(client, round_, args)
    share = [args.callers // args.processes + (i < args.callers % args.processes) for i in
             range(args.processes)]  # fmt: skip
    start_at = time.time() + 3 + args.warmup  # spawned interpreters import and connect first
    specs = [
        Spec(
            client=client,
            operation=operation,
            callers=n,
            http_port=server.port,
            grpc_port=data["grpc_port"],
            tokens=data["tokens"],
            branches=data["branches"],
            seats=data["seats"],
            first_day=first_day,
            days=days,
            start_at=start_at,
            warmup=args.warmup,
            duration=args.duration,
            random_seed=args.random_seed * 100 + i,
        )
        for i, n in enumerate(share)
    ]
    context = multiprocessing.get_context("spawn")  # no forked gRPC or event loop state
    with ProcessPoolExecutor(len(specs), mp_context=context) as pool:
        futures = [pool.submit(client_process, spec) for spec in specs]
        time.sleep(max(start_at - time.time(), 0))
        before = harness.cpu_snapshot(server.cpu_pids(), args.db)
        time.sleep(args.duration)
        after = harness.cpu_snapshot(server.cpu_pids(), args.db)
        results = [f.result() for f in futures]
    latencies = sorted(x for r in results for x in r[0])
    kinds: dict[str, int] = {}
    for r in results:
        for kind, n in r[1].items():
            kinds[kind] = kinds.get(kind, 0) + n
    cores = harness.cpu_used(before, after, args.duration)
    cores["client"] = round(sum(r[2] for r in results) / args.duration, 2)
    cores["others"] = round(max(cores["others"] - cores["client"], 0.0), 2)
    return {
        "requests": len(latencies),
        "rps": round(len(latencies) / args.duration, 1),
        "p50_ms": percentile_ms(latencies, 50),
        "p95_ms": percentile_ms(latencies, 95),
        "p99_ms": percentile_ms(latencies, 99),
        "max_ms": round(latencies[-1] * 1000, 1),
        "answers": kinds,
        "cpu_cores": cores,
    }


def wrk_client(
    operation: str, round_: int, args: argparse.Namespace, data: dict[str, Any], server: Any
) -> dict[str, Any]:
    files = data["files"]
    if operation == "listing":
        script = "listing.lua"
        script_args = [str(files["branches"]), str(files["tokens"]), str(args.random_seed)]
    else:
        script = "booking.lua"
        first_day, days = day_block("rest-wrk", round_, args)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        shifted = today + timedelta(days=first_day - 1)  # booking.lua books days 1..N after
        script_args = [
            str(files["tokens"]),
            str(files["seats"]),
            str(int(shifted.timestamp())),
            str(days),
            str(FIRST_HOUR),
            str(LAST_HOUR),
            str(args.random_seed),
        ]
    common = {"connections": args.callers, "threads": 2}
    if args.warmup > 0:
        bench.wrk(server.base, script, script_args, duration=args.warmup, raw_path=None, **common)
    before = harness.cpu_snapshot(server.cpu_pids(), args.db)
    result = bench.wrk(
        server.base,
        script,
        script_args,
        duration=args.duration,
        raw_path=harness.RUNS / f"{data['stamp']}-grpc-bench-{operation}.wrk.txt",
        **common,
    )
    secs = int(result["duration_us"]) / 1e6
    cores = harness.cpu_used(before, harness.cpu_snapshot(server.cpu_pids(), args.db), secs)
    cores["client"] = round(float(result["wrk_cpu_s"]) / secs, 2)
    cores["others"] = round(max(cores["others"] - cores["client"], 0.0), 2)
    lat = result["latency_us"]
    answers: dict[str, int] = {}
    if operation == "booking":
        counters = result["counters"]
        answers = {
            "201": counters["created"],
            "409 seat_conflict": counters["seat_conflict"],
            "409 user_overlap": counters["user_overlap"],
            **{str(k): v for k, v in result["other_status"].items()},
        }
    # wrk counts every non-2xx answer in errors.status (the 409s above): only the socket
    # errors are errors here.
    socket_errors = sum(v for k, v in result["errors"].items() if k != "status")
    if socket_errors:
        answers["socket errors"] = socket_errors
    if operation == "listing" and result["errors"].get("status"):
        answers["non-2xx"] = result["errors"]["status"]
    if operation == "listing":
        answers["2xx"] = int(result["requests"]) - answers.get("non-2xx", 0)
    return {
        "requests": int(result["requests"]),
        "rps": round(int(result["requests"]) / secs, 1),
        "p50_ms": lat["p50"] / 1000,
        "p95_ms": lat["p95"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "answers": answers,
        "cpu_cores": cores,
    }


async def load_data(url: str) -> dict[str, Any]:
    conn = await harness.pg(url)
    try:
        users = await conn.fetch("SELECT id, student_id FROM users WHERE role = 'student'")
        seats = await conn.fetch("SELECT id FROM seats WHERE status = 'ACTIVE' ORDER BY id")
        branches = await conn.fetch("SELECT name FROM branches ORDER BY id")
    finally:
        await conn.close()
    return {
        "tokens": list(harness.mint_tokens([(u["id"], u["student_id"]) for u in users]).values()),
        "seats": [s["id"] for s in seats],
        "branches": [b["name"] for b in branches],
    }


def write_inputs(data: dict[str, Any]) -> dict[str, Path]:
    """The Lua scripts' input files (one item a line), in a folder of this script's own
    (bench.py's loadtest/.data/*.txt may belong to another run)."""
    folder = harness.DATA / "grpc_bench"
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / f"{name}.txt" for name in ("tokens", "seats", "branches")}
    for name, path in files.items():
        path.write_text("\n".join(str(item) for item in data[name]) + "\n")
    return files


async def drop_database(server: str, name: str) -> None:
    conn = await harness.pg(f"{server}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--server", default=seeding.DEFAULT_SERVER)
    p.add_argument("--db", default=DEFAULT_DB, help="scratch database: recreated, then dropped")
    p.add_argument("--keep-db", action="store_true", help="do not drop the database after")
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--callers", type=int, default=50)
    p.add_argument("--processes", type=int, default=2, help="client processes (Python clients)")
    p.add_argument("--operations", nargs="+", choices=OPERATIONS, default=list(OPERATIONS))
    p.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the clients in turn (on a noisy machine: compare within a round)",
    )
    p.add_argument("--quiet-wait", type=float, default=60)
    p.add_argument("--random-seed", type=int, default=1)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    args = p.parse_args(argv)

    url = seeding.db_url(args.server, args.db)
    harness.log(f"seeding {url} (seed.py defaults)")
    asyncio.run(seeding.seed(seeding.parse_args(["--server", args.server, "--db", args.db])))
    try:
        data = asyncio.run(load_data(url))
        data["files"] = write_inputs(data)
        data["grpc_port"] = harness.free_port()
        data["stamp"] = harness.stamp()
        harness.RUNS.mkdir(exist_ok=True)
        log_path = harness.RUNS / f"{data['stamp']}-grpc-bench.server.log"
        extra = {"GRPC_PORT": str(data["grpc_port"]), **dict(e.split("=", 1) for e in args.env)}
        server = harness.Server(database_url=url, workers=1, log_path=log_path, extra_env=extra)
        rows: list[dict[str, Any]] = []
        try:
            server.wait_ready()
            for operation in args.operations:
                for round_ in range(1, args.rounds + 1):
                    for client in args.clients:
                        quiet = harness.wait_for_quiet(args.quiet_wait)
                        since = asyncio.run(bench.max_reservation_id(url))
                        harness.log(
                            f"{operation} / {client} (round {round_}): {args.duration:g} s, "
                            f"{args.callers} callers"
                        )
                        if client == "rest-wrk":
                            row = wrk_client(operation, round_, args, data, server)
                        else:
                            row = python_clients(client, operation, round_, args, data, server)
                        row = {
                            "operation": operation,
                            "client": client,
                            "round": round_,
                            **row,
                            "quiet": quiet,
                        }
                        if operation == "booking":
                            row["check"] = asyncio.run(bench.booking_check(url, since))
                        harness.log("  " + json.dumps(row))
                        rows.append(row)
        finally:
            server.stop()
        record = {
            "version": harness.git_version(),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"nproc": os.cpu_count(), "cpu": cpu_model()},
            "args": {k: v for k, v in vars(args).items() if k != "env"} | {"env": args.env},
            "server_log": harness.server_log_summary(log_path),
            "rows": rows,
        }
        harness.append_jsonl("grpc_bench.jsonl", record)
        print_table(rows)
    finally:
        if not args.keep_db:
            asyncio.run(drop_database(args.server, args.db))
            harness.log(f"dropped {args.db}")


def cpu_model() -> str:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "| operation | client | round | req/s | p50 ms | p95 ms | p99 ms | max ms "
        "| cores server / pg / client / others | answers |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in rows:
        c = r["cpu_cores"]
        cores = f"{c['server']} / {c['postgres']} / {c['client']} / {c['others']}"
        answers = ", ".join(f"{k}: {v:,}" for k, v in sorted(r["answers"].items()))
        print(
            f"| {r['operation']} | {r['client']} | {r['round']} | {r['rps']:,.0f} | {r['p50_ms']} "
            f"| {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} | {cores} | {answers} |"
        )


if __name__ == "__main__":
    main()
