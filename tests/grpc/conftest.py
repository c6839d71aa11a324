"""gRPC tests: the app's lifespan starts the real grpc.aio server (GRPC_PORT) in the
test's event loop; a real grpc.aio client talks to it over TCP, and an HTTP client
talks to the same app (same pool, broker and clock)."""

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from app.grpc.generated import dlsms_pb2_grpc as pb_grpc
from tests.conftest import ClientFactory
from tests.factories import Student

Metadata = tuple[tuple[str, str], ...]
Message = TypeVar("Message")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class GrpcApp:
    """One app: its HTTP client, and stubs on a channel to its gRPC port."""

    http: httpx.AsyncClient
    port: int
    channel: grpc.aio.Channel
    # The async stubs' types exist for type checkers only (mypy-protobuf).
    auth: "pb_grpc.AuthServiceAsyncStub"
    seats: "pb_grpc.SeatServiceAsyncStub"
    reservations: "pb_grpc.ReservationServiceAsyncStub"
    notify: "pb_grpc.NotifyServiceAsyncStub"


GrpcFactory = Callable[..., Awaitable[GrpcApp]]


@pytest.fixture
async def make_grpc(make_client: ClientFactory) -> AsyncIterator[GrpcFactory]:
    """Factory: an app built like ``make_client(**overrides)`` with gRPC on a free port."""
    async with AsyncExitStack() as stack:

        async def make(**overrides: Any) -> GrpcApp:
            port = free_port()
            http = await make_client(GRPC_PORT=port, **overrides)
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            stack.push_async_callback(channel.close)
            return GrpcApp(
                http,
                port,
                channel,
                pb_grpc.AuthServiceStub(channel),
                pb_grpc.SeatServiceStub(channel),
                pb_grpc.ReservationServiceStub(channel),
                pb_grpc.NotifyServiceStub(channel),
            )

        yield make


@pytest.fixture
async def app(make_grpc: GrpcFactory) -> GrpcApp:
    return await make_grpc()


def auth(student: Student) -> Metadata:
    return (("authorization", f"Bearer {student.token}"),)


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo in the status details (trailing ``grpc-status-details-bin``)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def retry_info(error: grpc.aio.AioRpcError) -> error_details_pb2.RetryInfo | None:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info
    return None


async def refused(
    call: Awaitable[Any], code: grpc.StatusCode, reason: str | None
) -> grpc.aio.AioRpcError:
    """Await ``call``; it must fail with ``code`` and (unless None) ErrorInfo ``reason``
    in domain dlsms, with a message that says something. The error, for more checks."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == code, (error.code(), error.details())
    assert error.details()
    info = error_info(error)
    if reason is None:
        assert info is None
    else:
        assert info is not None, error.details()
        assert (info.reason, info.domain) == (reason, "dlsms")
    return error


async def received(stream: "grpc.aio.UnaryStreamCall[Any, Message]", within: float = 5) -> Message:
    """The stream's next message (not its end), within ``within`` seconds."""
    message = await asyncio.wait_for(stream.read(), within)
    assert message is not grpc.aio.EOF, "the stream ended"
    return cast(Message, message)
