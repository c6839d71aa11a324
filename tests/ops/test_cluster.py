"""Two instances behind nginx, started by deploy/cluster.py as an operator would: requests
are shared between them, the database keeps them honest, a stream on one hears what the
other did, and both sweep without doing anything twice."""

import asyncio
import importlib.util
import os
import sys
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import asyncpg
import httpx
import psutil
import pytest

from app.timeutil import utcnow
from tests.conftest import REPO_ROOT
from tests.factories import (
    add_branch,
    add_reservation,
    add_seat,
    add_student,
    add_students,
    booked,
    booking,
    joined,
)
from tests.ops.support import (
    NOTIFICATIONS,
    eventually,
    logs_in,
    metric,
    require_binary,
    scrape,
    slot,
    wait_until_pid_subscribed,
)
from tests.realtime.servers import open_stream, server_env

pytestmark = [pytest.mark.slow, pytest.mark.redis]

REQUESTS = "dlsms_http_requests_total"


def load_cluster_script() -> ModuleType:
    """deploy/cluster.py as a module (deploy/ is a directory of scripts, not a package)."""
    name = "dlsms_deploy_cluster"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "deploy" / "cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@dataclass
class Cluster:
    """nginx in front (``client``) and each instance directly (``instances``)."""

    client: httpx.AsyncClient
    instances: list[httpx.AsyncClient]
    pids: list[int]
    directory: Path

    def logs(self) -> str:
        return logs_in(self.directory)


