"""The live streams over a real uvicorn: GET /notifications/stream and GET /seats/stream."""

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import pytest

from app.db import notifications as notifications_db
from app.main import create_app
from app.models import Notification
from app.realtime.events import Changes
from app.timeutil import utcnow
from tests.conftest import make_settings
from tests.factories import add_branch, add_seat, add_student, booked, cancel, iso, joined
from tests.realtime.servers import (
    Server,
    Servers,
    open_stream,
    serve_in_process,
)

pytestmark = pytest.mark.slow

NOTIFICATIONS = "/notifications/stream"
T = TypeVar("T")
# One process serves most tests here (starting one takes seconds): a tiny pool, so every
# test also shows that open streams leave connections for requests; quick heartbeats.
SHARED_SETTINGS: dict[str, Any] = {
    "SSE_RETRY_MS": 1234,
    "SSE_HEARTBEAT_SECONDS": 1,
    "DB_POOL_MIN_SIZE": 1,
    "DB_POOL_MAX_SIZE": 2,
}


@pytest.fixture(scope="module")
async def server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Server]:
    async with Servers(database_url, tmp_path_factory.mktemp("sse")) as started:
        yield await started.start(**SHARED_SETTINGS)


def next_hour(hours_ahead: int = 2) -> datetime:
    return (utcnow() + timedelta(hours=hours_ahead)).replace(minute=0, second=0, microsecond=0)


async def insert_notifications(
    db: asyncpg.Connection, user_id: int, count: int, kind: str = "reservation.reminder"
) -> list[int]:
    ids = []
    for n in range(count):
        data = json.dumps({"reservation_id": 1000 + n, "seat_id": 1, "start_time": iso(utcnow())})
        ids.append(
            await db.fetchval(
                "INSERT INTO notifications (user_id, type, data) VALUES ($1, $2, $3::jsonb) "
                "RETURNING id",
                user_id,
                kind,
                data,
            )
        )
    return ids


async def test_stream_without_token_is_401_not_authenticated(server: Server) -> None:
    response = await server.client.get(NOTIFICATIONS)

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["code"] == "not_authenticated"


async def test_stream_with_a_bad_token_in_header_or_query_is_401_invalid_token(
    server: Server,
) -> None:
    in_header = await server.client.get(NOTIFICATIONS, headers={"Authorization": "Bearer nope"})
    in_query = await server.client.get(NOTIFICATIONS, params={"access_token": "nope.nope.nope"})

    for response in (in_header, in_query):
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_token"


async def test_stream_accepts_the_token_in_the_header_or_as_access_token_query(
    server: Server, db: asyncpg.Connection
) -> None:
    student = await add_student(db, "S0000001")

    async with open_stream(server.client, NOTIFICATIONS, headers=student.headers) as by_header:
        header_type = by_header.response.headers["content-type"]
    async with open_stream(
        server.client, NOTIFICATIONS, params={"access_token": student.token}
    ) as by_query:
        query_type = by_query.response.headers["content-type"]

    assert header_type.startswith("text/event-stream")
    assert query_type.startswith("text/event-stream")


@pytest.mark.parametrize("path", [NOTIFICATIONS, "/seats/stream"])
async def test_stream_starts_with_a_retry_hint(
    server: Server, db: asyncpg.Connection, path: str
) -> None:
    student = await add_student(db, "S0000001")

    async with open_stream(server.client, path, headers=student.headers, connected=False) as stream:
        first = await stream.next_block(within=5)

    assert first is not None
    assert first.retry == SHARED_SETTINGS["SSE_RETRY_MS"]
    assert first.data is None  # a hint, not an event


async def test_a_new_stream_names_where_it_starts_so_a_reconnect_misses_nothing(
    server: Server, db: asyncpg.Connection
) -> None:
    # EventSource sends the last `id:` it saw as Last-Event-ID; the opening block carries
    # one, so a stream that drops before its first event still resumes where it began.
    student = await add_student(db, "S0000001")
    latest = await db.fetchval(
        "INSERT INTO notifications (user_id, type, data) "
        "VALUES ($1, 'reservation.reminder', '{}') RETURNING id",
        student.id,
    )

    async with open_stream(
        server.client, NOTIFICATIONS, headers=student.headers, connected=False
    ) as stream:
        first = await stream.next_block(within=5)

    assert first is not None
    assert first.id == str(latest)
    assert first.data is None


