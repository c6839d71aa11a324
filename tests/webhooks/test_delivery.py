"""Webhook delivery against a real HTTP receiver: the signature (verified with the
``standardwebhooks`` library), a receiver failing then recovering (each event once),
the delivery log, auto-disable after 24 hours, the DNS-rebinding guard, and two
instances delivering at once."""

import asyncio
import json
from datetime import datetime, timedelta

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook

from app.db import webhooks as webhooks_db
from app.db.pool import Pool, connection
from app.jobs import webhooks as webhooks_job
from app.jobs.outbox import DeliveryResult
from app.metrics import render
from app.services import webhooks as webhooks_service
from app.settings import Settings
from app.timeutil import utcnow
from tests.conftest import make_settings
from tests.factories import HOUR, MINUTE, RULES, Student, add_student, booked, reserve
from tests.webhooks.conftest import NOW, Receiver, deliveries, register


async def test_a_booking_is_delivered_signed(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    receiver: Receiver,
    pool: Pool,
    hook_settings: Settings,
) -> None:
    hook = await register(api, admin, receiver.url(), ["reservation.created"])
    reservation = await booked(api, alice, seat_id)

    # Now, by the wall clock: the library refuses a timestamp 5 minutes off.
    result = await webhooks_job.deliver_webhooks(pool, hook_settings, now=utcnow())

    assert result == DeliveryResult(sent=1)
    [request] = receiver.requests
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-signature"].startswith("v1,")
    body = Webhook(hook["secret"]).verify(request.body, request.headers)
    assert body == request.json()
    assert body["type"] == "reservation.created"
    assert body["timestamp"] == "2026-12-01T08:00:00Z"  # when it happened
    data = body["data"]
    assert data["reservation_id"] == reservation["id"]
    assert (data["user_id"], data["seat_id"], data["status"]) == (alice.id, seat_id, "CONFIRMED")
    assert data["start_time"] == reservation["start_time"]
    # Another secret does not verify it.
    with pytest.raises(Exception, match="signature"):
        Webhook(webhooks_service.new_secret()).verify(request.body, request.headers)
    [delivery] = await deliveries(api, admin, hook["id"])
    assert delivery["message_id"] == request.webhook_id
    assert (delivery["event"], delivery["status"], delivery["attempts"]) == (
        "reservation.created",
        "delivered",
        1,
    )
    assert delivery["last_status_code"] == 204 and delivery["next_attempt_at"] is None


async def test_only_subscribed_events_and_active_endpoints(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    receiver: Receiver,
    db: asyncpg.Connection,
) -> None:
    seats = await register(api, admin, receiver.url("/seats"), ["seat.updated"])
    both = await register(api, admin, receiver.url("/both"), ["reservation.created"])
    await booked(api, alice, seat_id)
    patched = await api.patch(
        f"/admin/seats/{seat_id}", json={"has_power": True}, headers=admin.headers
    )
    assert patched.status_code == 200, patched.text
    rows = await db.fetch(
        "SELECT endpoint_id, payload ->> 'type' AS type FROM outbox WHERE channel = 'webhook'"
        " ORDER BY id"
    )
    assert [(r["endpoint_id"], r["type"]) for r in rows] == [
        (both["id"], "reservation.created"),
        (seats["id"], "seat.updated"),
    ]
    seat_event = json.loads(
        await db.fetchval(
            "SELECT payload -> 'data' FROM outbox WHERE payload ->> 'type' = 'seat.updated'"
        )
    )
    assert (seat_event["id"], seat_event["has_power"]) == (seat_id, True)


async def test_a_refused_booking_queues_nothing(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    receiver: Receiver,
    db: asyncpg.Connection,
) -> None:
    await register(api, admin, receiver.url(), ["reservation.created"])
    await booked(api, alice, seat_id)
    bob = await add_student(db, "S0000002")

    assert (await reserve(api, bob, seat_id)).status_code == 409  # the seat is taken
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE channel = 'webhook'") == 1