class ClusterSlot:
    """Starts the module's cluster when a test first asks for it (it needs that test's
    Redis URL) and stops exactly what it started at the end of the module."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.script = load_cluster_script()
        self.cluster: Cluster | None = None
        self._started = False

    async def get(self, database_url: str, redis_url: str) -> Cluster:
        if self.cluster is not None:
            return self.cluster
        require_binary("nginx", "/usr/sbin/nginx", required_by="DLSMS_REQUIRE_NGINX")
        env = server_env(
            database_url,
            {
                "REDIS_URL": redis_url,
                "SCHEDULER_ENABLED": True,
                "SWEEP_INTERVAL_SECONDS": 0.2,
                "LOG_LEVEL": "WARNING",
            },
        )
        self._started = True
        # cluster.py passes its whole environment down: give it exactly the test's one. It is
        # written as a command that exits at once: start() drops its Popen objects and log
        # files while the processes run on (stop() finds them by pid), which warns here.
        with mock.patch.dict(os.environ, env, clear=True), warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            started = await asyncio.to_thread(
                self.script.start, 2, directory=self.directory, timeout=60
            )
        self.cluster = Cluster(
            client=httpx.AsyncClient(base_url=started.url, timeout=10),
            instances=[httpx.AsyncClient(base_url=u, timeout=10) for u in started.instance_urls()],
            pids=list(started.app_pids),
            directory=self.directory,
        )
        for pid in self.cluster.pids:
            await wait_until_pid_subscribed(pid, redis_url)
        return self.cluster

    async def stop(self) -> None:
        """``cluster.py stop``; then not one of the processes it started may be left."""
        started: list[int] = []
        if self.cluster is not None:
            for client in (self.cluster.client, *self.cluster.instances):
                await client.aclose()
            started += self.cluster.pids
        nginx_pid = self.directory / "nginx.pid"
        if nginx_pid.exists():
            started.append(int(nginx_pid.read_text().strip()))
        if self._started:
            await asyncio.to_thread(self.script.stop, self.directory)
        left = [pid for pid in started if running(pid)]
        leftover = (left, (self.directory / "cluster.json").exists())
        assert leftover == ([], False), logs_in(self.directory)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
async def cluster_slot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClusterSlot]:
    holder = ClusterSlot(tmp_path_factory.mktemp("cluster"))
    try:
        yield holder
    finally:
        await holder.stop()


@pytest.fixture
async def cluster(
    cluster_slot: ClusterSlot, database_url: str, redis_url: str, db: asyncpg.Connection
) -> Cluster:
    """Two instances (sweeping every 0.2 s) behind nginx, shared by this module's tests.
    Nothing the other tests arrange is overdue, so the sweeps leave it alone."""
    return await cluster_slot.get(database_url, redis_url)


async def request_counts(cluster: Cluster, method: str, route: str) -> list[float]:
    """Per instance: requests answered for ``method`` ``route`` so far (any status)."""
    return [
        metric(await scrape(instance), REQUESTS, method=method, route=route)
        for instance in cluster.instances
    ]


async def requests_since(
    cluster: Cluster, before: list[float], method: str, route: str, expected: int
) -> list[float]:
    """Per instance: requests counted since ``before``, once they add up to ``expected``
    (an instance counts a request just after answering it)."""
    after = await eventually(
        lambda: request_counts(cluster, method, route),
        lambda counts: sum(counts) - sum(before) >= expected,
        within=5,
        what=f"{expected} {method} {route} counted",
    )
    return [a - b for a, b in zip(after, before, strict=True)]


async def test_bookings_through_nginx_are_answered_by_both_instances(
    cluster: Cluster, db: asyncpg.Connection
) -> None:
    branch_id = await add_branch(db, "Main")
    seats = [await add_seat(db, branch_id, f"A{n}") for n in range(8)]
    students = await add_students(db, "B", len(seats))
    start, end = slot()
    before = await request_counts(cluster, "POST", "/reservations")

    statuses, echoed = [], []
    for n, (seat_id, student) in enumerate(zip(seats, students, strict=True)):
        response = await cluster.client.post(
            "/reservations",
            json=booking(seat_id, start, end),
            headers={**student.headers, "X-Request-ID": f"ops-cluster-{n}"},
        )
        statuses.append(response.status_code)
        echoed.append(response.headers.get("x-request-id"))

    served = await requests_since(cluster, before, "POST", "/reservations", len(seats))
    assert statuses == [201] * len(seats)
    assert echoed == [f"ops-cluster-{n}" for n in range(len(seats))]
    assert sum(served) == len(seats)
    assert all(count >= 1 for count in served), served
    booked = await db.fetchval("SELECT count(*) FROM reservations WHERE status = 'CONFIRMED'")
    assert booked == len(seats)


async def test_two_users_racing_for_a_seat_through_nginx_get_one_booking_and_one_conflict(
    cluster: Cluster, db: asyncpg.Connection
) -> None:
    branch_id = await add_branch(db, "Main")
    seats = [await add_seat(db, branch_id, f"R{n}") for n in range(6)]
    students = await add_students(db, "R", 2 * len(seats))
    start, end = slot()
    before = await request_counts(cluster, "POST", "/reservations")

    async def attempt(n: int) -> httpx.Response:
        seat_id = seats[n // 2]
        return await cluster.client.post(
            "/reservations", json=booking(seat_id, start, end), headers=students[n].headers
        )

    responses = await asyncio.gather(*(attempt(n) for n in range(2 * len(seats))))

    served = await requests_since(cluster, before, "POST", "/reservations", 2 * len(seats))
    for n in range(len(seats)):
        pair = sorted(responses[2 * n : 2 * n + 2], key=lambda r: r.status_code)
        assert [r.status_code for r in pair] == [201, 409], [r.text for r in pair]
        assert pair[1].json()["code"] == "seat_conflict"
    active = await db.fetch(
        "SELECT seat_id, count(*) AS n FROM reservations "
        "WHERE status IN ('HELD', 'CONFIRMED', 'CHECKED_IN') GROUP BY seat_id"
    )
    assert {row["seat_id"]: row["n"] for row in active} == dict.fromkeys(seats, 1)
    assert sum(served) == 2 * len(seats)
    assert all(count >= 1 for count in served), served  # the race crossed instances


async def stream_holder(cluster: Cluster) -> int:
    """The index of the one instance with an open stream."""
    gauges = await eventually(
        lambda: asyncio.gather(
            *(scrape(instance) for instance in cluster.instances),
        ),
        lambda texts: sorted(metric(t, "dlsms_sse_subscribers") for t in texts) == [0, 1],
        within=5,
        what="exactly one instance holding the stream",
    )
    return [metric(t, "dlsms_sse_subscribers") for t in gauges].index(1)


async def test_a_stream_opened_through_nginx_hears_an_offer_caused_on_the_other_instance(
    cluster: Cluster, db: asyncpg.Connection
) -> None:
    seat_id = await add_seat(db, await add_branch(db, "Main"), "A1")
    alice, bob = await add_student(db, "S0000001"), await add_student(db, "S0000002")
    start, end = slot()
    taken = await booked(cluster.client, alice, seat_id, start, end)
    entry = await joined(cluster.client, bob, seat_id=seat_id, start=start, end=end)

    async with open_stream(cluster.client, NOTIFICATIONS, headers=bob.headers) as stream:
        other = cluster.instances[1 - await stream_holder(cluster)]
        cancelled = await other.delete(f"/reservations/{taken['id']}", headers=alice.headers)
        assert cancelled.status_code == 200, cancelled.text
        async with asyncio.timeout(5):
            while True:
                event = await stream.next_event(within=5)
                body: dict[str, Any] = event.json()
                # Pub/sub channels are server-wide: skip what another test run published.
                if event.event == "waitlist.offer" and body["data"]["entry_id"] == entry["id"]:
                    break

    assert body["data"]["reservation_id"] != taken["id"]
    assert body["data"]["seat_id"] == seat_id
    row = await db.fetchrow("SELECT user_id, type FROM notifications WHERE id = $1", body["id"])
    assert row is not None
    assert (row["user_id"], row["type"]) == (bob.id, "waitlist.offer")


async def sweep_counts(cluster: Cluster) -> list[tuple[float, float, float]]:
    """Per instance: (successful sweep ticks, failed ones, rows made NO_SHOW) so far."""
    counts = []
    for instance in cluster.instances:
        text = await scrape(instance)
        counts.append(
            (
                metric(text, "dlsms_sweep_runs_total", outcome="ok"),
                metric(text, "dlsms_sweep_runs_total", outcome="failed"),
                metric(text, "dlsms_sweep_rows_total", kind="no_show"),
            )
        )
    return counts


async def test_both_instances_sweep_and_each_overdue_booking_becomes_a_no_show_once(
    cluster: Cluster, db: asyncpg.Connection
) -> None:
    overdue = 40
    branch_id = await add_branch(db, "Main")
    seats = [await add_seat(db, branch_id, f"N{n}") for n in range(4)]
    late = await add_students(db, "L", overdue)
    before = await sweep_counts(cluster)
    now = utcnow()
    async with db.transaction():  # committed at once: both instances find them together
        booking_ids = [
            await add_reservation(
                db,
                user_id=student.id,
                seat_id=seats[n % len(seats)],
                start=now - timedelta(hours=3) + timedelta(minutes=15 * (n // len(seats))),
                end=now - timedelta(hours=3) + timedelta(minutes=15 * (n // len(seats) + 1)),
            )
            for n, student in enumerate(late)
        ]

    await eventually(
        lambda: db.fetchval("SELECT count(*) FROM reservations WHERE status = 'CONFIRMED'"),
        lambda left: left == 0,
        within=20,
        what="every overdue booking swept",
    )
    after = await eventually(
        lambda: sweep_counts(cluster),
        lambda counts: (
            sum(c[2] for c in counts) - sum(b[2] for b in before) >= overdue
            and all(c[0] - b[0] >= 2 for c, b in zip(counts, before, strict=True))
        ),
        within=10,
        what="the sweeps' counters",
    )

    statuses = {r["id"]: r["status"] for r in await db.fetch("SELECT id, status FROM reservations")}
    per_booking = await db.fetch(
        "SELECT (data->>'reservation_id')::bigint AS id, count(*) AS n FROM notifications "
        "WHERE type = 'reservation.no_show' GROUP BY 1"
    )
    kinds = await db.fetch("SELECT type, count(*) AS n FROM notifications GROUP BY type")
    assert statuses == dict.fromkeys(booking_ids, "NO_SHOW")
    assert {row["id"]: row["n"] for row in per_booking} == dict.fromkeys(booking_ids, 1)
    assert {row["type"]: row["n"] for row in kinds} == {"reservation.no_show": overdue}
    ticks = [a[0] - b[0] for a, b in zip(after, before, strict=True)]
    failed = [a[1] - b[1] for a, b in zip(after, before, strict=True)]
    rows = [a[2] - b[2] for a, b in zip(after, before, strict=True)]
    assert all(t >= 2 for t in ticks), ticks  # both instances were sweeping meanwhile
    assert failed == [0, 0]
    assert sum(rows) == overdue, rows  # each row changed by exactly one of them
