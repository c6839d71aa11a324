"""docs/grpc_client_example.py, the client docs/grpc.md shows, run against a live server:
it logs in, lists, books with an idempotency key (a retry answers the same booking) and
follows notifications, a second run resuming after the last id the first one saw."""

import asyncio
import importlib.util
import json
import sys
from datetime import datetime, timedelta
from types import ModuleType

import asyncpg

from app.timeutil import utcnow
from tests.conftest import REPO_ROOT
from tests.factories import Student, add_branch, add_seat, booked, joined, registered_student
from tests.grpc.conftest import GrpcApp, GrpcFactory


def load_example() -> ModuleType:
    name = "dlsms_grpc_client_example"
    if name in sys.modules:
        return sys.modules[name]
    path = REPO_ROOT / "docs" / "grpc_client_example.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


async def offer_made(
    app: GrpcApp, waiting: Student, holder: Student, seat_id: int, start: datetime
) -> None:
    """``waiting`` is offered ``seat_id`` at ``start``: ``holder``'s booking of it is
    cancelled (over HTTP) while ``waiting`` is on its waitlist."""
    end = start + timedelta(hours=1)
    taken = await booked(app.http, holder, seat_id, start, end)
    await joined(app.http, waiting, seat_id=seat_id, start=start, end=end)
    cancelled = await app.http.delete(f"/reservations/{taken['id']}", headers=holder.headers)
    assert cancelled.status_code == 200, cancelled.text


async def test_the_client_example_books_and_follows_notifications_resuming_after_an_id(
    make_grpc: GrpcFactory, db: asyncpg.Connection, bob: Student
) -> None:
    example = load_example()
    app = await make_grpc()  # the real clock: the example asks for times from now on
    branch_id = await add_branch(db, "Main")
    a1, a2, a3 = [await add_seat(db, branch_id, label) for label in ("A1", "A2", "A3")]
    alice = await registered_student(app.http, "S0000001")  # password "correct horse"
    target = f"127.0.0.1:{app.port}"
    base = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    await offer_made(app, alice, bob, a1, base)  # waiting before the client starts

    first_lines: list[str] = []
    first = await example.main(
        target,
        "S0000001",
        "correct horse",
        branch="Main",
        start=base + timedelta(hours=2),
        follow_seconds=1.0,
        after_id=0,
        out=first_lines.append,
    )

    # The second run resumes after the first run's last notification; another offer is
    # made while it runs (replayed or live, depending on when its stream opens).
    second_lines: list[str] = []
    booked_again = asyncio.Event()

    def second_out(line: str) -> None:
        second_lines.append(line)
        if line.startswith("booked"):
            booked_again.set()

    second_run = asyncio.create_task(
        example.main(
            target,
            "S0000001",
            "correct horse",
            branch="Main",
            start=base + timedelta(hours=4),
            follow_seconds=3.0,
            after_id=first.last_notification_id,
            out=second_out,
        )
    )
    await asyncio.wait_for(booked_again.wait(), 10)
    await offer_made(app, alice, bob, a2, base + timedelta(hours=6))
    second = await second_run

    assert first.user_id == alice.id
    assert first.free_seats == 3  # A1..A3 are free two hours after the offered slot
    assert (first.reservation.seat_id, first.reservation.status) == (a1, "CONFIRMED")
    assert first.same_booking_on_retry and second.same_booking_on_retry
    assert [n.type for n in first.notifications] == ["waitlist.offer"]
    assert json.loads(first.notifications[0].data_json)["seat_id"] == a1
    assert [n.type for n in second.notifications] == ["waitlist.offer"]
    assert json.loads(second.notifications[0].data_json)["seat_id"] == a2
    assert second.notifications[0].id > first.notifications[0].id
    assert second.reservation.id != first.reservation.id
    booked_rows = await db.fetch(
        "SELECT id FROM reservations WHERE user_id = $1 AND status = 'CONFIRMED' ORDER BY id",
        alice.id,
    )
    assert [r["id"] for r in booked_rows] == [first.reservation.id, second.reservation.id]
    assert first_lines[0] == f"logged in as S0000001 (id {alice.id})"
    assert any(line.startswith("notification ") for line in second_lines)
    assert a3  # the third seat keeps the listing honest (free, not booked)