async def test_receiver_failing_then_recovering_gets_each_event_once(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    receiver: Receiver,
    pool: Pool,
    hook_settings: Settings,
) -> None:
    hook = await register(api, admin, receiver.url(), ["reservation.created", "seat.updated"])
    await booked(api, alice, seat_id)
    patched = await api.patch(
        f"/admin/seats/{seat_id}", json={"has_monitor": True}, headers=admin.headers
    )
    assert patched.status_code == 200, patched.text
    receiver.status = 500

    assert await webhooks_job.deliver_webhooks(pool, hook_settings, now=NOW) == (
        DeliveryResult(retried=2)
    )
    log = await deliveries(api, admin, hook["id"])
    assert {(d["status"], d["attempts"], d["last_status_code"]) for d in log} == {
        ("pending", 1, 500)
    }
    for d in log:
        # 30 s doubled per attempt, jittered down to half: the first wait is 15 to 30 s.
        due = datetime.fromisoformat(d["next_attempt_at"])
        assert NOW + timedelta(seconds=15) <= due <= NOW + timedelta(seconds=30)
        assert d["last_attempt_at"] == "2026-12-01T08:00:00Z"
    # Not due yet: nothing is tried before its time.
    assert await webhooks_job.deliver_webhooks(pool, hook_settings, now=NOW) == DeliveryResult()
    second = NOW + timedelta(seconds=30)
    assert await webhooks_job.deliver_webhooks(pool, hook_settings, now=second) == (
        DeliveryResult(retried=2)
    )
    listed = (await api.get("/admin/webhooks", headers=admin.headers)).json()
    assert listed[0]["failing_since"] == "2026-12-01T08:00:00Z" and listed[0]["active"]

    receiver.status = 200
    later = NOW + HOUR
    assert await webhooks_job.deliver_webhooks(pool, hook_settings, now=later) == (
        DeliveryResult(sent=2)
    )
    assert await webhooks_job.deliver_webhooks(pool, hook_settings, now=later + HOUR) == (
        DeliveryResult()
    )
    assert len(receiver.requests) == 6  # 2 + 2 refused, 2 accepted
    events = receiver.events
    assert sorted(e.json()["type"] for e in events) == ["reservation.created", "seat.updated"]
    # Every retry carried the same webhook-id: deduplicating leaves each event once.
    assert len({r.webhook_id for r in receiver.requests}) == 2
    log = await deliveries(api, admin, hook["id"])
    assert {(d["status"], d["attempts"], d["last_status_code"]) for d in log} == {
        ("delivered", 3, 200)
    }
    listed = (await api.get("/admin/webhooks", headers=admin.headers)).json()
    assert listed[0]["failing_since"] is None


async def test_endpoint_failing_for_24_hours_is_set_inactive(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    receiver: Receiver,
    pool: Pool,
    hook_settings: Settings,
    db: asyncpg.Connection,
) -> None:
    hook = await register(api, admin, receiver.url(), ["reservation.created"])
    await booked(api, alice, seat_id)
    receiver.status = 503
    now = NOW
    results = []
    while True:  # the job at every due time, for as long as it retries
        result = await webhooks_job.deliver_webhooks(pool, hook_settings, now=now)
        results.append(result)
        if result.dead:
            break
        due = await db.fetchval("SELECT min(next_attempt_at) FROM outbox WHERE status='pending'")
        assert due is not None and due > now
        now = due
        assert now < NOW + timedelta(hours=25)
    assert sum(r.retried for r in results) == len(results) - 1 > 10
    assert NOW + timedelta(hours=23) <= now <= NOW + timedelta(hours=24)

    [endpoint] = (await api.get("/admin/webhooks", headers=admin.headers)).json()
    assert endpoint["active"] is False
    assert endpoint["disabled_at"] is not None and endpoint["failing_since"].startswith(
        "2026-12-01"
    )
    [delivery] = await deliveries(api, admin, hook["id"])
    assert (delivery["status"], delivery["last_status_code"]) == ("failed", 503)
    # An inactive endpoint gets nothing more.
    receiver.status = 204
    later = await booked(api, alice, seat_id, NOW + 4 * HOUR, NOW + 5 * HOUR)
    assert (await api.delete(f"/reservations/{later['id']}", headers=alice.headers)).is_success
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE channel = 'webhook'") == 1
    assert await webhooks_job.deliver_webhooks(pool, hook_settings, now=now + HOUR) == (
        DeliveryResult()
    )


async def test_an_endpoint_failing_for_24_hours_across_events_is_disabled(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    receiver: Receiver,
    pool: Pool,
    hook_settings: Settings,
) -> None:
    """Failures spread over several events: 24 h since the first with no success."""
    hook = await register(api, admin, receiver.url(), ["seat.updated"])
    receiver.status = 500
    for hours in (0, 12, 24):
        moment = NOW + timedelta(hours=hours)
        async with connection(pool) as conn:
            await webhooks_db.queue(
                conn, [("seat.updated", {"id": seat_id})], now=moment, stamp="x"
            )
        await webhooks_job.deliver_webhooks(pool, hook_settings, now=moment)
        [endpoint] = (await api.get("/admin/webhooks", headers=admin.headers)).json()
        assert endpoint["active"] is (hours < 24)
    statuses = [d["status"] for d in await deliveries(api, admin, hook["id"])]
    assert statuses == ["failed", "failed", "failed"]