async def test_cancelled_booking_is_offered_live_to_the_waiting_users_stream(
    server: Server, db: asyncpg.Connection
) -> None:
    seat_id = await add_seat(db, await add_branch(db, "Main"), "A1")
    alice, bob = await add_student(db, "S0000001"), await add_student(db, "S0000002")
    start = next_hour()
    end = start + timedelta(hours=2)
    booking = await booked(server.client, alice, seat_id, start, end)
    entry = await joined(server.client, bob, seat_id=seat_id, start=start, end=end)

    async with open_stream(server.client, NOTIFICATIONS, headers=bob.headers) as stream:
        await cancel(server.client, alice, booking["id"])
        event = await stream.next_event(within=5)

    held_id = await db.fetchval(
        "SELECT id FROM reservations WHERE user_id = $1 AND status = 'HELD'", bob.id
    )
    listed = (await server.client.get("/notifications", headers=bob.headers)).json()
    body = event.json()
    assert event.event == "waitlist.offer"
    assert event.id == str(body["id"])
    assert set(body) == {"id", "type", "data", "created_at", "read_at"}
    assert body["type"] == "waitlist.offer"
    assert body["read_at"] is None
    assert set(body["data"]) == {
        "entry_id",
        "reservation_id",
        "seat_id",
        "start_time",
        "end_time",
        "offer_expires_at",
    }
    assert body["data"]["entry_id"] == entry["id"]
    assert body["data"]["reservation_id"] == held_id
    assert body["data"]["seat_id"] == seat_id
    assert body["data"]["start_time"] == booking["start_time"]
    assert body["data"]["end_time"] == booking["end_time"]
    assert datetime.fromisoformat(body["data"]["offer_expires_at"]) > utcnow()
    assert listed["items"] == [body]  # the stream shows the row GET /notifications has


async def test_reconnect_with_last_event_id_replays_only_the_missed_ones_in_order(
    server: Server, db: asyncpg.Connection
) -> None:
    student, other = await add_student(db, "S0000001"), await add_student(db, "S0000002")
    ids = await insert_notifications(db, student.id, 2)
    await insert_notifications(db, other.id, 1)  # someone else's: never replayed to us
    ids += await insert_notifications(db, student.id, 3, kind="reservation.cancelled")

    headers = {**student.headers, "Last-Event-ID": str(ids[1])}
    async with open_stream(server.client, NOTIFICATIONS, headers=headers) as stream:
        replayed = [await stream.next_event(within=5) for _ in ids[2:]]
        extra = await stream.events_within(0.5)

    assert [event.id for event in replayed] == [str(i) for i in ids[2:]]
    assert [event.event for event in replayed] == ["reservation.cancelled"] * 3
    assert [event.json()["id"] for event in replayed] == ids[2:]
    assert extra == []


async def test_new_stream_without_last_event_id_does_not_replay_old_notifications(
    server: Server, db: asyncpg.Connection
) -> None:
    student = await add_student(db, "S0000001")
    await insert_notifications(db, student.id, 3)

    async with open_stream(server.client, NOTIFICATIONS, headers=student.headers) as stream:
        received = await stream.events_within(1.0)

    assert received == []


async def test_idle_stream_sends_heartbeat_comments(server: Server, db: asyncpg.Connection) -> None:
    student = await add_student(db, "S0000001")

    async with open_stream(server.client, NOTIFICATIONS, headers=student.headers) as stream:
        began = time.monotonic()
        first = await stream.next_block(within=2.5)
        second = await stream.next_block(within=2.5)
        elapsed = time.monotonic() - began

    for block in (first, second):
        assert block is not None
        assert block.data is None
        assert block.comments
    assert elapsed < 3.5


async def test_streams_end_by_themselves_after_their_lifetime_cap(
    servers: Servers, db: asyncpg.Connection
) -> None:
    capped = await servers.start(SSE_MAX_STREAM_SECONDS=2)
    student = await add_student(db, "S0000001")

    async with (
        open_stream(capped.client, NOTIFICATIONS, headers=student.headers) as notifications,
        open_stream(capped.client, "/seats/stream") as seats,
    ):
        began = time.monotonic()
        await notifications.end(within=6)
        await seats.end(within=6)
        lasted = time.monotonic() - began

    assert 1.0 < lasted < 6


async def test_seat_stream_reports_booking_and_cancellation_to_that_branch_only(
    server: Server, db: asyncpg.Connection
) -> None:
    main, science = await add_branch(db, "Main"), await add_branch(db, "Science")
    seat_id = await add_seat(db, main, "A1")
    await add_seat(db, science, "B1")
    student = await add_student(db, "S0000001")

    async with (
        open_stream(server.client, "/seats/stream", params={"branch": "Main"}) as main_stream,
        open_stream(server.client, "/seats/stream", params={"branch": "Science"}) as elsewhere,
    ):
        now = utcnow()
        booking = await booked(server.client, student, seat_id, now, now + timedelta(hours=1))
        taken = await main_stream.next_event(within=5, kind="seat.availability")
        await cancel(server.client, student, booking["id"])
        freed = await main_stream.next_event(within=5, kind="seat.availability")
        other_branch = await elsewhere.events_within(0.5)

    assert taken.event == freed.event == "seat.availability"
    assert taken.json() == {
        "seat_id": seat_id,
        "branch": "Main",
        "available": False,
        "status": "ACTIVE",
    }
    assert freed.json() == {
        "seat_id": seat_id,
        "branch": "Main",
        "available": True,
        "status": "ACTIVE",
    }
    assert other_branch == []


