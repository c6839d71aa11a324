"""A DL-SMS gRPC client in Python: log in, list the free seats, book one with an
idempotency key, then follow the notifications, resuming after the last one seen.

    .venv/bin/python docs/grpc_client_example.py localhost:9090 S1234567 'my password'
    .venv/bin/python docs/grpc_client_example.py localhost:9090 S1234567 'my password' \\
        --branch "Main Library" --start 2026-12-07T10:00:00Z --hours 2 --follow 60 --after-id 0

It uses the stubs generated from the contract that ship in the package
(``app.grpc.generated``; the .proto is ``app/grpc/proto/dlsms/v1/dlsms.proto``), so it
runs wherever ``dlsms`` is installed. docs/grpc.md explains each step;
tests/grpc/test_client_example.py runs ``main`` against a live server.
"""

import argparse
import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from app.grpc.generated import dlsms_pb2 as pb
from app.grpc.generated import dlsms_pb2_grpc as pb_grpc

T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]
# Worth calling again (with the same idempotency key): the call may not have reached a
# server, or a server went away while it answered.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass
class Outcome:
    """What ``main`` did, for the caller (and the test)."""

    user_id: int
    free_seats: int
    reservation: pb.Reservation
    same_booking_on_retry: bool
    notifications: list[pb.Notification] = field(default_factory=list)

    @property
    def last_notification_id(self) -> int | None:
        return self.notifications[-1].id if self.notifications else None


def timestamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def reason(error: grpc.aio.AioRpcError) -> str | None:
    """The API's error ``code`` (api.md): ErrorInfo.reason in the rich status details."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return None


async def with_retries(call: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
    """``call()``, again after a short pause when it failed in a retryable way."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            if error.code() not in RETRYABLE or attempt == attempts:
                raise
            await asyncio.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


async def follow_notifications(
    notify: pb_grpc.NotifyServiceStub,
    metadata: Metadata,
    *,
    after_id: int | None,
    seconds: float,
    on_notification: Callable[[pb.Notification], None] = lambda n: None,
) -> list[pb.Notification]:
    """Every notification for ``seconds``: first those after ``after_id`` (unset: live
    ones only), then live ones. When the stream ends (a server shutting down, the
    stream's lifetime cap, a dropped connection), call again with the last id seen:
    nothing is missed and nothing comes twice."""
    seen: list[pb.Notification] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        request = pb.StreamNotificationsRequest()
        if after_id is not None:
            request.after_id = after_id
        call = notify.StreamNotifications(request, metadata=metadata)
        try:
            async with asyncio.timeout_at(deadline):
                async for notification in call:  # type: ignore[attr-defined]  # (sync stub types)
                    seen.append(notification)
                    on_notification(notification)
                    after_id = notification.id
        except TimeoutError:
            break
        except grpc.aio.AioRpcError as error:
            if error.code() not in RETRYABLE:
                raise
            await asyncio.sleep(1)  # then resume after the last one seen
        finally:
            call.cancel()
        if after_id is None:
            after_id = 0  # after a reconnect, ask for what came meanwhile
    return seen


async def main(
    target: str,
    student_id: str,
    password: str,
    *,
    branch: str | None = None,
    start: datetime | None = None,
    hours: float = 1,
    follow_seconds: float = 10,
    after_id: int | None = 0,
    out: Callable[[str], None] = print,
) -> Outcome:
    # Behind TLS: grpc.aio.secure_channel(target, grpc.ssl_channel_credentials()).
    async with grpc.aio.insecure_channel(target) as channel:
        auth = pb_grpc.AuthServiceStub(channel)
        seats = pb_grpc.SeatServiceStub(channel)
        reservations = pb_grpc.ReservationServiceStub(channel)
        notify = pb_grpc.NotifyServiceStub(channel)

        # 1. Log in: the token goes in the `authorization` metadata of every later call.
        login = await auth.Login(
            pb.LoginRequest(student_id=student_id, password=password), timeout=10
        )
        metadata: Metadata = (("authorization", f"Bearer {login.access_token}"),)
        out(f"logged in as {login.user.student_id} (id {login.user.id})")

        # 2. The seats free for the whole slot (default: the next whole hour).
        now = datetime.now(UTC)
        start = start or now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        end = start + timedelta(hours=hours)
        query = pb.GetSeatsRequest(
            available_only=True, start_time=timestamp(start), end_time=timestamp(end), limit=20
        )
        if branch is not None:
            query.branch = branch
        listed = await seats.GetSeats(query, metadata=metadata, timeout=10)
        out(f"{listed.total} seats free {start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC")
        if not listed.items:
            raise SystemExit("no seat is free then: try another --start or --branch")
        seat = listed.items[0]

        # 3. Book it. The idempotency key makes a retry safe: the same key answers the
        # same booking (whether the first call got through or not), on any instance and
        # through HTTP's Idempotency-Key as well.
        request = pb.CreateReservationRequest(
            seat_id=seat.id,
            start_time=timestamp(start),
            end_time=timestamp(end),
            idempotency_key=str(uuid.uuid4()),
        )
        try:
            booking = await with_retries(
                lambda: reservations.CreateReservation(request, metadata=metadata, timeout=10)
            )
        except grpc.aio.AioRpcError as error:
            # e.g. ALREADY_EXISTS seat_conflict (taken meanwhile), user_overlap (you have
            # a booking then), FAILED_PRECONDITION outside_hours, RESOURCE_EXHAUSTED ...
            out(f"refused: {error.code().name} {reason(error)}: {error.details()}")
            raise
        # A retry (here on purpose) with the same key answers the same booking.
        again = await reservations.CreateReservation(request, metadata=metadata, timeout=10)
        out(
            f"booked {booking.seat.branch} {booking.seat.label} as reservation {booking.id} "
            f"({booking.status}); check in from {booking.check_in_opens_at.ToDatetime():%H:%M}"
        )

        # 4. Notifications (waitlist offers, cancellations, no-shows, reminders), from
        # after `after_id` on: keep the last id and pass it next time.
        def show(n: pb.Notification) -> None:
            out(f"notification {n.id} {n.type}: {json.loads(n.data_json)}")

        notifications = await follow_notifications(
            notify, metadata, after_id=after_id, seconds=follow_seconds, on_notification=show
        )
        if notifications:
            out(f"resume with --after-id {notifications[-1].id}")
        return Outcome(
            user_id=login.user.id,
            free_seats=listed.total,
            reservation=booking,
            same_booking_on_retry=again.id == booking.id,
            notifications=notifications,
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="host:port of the gRPC server (nginx: port 9090)")
    parser.add_argument("student_id")
    parser.add_argument("password")
    parser.add_argument("--branch")
    parser.add_argument("--start", type=datetime.fromisoformat, help="ISO 8601, with offset")
    parser.add_argument("--hours", type=float, default=1)
    parser.add_argument("--follow", type=float, default=10, help="seconds of notifications")
    parser.add_argument(
        "--after-id", type=int, default=0, help="replay notifications after this id (-1: none)"
    )
    return parser.parse_args(argv)


def run(argv: list[str]) -> Any:
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(
            main(
                args.target,
                args.student_id,
                args.password,
                branch=args.branch,
                start=args.start,
                hours=args.hours,
                follow_seconds=args.follow,
                after_id=None if args.after_id < 0 else args.after_id,
            )
        )


if __name__ == "__main__":
    run(sys.argv[1:])