async def test_dns_rebinding_the_resolved_address_is_checked_at_delivery(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    receiver: Receiver,
    pool: Pool,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {"hooks.example.org": ["93.184.216.34"]}

    async def dns(host: str, port: int) -> list[str]:
        return answers[host]

    monkeypatch.setattr(webhooks_service, "resolve", dns)
    strict = hook_settings_without_private(database_url)
    url = f"http://hooks.example.org:{receiver.port}/hook"
    hook = await register(api, admin, url, ["reservation.created"])  # public then
    await booked(api, alice, seat_id)

    answers["hooks.example.org"] = ["127.0.0.1"]  # the name now points inside
    result = await webhooks_job.deliver_webhooks(pool, strict, now=NOW)

    assert result == DeliveryResult(retried=1)
    assert receiver.requests == []  # never called
    [delivery] = await deliveries(api, admin, hook["id"])
    assert delivery["status"] == "pending" and delivery["last_status_code"] is None
    assert "127.0.0.1" in delivery["last_error"] and "refused" in delivery["last_error"]

    # Allowed (WEBHOOK_ALLOW_PRIVATE): the checked address itself is called, by name.
    allowing = strict.model_copy(update={"WEBHOOK_ALLOW_PRIVATE": True})
    later = NOW + HOUR
    assert await webhooks_job.deliver_webhooks(pool, allowing, now=later) == (
        DeliveryResult(sent=1)
    )
    [request] = receiver.requests
    assert request.headers["host"] == f"hooks.example.org:{receiver.port}"


def hook_settings_without_private(database_url: str) -> Settings:
    return make_settings(database_url, **RULES)


async def test_two_instances_delivering_at_once_deliver_each_once(
    api: httpx.AsyncClient,
    admin: Student,
    receiver: Receiver,
    pool: Pool,
    second_pool: Pool,
    hook_settings: Settings,
) -> None:
    await register(api, admin, receiver.url(), ["seat.updated"])
    async with connection(pool) as conn:
        queued = await webhooks_db.queue(
            conn, [("seat.updated", {"id": n}) for n in range(250)], now=NOW, stamp="x"
        )
    assert queued == 250

    first, second = await asyncio.gather(
        webhooks_job.deliver_webhooks(pool, hook_settings, now=NOW),
        webhooks_job.deliver_webhooks(second_pool, hook_settings, now=NOW),
    )

    assert first.sent + second.sent == 250
    assert first.sent > 0 and second.sent > 0
    assert len(receiver.requests) == 250
    assert sorted(r.json()["data"]["id"] for r in receiver.requests) == list(range(250))


async def test_metrics_of_the_webhook_channel(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    receiver: Receiver,
    pool: Pool,
    hook_settings: Settings,
) -> None:
    def sample(name: str) -> float:
        for line in render().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    queued = 'dlsms_outbox_queued_total{channel="webhook"}'
    before = sample(queued)
    await register(api, admin, receiver.url(), ["reservation.created"])
    await booked(api, alice, seat_id)
    assert sample(queued) == before + 1

    receiver.status = 500
    await webhooks_job.tick(pool, hook_settings, now=NOW + 5 * MINUTE)
    assert sample('dlsms_outbox_messages{channel="webhook",status="pending"}') == 1
    assert sample('dlsms_outbox_oldest_pending_age_seconds{channel="webhook"}') == 300
    receiver.status = 200
    sent = 'dlsms_outbox_deliveries_total{channel="webhook",outcome="sent"}'
    before_sent = sample(sent)
    await webhooks_job.tick(pool, hook_settings, now=NOW + HOUR)
    assert sample(sent) == before_sent + 1
    assert sample('dlsms_outbox_messages{channel="webhook",status="pending"}') == 0


async def test_a_redirect_is_not_followed(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    receiver: Receiver,
    pool: Pool,
    hook_settings: Settings,
) -> None:
    hook = await register(api, admin, receiver.url(), ["reservation.created"])
    await booked(api, alice, seat_id)
    receiver.status = 307  # its Location (none here) is never asked for

    assert await webhooks_job.deliver_webhooks(pool, hook_settings, now=NOW) == (
        DeliveryResult(retried=1)
    )
    assert len(receiver.requests) == 1
    [delivery] = await deliveries(api, admin, hook["id"])
    assert (delivery["status"], delivery["last_status_code"]) == ("pending", 307)
    assert delivery["last_error"] == "HTTP 307"
