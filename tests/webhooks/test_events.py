"""Where each event comes from: bookings, a student's own cancellation, a waitlist
offer, check-in, check-out and the sweeps (no-show, completed), staff editing a seat."""

import json
from typing import Any

import asyncpg
import httpx

from app.cache import SeatCache
from app.db.pool import Pool
from app.jobs import sweeps
from app.realtime.broker import Broker
from app.realtime.publisher import Publisher
from app.services.webhooks import EVENTS
from app.settings import Settings
from tests.factories import (
    GRACE,
    MINUTE,
    FrozenClock,
    Student,
    add_student,
    at,
    booked,
    cancel,
    joined,
)
from tests.webhooks.conftest import register


async def events(db: asyncpg.Connection) -> list[tuple[str, dict[str, Any]]]:
    rows = await db.fetch(
        "SELECT payload ->> 'type' AS type, payload -> 'data' AS data FROM outbox"
        " WHERE channel = 'webhook' ORDER BY id"
    )
    return [(r["type"], json.loads(r["data"])) for r in rows]


async def test_every_event_where_it_happens(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    db: asyncpg.Connection,
    pool: Pool,
    hook_settings: Settings,
    clock: FrozenClock,
) -> None:
    await register(api, admin, "http://127.0.0.1:9/hook", list(EVENTS))
    bob = await add_student(db, "S0000002")
    publisher = Publisher(SeatCache(None, 10), Broker(None, None))

    first = await booked(api, alice, seat_id, at(10), at(11))
    await joined(api, bob, seat_id=seat_id, start=at(10), end=at(11))
    await cancel(api, alice, first["id"])  # bob is offered the seat
    assert [t for t, _ in await events(db)] == [
        "reservation.created",
        "reservation.cancelled",
        "waitlist.offer",
    ]
    offer = (await events(db))[2][1]
    assert offer["user_id"] == bob.id and offer["status"] == "HELD"

    await db.execute("TRUNCATE outbox")
    checked = await booked(api, alice, seat_id, at(12), at(13))
    clock.set(at(12))
    assert (
        await api.post(f"/reservations/{checked['id']}/checkin", headers=alice.headers)
    ).is_success
    clock.set(at(12, 30))
    out = await api.post(f"/reservations/{checked['id']}/checkout", headers=alice.headers)
    assert out.is_success, out.text
    assert [(t, d["reservation_id"], d["status"]) for t, d in await events(db)] == [
        ("reservation.created", checked["id"], "CONFIRMED"),
        ("reservation.checked_in", checked["id"], "CHECKED_IN"),
        ("reservation.completed", checked["id"], "COMPLETED"),
    ]

    await db.execute("TRUNCATE outbox")
    missed = await booked(api, alice, seat_id, at(14), at(15))
    sat = await booked(api, bob, seat_id, at(15), at(16))
    clock.set(at(15))
    assert (await api.post(f"/reservations/{sat['id']}/checkin", headers=bob.headers)).is_success
    await sweeps.mark_no_shows(pool, publisher, hook_settings, now=at(14) + GRACE + MINUTE)
    await sweeps.complete_checked_in(pool, publisher, hook_settings, now=at(16) + MINUTE)
    assert [(t, d["reservation_id"]) for t, d in (await events(db))[3:]] == [
        ("reservation.no_show", missed["id"]),
        ("reservation.completed", sat["id"]),
    ]

    await db.execute("TRUNCATE outbox")
    patched = await api.patch(
        f"/admin/seats/{seat_id}", json={"label": "A2"}, headers=admin.headers
    )
    assert patched.status_code == 200, patched.text
    [(kind, data)] = await events(db)
    assert (kind, data["id"], data["label"], data["status"]) == (
        "seat.updated",
        seat_id,
        "A2",
        "ACTIVE",
    )


async def test_a_claimed_offer_and_a_staff_closure(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    db: asyncpg.Connection,
) -> None:
    await register(api, admin, "http://127.0.0.1:9/hook", list(EVENTS))
    bob = await add_student(db, "S0000002")
    first = await booked(api, alice, seat_id, at(10), at(11))
    entry = await joined(api, bob, seat_id=seat_id, start=at(10), end=at(11))
    await cancel(api, alice, first["id"])
    claimed = await api.post(f"/waitlist/{entry['id']}/claim", headers=bob.headers)
    assert claimed.is_success, claimed.text
    await db.execute("DELETE FROM outbox WHERE payload ->> 'type' <> 'reservation.created'")
    [(kind, data)] = (await events(db))[1:]
    assert (kind, data["user_id"], data["status"]) == ("reservation.created", bob.id, "CONFIRMED")

    await db.execute("TRUNCATE outbox")
    closed = await api.patch(
        f"/admin/seats/{seat_id}", json={"status": "MAINTENANCE"}, headers=admin.headers
    )
    assert closed.status_code == 200, closed.text
    kinds = [(t, d.get("reservation_id"), d.get("reason")) for t, d in await events(db)]
    assert kinds[0][:2] == ("reservation.cancelled", data["reservation_id"])
    assert kinds[0][2]  # the reason staff's closing gives
    assert kinds[1][0] == "seat.updated"
