"""The gRPC server: ``grpc.aio`` in uvicorn's event loop, started by the app's lifespan
when GRPC_PORT is set, over the same pool, Redis, publisher, broker, settings and clock
as the HTTP side (api.md, "gRPC")."""

import functools
import logging

import anyio
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from app import tracing
from app.grpc import calls
from app.grpc.auth import AuthServicer
from app.grpc.errors import ErrorInterceptor
from app.grpc.generated import dlsms_pb2 as pb
from app.grpc.generated import dlsms_pb2_grpc as pb_grpc
from app.grpc.health import HealthWatcher
from app.grpc.notify import NotifyServicer
from app.grpc.reservations import ReservationServicer
from app.grpc.seats import SeatServicer
from app.state import AppState

log = logging.getLogger(__name__)

SERVICES = tuple(service.full_name for service in pb.DESCRIPTOR.services_by_name.values())
MAX_RECEIVE_BYTES = 4 * 1024 * 1024  # requests are small; this bounds a hostile one
MAX_SEND_BYTES = 16 * 1024 * 1024
HEALTH_INTERVAL_SECONDS = 2.0

OPTIONS: list[tuple[str, int]] = [
    # Each worker of `dlsms serve --workers N` binds the same port; the kernel spreads
    # the connections (as for the HTTP side).
    ("grpc.so_reuseport", 1),
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    ("grpc.max_send_message_length", MAX_SEND_BYTES),
    # Ping an idle connection every 60 s (a stream's client that vanished is noticed),
    # give up after 20 s without an answer; let clients ping every 10 s at most, also
    # with no call open, so that their own keepalive does not get them cut off.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
]


class GrpcServer:
    """One process's gRPC server; ``start`` binds, ``stop`` drains."""

    def __init__(
        self,
        state: AppState,
        *,
        port: int,
        host: str = "127.0.0.1",
        health_interval: float = HEALTH_INTERVAL_SECONDS,
    ) -> None:
        # An IPv6 address is written in brackets in a gRPC target ("[::]:9090").
        bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
        self.address = f"{bracketed}:{port}"
        self.port = port
        # Set at shutdown: open streams end at once (the client reconnects elsewhere).
        self.shutdown = anyio.Event()
        self.health = HealthWatcher(state["pool"], SERVICES, health_interval)
        # With tracing on, its span per call is outermost (it sees the status we answer).
        interceptors = [
            *tracing.grpc_interceptors(),
            ErrorInterceptor(admit=functools.partial(calls.admit, state)),
        ]
        self.server = grpc.aio.server(interceptors=interceptors, options=OPTIONS)
        pb_grpc.add_AuthServiceServicer_to_server(AuthServicer(state), self.server)
        pb_grpc.add_SeatServiceServicer_to_server(SeatServicer(state, self.shutdown), self.server)
        pb_grpc.add_ReservationServiceServicer_to_server(ReservationServicer(state), self.server)
        pb_grpc.add_NotifyServiceServicer_to_server(
            NotifyServicer(state, self.shutdown), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self.server)
        reflection.enable_server_reflection(
            (
                *SERVICES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )

    async def start(self) -> int:
        """Bind and serve; returns the port (the one chosen when asked for port 0)."""
        self.port = self.server.add_insecure_port(self.address)
        await self.health.start()
        await self.server.start()
        log.info("gRPC serving on port %d", self.port)
        return self.port

    async def stop(self, grace: float) -> None:
        """NOT_SERVING, streams told to end, then up to ``grace`` seconds for calls in
        flight before the rest are cancelled."""
        self.shutdown.set()
        await self.health.stop()
        await self.server.stop(grace)
        log.info("gRPC server stopped")
