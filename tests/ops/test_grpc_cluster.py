"""gRPC through nginx: two instances started by ``deploy/cluster.py --grpc-port``, as in
docker-compose.yml (nginx's HTTP/2 listener, ``grpc_pass`` to each instance's GRPC_PORT).
A real grpc.aio client logs in, lists and books through nginx, sees the rich error
details nginx passes on in the trailers, and a WatchSeats stream held through nginx by
one instance hears a booking made on the other."""

import asyncio
import os
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

import asyncpg
import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from app.grpc.generated import dlsms_pb2 as pb
from app.grpc.generated import dlsms_pb2_grpc as pb_grpc
from app.timeutil import utcnow
from tests.factories import add_branch, add_seat, add_student, registered_student
from tests.ops.support import (
    eventually,
    logs_in,
    metric,
    require_binary,
    scrape,
    slot,
    wait_until_pid_subscribed,
)
from tests.ops.test_cluster import load_cluster_script, running
from tests.realtime.servers import server_env

pytestmark = [pytest.mark.slow, pytest.mark.redis]


@dataclass
class GrpcCluster:
    """nginx's gRPC port (``channel``), each instance's own gRPC port (``direct``) and
    each instance's HTTP side (``instances``, for /metrics), and nginx's HTTP side."""

    http: httpx.AsyncClient
    instances: list[httpx.AsyncClient]
    channel: grpc.aio.Channel
    direct: list[grpc.aio.Channel]
    pids: list[int]
    directory: Path

    def stubs(
        self, channel: grpc.aio.Channel | None = None
    ) -> tuple[
        "pb_grpc.AuthServiceAsyncStub",
        "pb_grpc.SeatServiceAsyncStub",
        "pb_grpc.ReservationServiceAsyncStub",
    ]:
        # The async stubs' types (mypy-protobuf's .pyi) exist for type checkers only.
        channel = channel or self.channel
        return (
            pb_grpc.AuthServiceStub(channel),
            pb_grpc.SeatServiceStub(channel),
            pb_grpc.ReservationServiceStub(channel),
        )


class GrpcClusterSlot:
    """Starts the module's cluster (with gRPC) when a test first asks for it and stops
    exactly what it started at the end of the module."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.script = load_cluster_script()
        self.cluster: GrpcCluster | None = None
        self._started = False

    async def get(self, database_url: str, redis_url: str) -> GrpcCluster:
        if self.cluster is not None:
            return self.cluster
        require_binary("nginx", "/usr/sbin/nginx", required_by="DLSMS_REQUIRE_NGINX")
        env = server_env(database_url, {"REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"})
        self._started = True
        # As in test_cluster.py: exactly the test's environment, and no warnings for the
        # Popen objects start() drops while its processes run on.
        with mock.patch.dict(os.environ, env, clear=True), warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            started = await asyncio.to_thread(
                self.script.start, 2, directory=self.directory, timeout=60, grpc_port=0
            )
        assert started.grpc_target is not None
        self.cluster = GrpcCluster(
            http=httpx.AsyncClient(base_url=started.url, timeout=10),
            instances=[httpx.AsyncClient(base_url=u, timeout=10) for u in started.instance_urls()],
            channel=grpc.aio.insecure_channel(started.grpc_target),
            direct=[grpc.aio.insecure_channel(t) for t in started.instance_grpc_targets()],
            pids=list(started.app_pids),
            directory=self.directory,
        )
        for pid in self.cluster.pids:
            await wait_until_pid_subscribed(pid, redis_url)
        return self.cluster

    async def stop(self) -> None:
        started: list[int] = []
        if self.cluster is not None:
            for channel in (self.cluster.channel, *self.cluster.direct):
                await channel.close()
            for client in (self.cluster.http, *self.cluster.instances):
                await client.aclose()
            started += self.cluster.pids
        nginx_pid = self.directory / "nginx.pid"
        if nginx_pid.exists():
            started.append(int(nginx_pid.read_text().strip()))
        if self._started:
            await asyncio.to_thread(self.script.stop, self.directory)
        left = [pid for pid in started if running(pid)]
        assert (left, (self.directory / "cluster.json").exists()) == ([], False), logs_in(
            self.directory
        )


@pytest.fixture(scope="module")
async def grpc_cluster_slot(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[GrpcClusterSlot]:
    holder = GrpcClusterSlot(tmp_path_factory.mktemp("grpc-cluster"))
    try:
        yield holder
    finally:
        await holder.stop()


@pytest.fixture
async def cluster(
    grpc_cluster_slot: GrpcClusterSlot, database_url: str, redis_url: str, db: asyncpg.Connection
) -> GrpcCluster:
    return await grpc_cluster_slot.get(database_url, redis_url)


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def reason(error: grpc.aio.AioRpcError) -> str | None:
    """ErrorInfo.reason from the rich status details (trailer grpc-status-details-bin)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return None