async def test_a_change_for_another_time_tells_the_branch_map_to_re_read(
    server: Server, db: asyncpg.Connection
) -> None:
    main, science = await add_branch(db, "Main"), await add_branch(db, "Science")
    seat_id = await add_seat(db, main, "A1")
    await add_seat(db, science, "B1")
    student = await add_student(db, "S0000001")
    later = next_hour() + timedelta(hours=2)

    async with (
        open_stream(server.client, "/seats/stream", params={"branch": "Main"}) as main_stream,
        open_stream(server.client, "/seats/stream", params={"branch": "Science"}) as elsewhere,
    ):
        await booked(server.client, student, seat_id, later, later + timedelta(hours=1))
        changed = await main_stream.events_within(1.0)
        other_branch = await elsewhere.events_within(0.3)

    # Nothing changed at this moment (no seat.availability), but Main's listings did.
    assert [(e.event, e.json()) for e in changed] == [("seats.changed", {"branch": "Main"})]
    assert other_branch == []


async def test_waiting_streams_hold_no_pool_connection(
    server: Server, db: asyncpg.Connection
) -> None:
    seat_id = await add_seat(db, await add_branch(db, "Main"), "A1")
    students = [await add_student(db, f"S000000{n}") for n in range(1, 6)]

    async with AsyncExitStack() as streams:
        for student in students:
            await streams.enter_async_context(
                open_stream(server.client, NOTIFICATIONS, headers=student.headers)
            )
        began = time.monotonic()
        branches = await server.client.get("/branches", timeout=2)
        start = next_hour()
        booking = await server.client.post(
            "/reservations",
            json={
                "seat_id": seat_id,
                "start_time": iso(start),
                "end_time": iso(start + timedelta(hours=1)),
            },
            headers=students[0].headers,
            timeout=2,
        )
        elapsed = time.monotonic() - began

    assert branches.status_code == 200
    assert booking.status_code == 201, booking.text
    assert elapsed < 2


@pytest.mark.parametrize("resumed", [False, True], ids=["new-stream", "resumed-stream"])
async def test_a_notification_committed_while_the_stream_reads_where_it_starts_reaches_it(
    db: asyncpg.Connection,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    resumed: bool,
) -> None:
    """The stream reads where it starts (the newest id, or the replay after Last-Event-ID)
    and waits on its subscription. A notification committed right after that read is in
    none of its rows, so only a subscription taken before the read can bring it.

    The app runs in this process on the in-process broker, which hands a message to the
    subscribers it has at that moment; the read is wrapped so that the notification is
    committed and published (as the app publishes: after COMMIT) exactly in that gap."""
    student = await add_student(db, "S0000001")
    older = await insert_notifications(db, student.id, 2)
    app = create_app(make_settings(database_url, **SHARED_SETTINGS))
    committed: list[int] = []

    async with serve_in_process(app, log_level="warning") as served:

        async def commit_one_in_the_gap() -> None:
            if committed:
                return
            row = await db.fetchrow(
                "INSERT INTO notifications (user_id, type, data) "
                "VALUES ($1, 'reservation.reminder', '{}') "
                "RETURNING id, user_id, type, data::text AS data, created_at, read_at",
                student.id,
            )
            assert row is not None
            notification = Notification.model_validate({**row, "data": json.loads(row["data"])})
            committed.append(notification.id)
            await served.state["broker"].publish(Changes(notifications=[notification]))

        def then_commit(read: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
            async def wrapped(*args: Any, **kwargs: Any) -> T:
                found = await read(*args, **kwargs)
                await commit_one_in_the_gap()
                return found

            return wrapped

        monkeypatch.setattr(notifications_db, "latest_id", then_commit(notifications_db.latest_id))
        monkeypatch.setattr(notifications_db, "after", then_commit(notifications_db.after))
        headers = {**student.headers, **({"Last-Event-ID": str(older[0])} if resumed else {})}
        async with open_stream(served.client, NOTIFICATIONS, headers=headers) as stream:
            received = [await stream.next_event(within=5)]
            if resumed:
                received.append(await stream.next_event(within=5))

    assert len(committed) == 1
    expected = [older[1], *committed] if resumed else committed
    assert [int(event.id or 0) for event in received] == expected
