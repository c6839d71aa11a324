"""SIGTERM to one instance (``uvicorn app.main:app`` and ``dlsms serve``): what is in
flight finishes, nobody new gets in, streams end at once, the scheduler and the pool
stop, and the process is gone within the grace period."""

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.timeutil import utcnow
from tests.conftest import REPO_ROOT
from tests.factories import add_branch, add_reservation, add_seat, add_student
from tests.ops.support import NOTIFICATIONS, eventually, wait_for_lock_waiter
from tests.realtime.servers import free_port, open_stream, server_env

pytestmark = pytest.mark.slow

DLSMS = str(Path(sys.executable).with_name("dlsms"))
GRACE_SECONDS = 8  # longer than every step below, so that "promptly" is told apart
READY_TIMEOUT = 30.0
UNFINISHED_RESPONSE = "ASGI callable returned without completing response."


@dataclass
class Instance:
    command: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log_records(self) -> list[dict[str, Any]]:
        """The process's log, one JSON object per line (anything else kept as a message)."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"message": line})
        return records

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def spawn(command: str, database_url: str, log_dir: Path, grace: int, **overrides: Any) -> Instance:
    """``uvicorn app.main:app`` or ``dlsms serve`` on a free port, sweeping every 0.2 s and
    logging at INFO (JSON lines) to a file of its own."""
    port = free_port()
    argv = {
        "uvicorn": [
            sys.executable,
            *("-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)),
            *("--log-level", "info", "--timeout-graceful-shutdown", str(grace)),
        ],
        "dlsms": [DLSMS, "serve", "--host", "127.0.0.1", "--port", str(port)],
    }[command]
    env = server_env(
        database_url,
        {
            "SCHEDULER_ENABLED": True,
            "SWEEP_INTERVAL_SECONDS": 0.2,
            "LOG_LEVEL": "INFO",
            "SHUTDOWN_GRACE_SECONDS": grace,
            "SSE_HEARTBEAT_SECONDS": 1,
            **overrides,
        },
    )
    log_path = log_dir / f"{command}-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    return Instance(command, proc, f"http://127.0.0.1:{port}", log_path)


async def until_ready(instance: Instance) -> bool:
    """True once /ready answers 200; False when the port was taken under our feet."""
    deadline = time.monotonic() + READY_TIMEOUT
    async with httpx.AsyncClient(base_url=instance.url) as client:
        while True:
            if instance.proc.poll() is not None:
                if "address already in use" in instance.log_tail().lower():
                    return False
                raise AssertionError(f"{instance.command} exited:\n{instance.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/ready", timeout=2)).status_code == 200:
                    return True
            assert time.monotonic() < deadline, f"never ready:\n{instance.log_tail()}"
            await asyncio.sleep(0.1)


Launch = Callable[..., Awaitable[Instance]]


@pytest.fixture
async def launch(database_url: str, tmp_path: Path) -> AsyncIterator[Launch]:
    """Factory: ``await launch("uvicorn" | "dlsms", grace=..., **settings)``, ready to serve
    on the test database. Whatever still runs at the end of the test is killed."""
    started: list[Instance] = []

    async def start(command: str, grace: int = GRACE_SECONDS, **overrides: Any) -> Instance:
        for _ in range(3):
            instance = spawn(command, database_url, tmp_path, grace, **overrides)
            started.append(instance)
            if await until_ready(instance):
                return instance
        raise AssertionError("no free port found three times in a row")

    try:
        yield start
    finally:
        for instance in started:
            if instance.proc.poll() is None:
                instance.proc.kill()
            instance.proc.wait()


async def refuses_new_connections(url: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=url) as fresh:
            await fresh.get("/health", timeout=1)
    except httpx.ConnectError:
        return True
    return False


async def other_sessions(db: asyncpg.Connection, *ours: asyncpg.Connection) -> int:
    """Sessions on the test database other than the test's own: the instance's pool."""
    count: int = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND NOT pid = ANY($1::int[])",
        [conn.get_server_pid() for conn in (db, *ours)],
    )
    return count


def expected_exit_code(command: str) -> int:
    # `dlsms serve` exits 0. Plain uvicorn, after a complete graceful shutdown, raises the
    # signal again for the default handler (uvicorn >= 0.29), so it ends "killed by SIGTERM"
    # (143 in a shell) by design; the log below shows the shutdown finished first.
    return 0 if command == "dlsms" else -signal.SIGTERM


def errors(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("level") in ("ERROR", "CRITICAL")]


def known_defect(record: dict[str, Any]) -> bool:
    return record["message"] == UNFINISHED_RESPONSE or (
        record.get("logger") == "apscheduler.executors.default"
        and "CancelledError" in str(record.get("exc_info"))
    )


class RowLock:
    """Holds ``FOR UPDATE`` on one reservation from the test's connection until released:
    a request that updates the row waits for it, held in flight as long as the test wants."""

    def __init__(self, db: asyncpg.Connection, reservation_id: int) -> None:
        self.db = db
        self.reservation_id = reservation_id
        self._transaction: Any = None

    async def __aenter__(self) -> "RowLock":
        self._transaction = self.db.transaction()
        await self._transaction.start()
        await self.db.execute(
            "SELECT 1 FROM reservations WHERE id = $1 FOR UPDATE", self.reservation_id
        )
        return self

    async def release(self) -> None:
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            await transaction.rollback()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()


@contextlib.asynccontextmanager
async def overdue_bookings_arriving(
    database_url: str, user_id: int, seat_id: int
) -> AsyncIterator[asyncpg.Connection]:
    """A new overdue CONFIRMED booking every 0.1 s (on a connection of its own, yielded),
    so that every sweep tick has a row to change and logs a line."""
    conn = await asyncpg.connect(database_url)
    base = utcnow() - timedelta(hours=5)

    async def feed() -> None:
        for n in range(2000):
            start = base + timedelta(minutes=2 * n)
            await add_reservation(
                conn,
                user_id=user_id,
                seat_id=seat_id,
                start=start,
                end=start + timedelta(minutes=1),
            )
            await asyncio.sleep(0.1)

    feeding = asyncio.create_task(feed())
    try:
        yield conn
    finally:
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding
        await conn.close()


@pytest.mark.parametrize("command", ["uvicorn", "dlsms"])
async def test_sigterm_finishes_the_request_in_flight_ends_streams_and_exits_in_time(
    command: str, launch: Launch, db: asyncpg.Connection, database_url: str
) -> None:
    main_seat = await add_seat(db, await add_branch(db, "Main"), "A1")
    other_seat = await add_seat(db, await add_branch(db, "Other"), "B1")
    alice, bob, late = [await add_student(db, f"S000000{n}") for n in range(3)]
    now = utcnow()
    booking_id = await add_reservation(
        db, user_id=alice.id, seat_id=main_seat, start=now, end=now + timedelta(hours=1)
    )
    instance = await launch(command)

    async with (
        overdue_bookings_arriving(database_url, late.id, other_seat) as feeder,
        RowLock(db, booking_id) as lock,
        httpx.AsyncClient(base_url=instance.url, timeout=30) as client,
    ):
        async with open_stream(client, NOTIFICATIONS, headers=bob.headers) as stream:
            checkin = asyncio.create_task(
                client.post(f"/reservations/{booking_id}/checkin", headers=alice.headers)
            )
            await wait_for_lock_waiter(db)
            sessions_before = await other_sessions(db, feeder)
            await asyncio.sleep(0.5)  # a few sweep ticks before the signal

            instance.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await stream.end(within=GRACE_SECONDS)
            stream_ended = time.monotonic() - signalled
        await eventually(
            lambda: refuses_new_connections(instance.url),
            bool,
            within=2,
            what="new connections refused",
        )
        refused_in_flight = instance.proc.poll() is None and not checkin.done()
        await lock.release()
        response = await asyncio.wait_for(checkin, GRACE_SECONDS)
        returncode = await asyncio.wait_for(asyncio.to_thread(instance.proc.wait), GRACE_SECONDS)
        exited = time.monotonic() - signalled
        await asyncio.sleep(0.5)  # long enough for two more sweep ticks, had any survived
        sessions_after = await eventually(
            lambda: other_sessions(db, feeder),
            lambda n: n == 0,
            within=5,
            what="the instance's database sessions closed",
        )

    assert stream_ended < 2.5, f"the stream ended {stream_ended:.1f} s after SIGTERM"
    assert refused_in_flight  # nobody new got in while the check-in was still running
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CHECKED_IN"
    assert exited < GRACE_SECONDS, f"exited {exited:.1f} s after SIGTERM"
    assert returncode == expected_exit_code(command), instance.log_tail()
    assert (sessions_before >= 1, sessions_after) == (True, 0)
    records = instance.log_records()
    messages = [str(r.get("message")) for r in records]
    # (Two known error lines have tests of their own below: the stream's, and a sweep's
    # when the signal happens to come while one runs.)
    assert [r["message"] for r in errors(records) if not known_defect(r)] == []
    assert "Application shutdown complete." in messages, instance.log_tail()
    done = messages.index("Application shutdown complete.")
    sweeps = [n for n, m in enumerate(messages) if m.startswith("sweep")]
    assert sweeps, instance.log_tail()  # the scheduler swept until the shutdown...
    assert max(sweeps) < done, instance.log_tail()  # ...and never after it


async def test_sigterm_ends_an_open_stream_with_a_complete_response_and_no_error_logged(
    launch: Launch, db: asyncpg.Connection
) -> None:
    bob = await add_student(db, "S0000001")
    instance = await launch("uvicorn", SCHEDULER_ENABLED=False)

    async with (
        httpx.AsyncClient(base_url=instance.url, timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", NOTIFICATIONS, headers=bob.headers) as response,
    ):
        lines = response.aiter_lines()
        first = await asyncio.wait_for(anext(lines), 5)
        instance.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        async def read_to_the_end() -> str:
            try:
                async for _ in lines:
                    pass
            except httpx.HTTPError as exc:
                return f"{type(exc).__name__}: {exc}"
            return "complete"

        ending = await asyncio.wait_for(read_to_the_end(), 5)
        ended = time.monotonic() - signalled
    returncode = await asyncio.wait_for(asyncio.to_thread(instance.proc.wait), GRACE_SECONDS)

    assert first == ": connected"
    assert ended < 2.5
    assert returncode == expected_exit_code("uvicorn")
    assert (ending, errors(instance.log_records())) == ("complete", [])


async def test_sigterm_while_a_sweep_runs_lets_it_end_without_an_error(
    launch: Launch, db: asyncpg.Connection
) -> None:
    instance = await launch("dlsms")

    async with db.transaction():
        # Every sweep tick ends by deleting expired idempotency keys: with this lock held,
        # a tick is sure to be running (waiting here) when the signal comes.
        await db.execute("LOCK TABLE idempotency_keys IN ACCESS EXCLUSIVE MODE")
        await wait_for_lock_waiter(db)
        instance.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.sleep(1)
    returncode = await asyncio.wait_for(asyncio.to_thread(instance.proc.wait), GRACE_SECONDS)
    exited = time.monotonic() - signalled

    assert exited < GRACE_SECONDS
    assert returncode == 0, instance.log_tail()
    assert [(r.get("logger"), r["message"]) for r in errors(instance.log_records())] == []


async def test_sigterm_with_a_request_stuck_past_the_grace_period_exits_in_time_with_json_503(
    launch: Launch, db: asyncpg.Connection
) -> None:
    grace = 2
    seat_id = await add_seat(db, await add_branch(db, "Main"), "A1")
    alice = await add_student(db, "S0000001")
    now = utcnow()
    booking_id = await add_reservation(
        db, user_id=alice.id, seat_id=seat_id, start=now, end=now + timedelta(hours=1)
    )
    instance = await launch("dlsms", grace=grace, SCHEDULER_ENABLED=False)

    async with (
        RowLock(db, booking_id) as lock,
        httpx.AsyncClient(base_url=instance.url, timeout=30) as client,
    ):
        checkin = asyncio.create_task(
            client.post(f"/reservations/{booking_id}/checkin", headers=alice.headers)
        )
        await wait_for_lock_waiter(db)
        instance.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        returncode = await asyncio.wait_for(asyncio.to_thread(instance.proc.wait), grace + 5)
        exited = time.monotonic() - signalled
        response = await asyncio.wait_for(checkin, 5)
        await lock.release()
    sessions_after = await eventually(
        lambda: other_sessions(db),
        lambda n: n == 0,
        within=5,
        what="the instance's database sessions closed",
    )

    assert grace - 0.5 < exited < grace + 2, f"exited {exited:.1f} s after SIGTERM"
    assert returncode == 0, instance.log_tail()
    assert sessions_after == 0
    # Cut short by the shutdown: a JSON error like every other (api.md), and one that says
    # "try again" (503), not uvicorn's plain-text 500.
    assert (response.status_code, response.headers.get("content-type")) == (
        503,
        "application/json",
    ), response.text
    assert response.json()["code"] == "service_unavailable"
