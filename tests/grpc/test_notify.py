"""NotifyService over gRPC: waitlist, notifications and their stream, on a frozen clock
(Dec 1, 08:00 UTC); the offer made by a cancellation over HTTP reaches a gRPC stream."""

import asyncio
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest
from redis.asyncio import Redis

from app.grpc.convert import timestamp
from app.grpc.generated import dlsms_pb2 as pb
from app.grpc.notify import AFTER_ID_HEADER
from app.realtime.broker import CHANNEL_PREFIX
from tests.factories import (
    T10,
    T11,
    FrozenClock,
    Student,
    add_branch,
    add_reservation,
    add_seat,
    at,
    booked,
    eventually,
)
from tests.grpc.conftest import GrpcApp, GrpcFactory, auth, received, refused

NOW = at(8)
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@dataclass(frozen=True)
class Library:
    a1: int
    a2: int


@pytest.fixture
async def app(make_grpc: GrpcFactory) -> GrpcApp:
    return await make_grpc(clock=FrozenClock(NOW))


@pytest.fixture
async def library(db: asyncpg.Connection) -> Library:
    main = await add_branch(db, "Main")
    return Library(a1=await add_seat(db, main, "A1"), a2=await add_seat(db, main, "A2"))


def wait_for(seat_id: int) -> pb.AddToWaitlistRequest:
    return pb.AddToWaitlistRequest(
        seat_id=seat_id, start_time=timestamp(T10), end_time=timestamp(T11)
    )


async def test_waitlist_join_list_and_leave(
    app: GrpcApp, library: Library, alice: Student, bob: Student
) -> None:
    await booked(app.http, alice, library.a1)
    entry = await app.notify.AddToWaitlist(wait_for(library.a1), metadata=auth(bob))
    assert (entry.user_id, entry.seat_id, entry.branch, entry.status, entry.position) == (
        bob.id,
        library.a1,
        "Main",
        "WAITING",
        1,
    )
    await refused(
        app.notify.AddToWaitlist(wait_for(library.a1), metadata=auth(bob)),
        grpc.StatusCode.ALREADY_EXISTS,
        "already_exists",
    )
    await refused(
        app.notify.AddToWaitlist(wait_for(library.a2), metadata=auth(bob)),
        FAILED_PRECONDITION,
        "slot_available",
    )
    branch_wide = pb.AddToWaitlistRequest(
        branch="Nowhere", start_time=timestamp(T10), end_time=timestamp(T11)
    )
    await refused(
        app.notify.AddToWaitlist(branch_wide, metadata=auth(bob)),
        grpc.StatusCode.NOT_FOUND,
        "not_found",
    )
    no_target = pb.AddToWaitlistRequest(start_time=timestamp(T10), end_time=timestamp(T11))
    await refused(
        app.notify.AddToWaitlist(no_target, metadata=auth(bob)),
        grpc.StatusCode.INVALID_ARGUMENT,
        None,
    )
    listed = await app.notify.GetUserWaitlist(pb.GetUserWaitlistRequest(), metadata=auth(bob))
    assert ([e.id for e in listed.items], listed.total) == ([entry.id], 1)
    await refused(
        app.notify.GetUserWaitlist(pb.GetUserWaitlistRequest(user_id=bob.id), metadata=auth(alice)),
        grpc.StatusCode.NOT_FOUND,
        "not_found",
    )
    left = await app.notify.RemoveFromWaitlist(
        pb.RemoveFromWaitlistRequest(entry_id=entry.id), metadata=auth(bob)
    )
    assert left.status == "CANCELLED"
    await refused(
        app.notify.RemoveFromWaitlist(
            pb.RemoveFromWaitlistRequest(entry_id=entry.id), metadata=auth(bob)
        ),
        FAILED_PRECONDITION,
        "invalid_state",
    )


async def test_an_offer_made_over_http_reaches_the_grpc_stream_and_is_claimed(
    app: GrpcApp, library: Library, alice: Student, bob: Student
) -> None:
    mine = await booked(app.http, alice, library.a1)
    entry = await app.notify.AddToWaitlist(wait_for(library.a1), metadata=auth(bob))
    stream = app.notify.StreamNotifications(pb.StreamNotificationsRequest(), metadata=auth(bob))
    started = dict(await asyncio.wait_for(stream.initial_metadata(), 5))
    assert started[AFTER_ID_HEADER] == "0"  # no notification yet: the stream starts after 0

    cancelled = await app.http.delete(f"/reservations/{mine['id']}", headers=alice.headers)
    assert cancelled.status_code == 200, cancelled.text
    offer = await received(stream)
    assert offer.type == "waitlist.offer"
    data = json.loads(offer.data_json)
    assert (data["entry_id"], data["seat_id"]) == (entry.id, library.a1)
    assert not offer.HasField("read_at")
    stream.cancel()

    claimed = await app.notify.ClaimOffer(
        pb.ClaimOfferRequest(entry_id=entry.id), metadata=auth(bob)
    )
    assert claimed.entry.status == "CLAIMED"
    assert (claimed.reservation.id, claimed.reservation.status) == (
        data["reservation_id"],
        "CONFIRMED",
    )
    await refused(
        app.notify.ClaimOffer(pb.ClaimOfferRequest(entry_id=entry.id), metadata=auth(bob)),
        FAILED_PRECONDITION,
        "invalid_state",
    )

    # Reconnecting with after_id replays what came after it, oldest first.
    replay = app.notify.StreamNotifications(
        pb.StreamNotificationsRequest(after_id=0), metadata=auth(bob)
    )
    again = await received(replay)
    assert (again.id, again.type) == (offer.id, "waitlist.offer")
    replay.cancel()
    after = app.notify.StreamNotifications(
        pb.StreamNotificationsRequest(after_id=offer.id), metadata=auth(bob)
    )
    assert dict(await asyncio.wait_for(after.initial_metadata(), 5))[AFTER_ID_HEADER] == str(
        offer.id
    )
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(after.read(), 0.3)  # nothing newer
    after.cancel()


