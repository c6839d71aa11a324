"""The server itself: health following /ready's PostgreSQL check, reflection, deadlines
releasing connections, unexpected errors, shutdown ending streams, the port setting."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import asyncpg
import grpc
import pytest
from asgi_lifespan import LifespanManager
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic import ValidationError

from app.cli import main as dlsms
from app.grpc.convert import timestamp
from app.grpc.generated import dlsms_pb2 as pb
from app.grpc.generated import dlsms_pb2_grpc as pb_grpc
from app.main import create_app
from app.services import notifications as notifications_service
from app.settings import Settings
from tests.concurrency.test_booking_races import HOUR, tomorrow_at
from tests.conftest import make_settings
from tests.factories import Student, add_branch, add_seat, eventually
from tests.grpc.conftest import GrpcApp, GrpcFactory, auth, free_port, refused

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
DLSMS_SERVICES = {
    "dlsms.v1.AuthService",
    "dlsms.v1.SeatService",
    "dlsms.v1.ReservationService",
    "dlsms.v1.NotifyService",
}


class TcpProxy:
    """A TCP relay to PostgreSQL that a test can cut: PostgreSQL "goes away"."""

    def __init__(self, database_url: str) -> None:
        # TCP, or the Unix socket of a ``?host=/dir`` URL (the embedded PostgreSQL).
        target = urlsplit(database_url)
        socket_dir = dict(parse_qsl(target.query)).get("host")
        self.port = target.port or 5432
        self.socket = f"{socket_dir}/.s.PGSQL.{self.port}" if socket_dir else None
        self.host = target.hostname or "127.0.0.1"
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.socket:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket)
        else:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


async def health(app: GrpcApp, service: str = "") -> int:
    stub: Any = health_pb2_grpc.HealthStub(app.channel)  # typed for grpc.Channel only
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    status: int = answer.status
    return status


async def test_health_is_serving_for_the_server_and_each_service(app: GrpcApp) -> None:
    assert await health(app) == SERVING
    for service in DLSMS_SERVICES:
        assert await health(app, service) == SERVING
    stub: Any = health_pb2_grpc.HealthStub(app.channel)  # typed for grpc.Channel only
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Check(health_pb2.HealthCheckRequest(service="nope.Service"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_health_turns_not_serving_when_postgresql_goes_away(
    make_grpc: GrpcFactory, database_url: str
) -> None:
    target = urlsplit(database_url)
    proxy = TcpProxy(database_url)
    port = await proxy.start()
    proxied = target._replace(netloc=f"{target.username}@127.0.0.1:{port}", query="").geturl()
    app = await make_grpc(DATABASE_URL=proxied, DB_POOL_MIN_SIZE=0)
    assert await health(app) == SERVING
    await proxy.cut()
    await eventually(
        lambda: health(app), lambda s: s == NOT_SERVING, within=10, what="health NOT_SERVING"
    )
    assert await health(app, "dlsms.v1.ReservationService") == NOT_SERVING
    # /ready of the same process agrees.
    assert (await app.http.get("/ready")).status_code == 503


async def test_reflection_lists_the_four_services_health_and_reflection(app: GrpcApp) -> None:
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(app.channel)  # type: ignore[arg-type]

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        yield reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="dlsms.v1.ReservationService"
        )

    answers = [answer async for answer in stub.ServerReflectionInfo(ask())]
    listed = {s.name for s in answers[0].list_services_response.service}
    assert listed == DLSMS_SERVICES | {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert answers[1].file_descriptor_response.file_descriptor_proto  # grpcurl can describe


async def test_a_call_past_its_deadline_gives_its_connection_back(
    make_grpc: GrpcFactory, db: asyncpg.Connection, database_url: str, alice: Student
) -> None:
    app = await make_grpc(DB_POOL_MAX_SIZE=1, DB_POOL_MIN_SIZE=1)
    seat = await add_seat(db, await add_branch(db), "D1")
    start = tomorrow_at(10)
    request = pb.CreateReservationRequest(
        seat_id=seat,
        start_time=timestamp(start),
        end_time=timestamp(start + HOUR),
        idempotency_key="deadline-1",
    )
    blocker = await asyncpg.connect(database_url)
    try:
        async with blocker.transaction():
            # The booking's first write (its key) waits behind this lock.
            await blocker.execute("LOCK TABLE idempotency_keys IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await app.reservations.CreateReservation(request, metadata=auth(alice), timeout=0.5)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            # The pool's one connection is free again while the lock is still held.
            seat_day = await app.seats.GetSeat(pb.GetSeatRequest(seat_id=seat), timeout=3)
            assert seat_day.seat.id == seat
    finally:
        await blocker.close()
    assert await db.fetchval("SELECT count(*) FROM reservations") == 0


async def test_an_unexpected_error_is_internal_and_tells_nothing(
    app: GrpcApp, alice: Student, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals at /srv/app.py line 42")

    monkeypatch.setattr(notifications_service, "list_own", broken)
    error = await refused(
        app.notify.ListNotifications(pb.ListNotificationsRequest(), metadata=auth(alice)),
        grpc.StatusCode.INTERNAL,
        None,
    )
    assert "secret" not in (error.details() or "")


async def test_shutdown_ends_open_streams_cleanly(
    database_url: str, db: asyncpg.Connection
) -> None:
    port = free_port()
    app = create_app(make_settings(database_url, GRPC_PORT=port))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        async with LifespanManager(app):
            stream = pb_grpc.SeatServiceStub(channel).WatchSeats(pb.WatchSeatsRequest())
            await asyncio.wait_for(stream.initial_metadata(), 5)
        # The lifespan has ended: the stream finished with OK, no message lost or cut.
        assert await asyncio.wait_for(stream.read(), 5) == grpc.aio.EOF
        assert await stream.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("value", ["0", "65536", "http"])
def test_grpc_port_must_be_a_port_number(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_PORT", value)
    with pytest.raises(ValidationError, match="GRPC_PORT"):
        Settings(DLSMS_ENV="development")
    with pytest.raises(SystemExit) as refused_cli:
        dlsms(["serve", "--grpc-port", value])
    assert refused_cli.value.code == 2


def test_grpc_port_unset_or_empty_means_no_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_PORT", "")
    assert Settings(DLSMS_ENV="development").GRPC_PORT is None
    monkeypatch.setenv("GRPC_PORT", "9090")
    assert Settings(DLSMS_ENV="development").GRPC_PORT == 9090


async def test_a_request_over_four_mib_is_refused(app: GrpcApp) -> None:
    huge = pb.RegisterRequest(student_id="S1", name="x" * (5 * 1024 * 1024), password="p" * 8)
    with pytest.raises(grpc.aio.AioRpcError) as refused_call:
        await app.auth.Register(huge)
    assert refused_call.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_calls_are_counted_in_metrics_by_method_and_code(app: GrpcApp) -> None:
    await app.seats.GetBranches(pb.GetBranchesRequest())
    await refused(
        app.seats.GetSeat(pb.GetSeatRequest(seat_id=987654)), grpc.StatusCode.NOT_FOUND, "not_found"
    )
    text = (await app.http.get("/metrics")).text
    assert 'dlsms_grpc_requests_total{code="OK",method="/dlsms.v1.SeatService/GetBranches"}' in text
    assert (
        'dlsms_grpc_requests_total{code="NOT_FOUND",method="/dlsms.v1.SeatService/GetSeat"}' in text
    )
    assert (
        'dlsms_grpc_request_duration_seconds_count{method="/dlsms.v1.SeatService/GetSeat"}' in text
    )


async def test_grpc_binds_loopback_by_default_and_grpc_host_when_given(
    make_grpc: GrpcFactory,
) -> None:
    """Nothing is exposed unasked: the default GRPC_HOST is 127.0.0.1 (127.0.0.2, another
    loopback address, is refused); GRPC_HOST moves it (`dlsms serve --host` sets it)."""
    default = await make_grpc()
    elsewhere = grpc.aio.insecure_channel(f"127.0.0.2:{default.port}")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await pb_grpc.SeatServiceStub(elsewhere).GetBranches(pb.GetBranchesRequest(), timeout=2)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await elsewhere.close()

    moved = await make_grpc(GRPC_HOST="127.0.0.2")
    there = grpc.aio.insecure_channel(f"127.0.0.2:{moved.port}")
    try:
        answer = await pb_grpc.SeatServiceStub(there).GetBranches(
            pb.GetBranchesRequest(), timeout=5
        )
        assert list(answer.branches) == []
    finally:
        await there.close()