async def test_login_list_and_book_through_nginx_with_refusals_in_rich_status(
    cluster: GrpcCluster, db: asyncpg.Connection
) -> None:
    branch_id = await add_branch(db, "Main")
    seats = [await add_seat(db, branch_id, f"G{n}") for n in range(3)]
    registered = await registered_student(cluster.http, "S7000001")
    other = await add_student(db, "S7000002")
    auth, seat_service, reservations = cluster.stubs()
    start, end = slot()

    login = await auth.Login(
        pb.LoginRequest(student_id="S7000001", password="correct horse"), timeout=10
    )
    token = bearer(login.access_token)
    listed = await seat_service.GetSeats(pb.GetSeatsRequest(branch="Main"), timeout=10)
    request = pb.CreateReservationRequest(
        seat_id=seats[0], start_time=stamp(start), end_time=stamp(end), idempotency_key="g-1"
    )
    made = await reservations.CreateReservation(request, metadata=token, timeout=10)
    # The same key again (nginx may pass it to the other instance): the same booking.
    again = await reservations.CreateReservation(request, metadata=token, timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await reservations.CreateReservation(
            pb.CreateReservationRequest(
                seat_id=seats[0], start_time=stamp(start), end_time=stamp(end)
            ),
            metadata=bearer(other.token),
            timeout=10,
        )
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await reservations.CreateReservation(
            pb.CreateReservationRequest(
                seat_id=seats[1], start_time=stamp(start), end_time=stamp(end)
            ),
            timeout=10,
        )

    assert (login.user.id, login.user.student_id) == (registered.id, "S7000001")
    assert sorted(s.id for s in listed.items) == sorted(seats)
    assert listed.total == len(seats)
    assert (made.seat_id, made.user_id, made.status) == (seats[0], registered.id, "CONFIRMED")
    assert again.id == made.id
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason(taken.value) == "seat_conflict"
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    rows = await db.fetch("SELECT id, user_id, seat_id FROM reservations")
    assert [tuple(r) for r in rows] == [(made.id, registered.id, seats[0])]


async def grpc_stream_holder(cluster: GrpcCluster) -> int:
    """The index of the one instance holding an open stream (the seat stream through
    nginx counts in dlsms_sse_subscribers, as an SSE one)."""
    texts = await eventually(
        lambda: asyncio.gather(*(scrape(instance) for instance in cluster.instances)),
        lambda texts: sorted(metric(t, "dlsms_sse_subscribers") for t in texts) == [0, 1],
        within=5,
        what="exactly one instance holding the stream",
    )
    return [metric(t, "dlsms_sse_subscribers") for t in texts].index(1)


async def test_watch_seats_through_nginx_hears_a_booking_made_on_the_other_instance(
    cluster: GrpcCluster, db: asyncpg.Connection
) -> None:
    branch_id = await add_branch(db, "Main")
    seat_id = await add_seat(db, branch_id, "W1")
    student = await add_student(db, "S7000010")
    _, seat_service, _ = cluster.stubs()

    stream = seat_service.WatchSeats(pb.WatchSeatsRequest(branch="Main"))
    try:
        await asyncio.wait_for(stream.initial_metadata(), 10)  # subscribed, through nginx
        holder = await grpc_stream_holder(cluster)
        # Booked on the instance that does not hold the stream, on its own gRPC port.
        _, _, elsewhere = cluster.stubs(cluster.direct[1 - holder])
        now = utcnow()
        made = await elsewhere.CreateReservation(
            pb.CreateReservationRequest(
                seat_id=seat_id, start_time=stamp(now), end_time=stamp(now + timedelta(hours=1))
            ),
            metadata=bearer(student.token),
            timeout=10,
        )
        async with asyncio.timeout(10):
            while True:
                event = await stream.read()
                assert isinstance(event, pb.SeatAvailabilityEvent), "the stream ended"
                # Pub/sub channels are server-wide: skip what another test run published.
                if event.seat_id == seat_id:
                    break
    finally:
        stream.cancel()

    assert made.status == "CONFIRMED"
    assert (event.seat_id, event.branch, event.available, event.status) == (
        seat_id,
        "Main",
        False,
        "ACTIVE",
    )


GET_SEATS = "/dlsms.v1.SeatService/GetSeats"


async def get_seats_counts(cluster: GrpcCluster) -> list[float]:
    return [
        metric(await scrape(instance), "dlsms_grpc_requests_total", method=GET_SEATS, code="OK")
        for instance in cluster.instances
    ]


async def test_calls_on_one_channel_through_nginx_are_spread_over_both_instances(
    cluster: GrpcCluster, db: asyncpg.Connection
) -> None:
    await add_seat(db, await add_branch(db, "Main"), "S1")
    _, seat_service, _ = cluster.stubs()
    before = await get_seats_counts(cluster)

    for _ in range(8):  # one HTTP/2 connection to nginx; nginx balances each call
        await seat_service.GetSeats(pb.GetSeatsRequest(branch="Main"), timeout=10)

    after = await eventually(
        lambda: get_seats_counts(cluster),
        lambda counts: sum(counts) - sum(before) >= 8,
        within=5,
        what="8 GetSeats counted",
    )
    served = [a - b for a, b in zip(after, before, strict=True)]
    assert sum(served) == 8
    assert all(count >= 1 for count in served), served