async def test_list_and_mark_notifications_read(
    app: GrpcApp, library: Library, alice: Student, bob: Student
) -> None:
    mine = await booked(app.http, alice, library.a1)
    await app.notify.AddToWaitlist(wait_for(library.a1), metadata=auth(bob))
    await app.http.delete(f"/reservations/{mine['id']}", headers=alice.headers)
    listed = await app.notify.ListNotifications(
        pb.ListNotificationsRequest(unread_only=True), metadata=auth(bob)
    )
    assert [n.type for n in listed.items] == ["waitlist.offer"] and listed.total == 1
    read = await app.notify.MarkNotificationRead(
        pb.MarkNotificationReadRequest(notification_id=listed.items[0].id), metadata=auth(bob)
    )
    assert read.HasField("read_at")
    unread = await app.notify.ListNotifications(
        pb.ListNotificationsRequest(unread_only=True), metadata=auth(bob)
    )
    assert unread.total == 0
    await refused(
        app.notify.MarkNotificationRead(
            pb.MarkNotificationReadRequest(notification_id=listed.items[0].id),
            metadata=auth(alice),
        ),
        grpc.StatusCode.NOT_FOUND,
        "not_found",
    )
    await refused(
        app.notify.ListNotifications(pb.ListNotificationsRequest()),
        grpc.StatusCode.UNAUTHENTICATED,
        "not_authenticated",
    )
    await refused(
        app.notify.StreamNotifications(pb.StreamNotificationsRequest()).read(),
        grpc.StatusCode.UNAUTHENTICATED,
        "not_authenticated",
    )


async def test_notify_users_offers_the_seats_free_time_now_and_is_for_staff(
    app: GrpcApp, db: asyncpg.Connection, library: Library, alice: Student, bob: Student,
    admin: Student,
) -> None:  # fmt: skip
    held = await add_reservation(db, user_id=bob.id, seat_id=library.a1, start=T10, end=T11)
    entry = await app.notify.AddToWaitlist(wait_for(library.a1), metadata=auth(alice))
    # The time frees up without a release (a fix by hand): nobody was offered it.
    await db.execute("UPDATE reservations SET status = 'CANCELLED' WHERE id = $1", held)
    asked = pb.NotifyUsersRequest(
        seat_id=library.a1, start_time=timestamp(T10), end_time=timestamp(T11)
    )
    await refused(
        app.notify.NotifyUsers(asked, metadata=auth(alice)),
        grpc.StatusCode.PERMISSION_DENIED,
        "forbidden",
    )
    answer = await app.notify.NotifyUsers(asked, metadata=auth(admin))
    assert [(e.id, e.status) for e in answer.offered] == [(entry.id, "OFFERED")]
    again = await app.notify.NotifyUsers(asked, metadata=auth(admin))
    assert list(again.offered) == []  # the time is held for alice now
    backwards = pb.NotifyUsersRequest(
        seat_id=library.a1, start_time=timestamp(T11), end_time=timestamp(T10)
    )
    await refused(
        app.notify.NotifyUsers(backwards, metadata=auth(admin)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_interval",
    )
    missing = pb.NotifyUsersRequest(
        seat_id=999_999, start_time=timestamp(T10), end_time=timestamp(T11)
    )
    await refused(
        app.notify.NotifyUsers(missing, metadata=auth(admin)),
        grpc.StatusCode.NOT_FOUND,
        "not_found",
    )


@pytest.mark.redis
async def test_a_stream_on_one_instance_gets_the_offer_made_through_another(
    make_grpc: GrpcFactory, redis_url: str, library: Library, alice: Student, bob: Student
) -> None:
    clock = FrozenClock(NOW)
    writer = await make_grpc(clock=clock, REDIS_URL=redis_url)
    reader = await make_grpc(clock=clock, REDIS_URL=redis_url)
    await both_listening(redis_url)
    mine = await booked(writer.http, alice, library.a1)
    entry = await writer.notify.AddToWaitlist(wait_for(library.a1), metadata=auth(bob))
    stream = reader.notify.StreamNotifications(pb.StreamNotificationsRequest(), metadata=auth(bob))
    await asyncio.wait_for(stream.initial_metadata(), 5)
    # Cancelled through the other instance's gRPC: Redis carries the offer across.
    await writer.reservations.CancelReservation(
        pb.CancelReservationRequest(reservation_id=mine["id"]), metadata=auth(alice)
    )
    offer = await received(stream)
    assert offer.type == "waitlist.offer"
    assert json.loads(offer.data_json)["entry_id"] == entry.id
    stream.cancel()


async def both_listening(redis_url: str) -> None:
    """Until both instances' brokers listen on the events channel (pub/sub delivers
    nothing to a subscriber that is not there yet)."""
    channel = f"{CHANNEL_PREFIX}:db{int(urlsplit(redis_url).path.lstrip('/') or 0)}"
    redis = Redis.from_url(redis_url)
    try:
        await eventually(
            lambda: redis.pubsub_numsub(channel),
            lambda counts: bool(counts) and counts[0][1] >= 2,
            within=10,
            what="both brokers subscribed",
        )
    finally:
        await redis.aclose()
