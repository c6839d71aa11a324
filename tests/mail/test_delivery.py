"""The outbox's delivery job against a real SMTP server: the server down for a while
(messages wait, then go out once), two instances delivering at once (each message once),
dead letters (after the retry window, or a permanent refusal) and what staff see."""

import asyncio
import random
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from app.db import outbox as outbox_db
from app.db.pool import Pool, connection
from app.jobs import outbox as outbox_job
from app.metrics import render
from app.models import Role
from app.services.mail import SmtpConfig
from tests.factories import HOUR, MINUTE, Student, add_student, booked
from tests.mail.conftest import NOW, Seat, SmtpServer, outbox_rows


def payload(n: int, to: str = "someone@example.edu") -> dict[str, Any]:
    return {
        "kind": "test",
        "to": to,
        "subject": f"message {n}",
        "text": f"body {n}\n",
        "html": f"<p>body {n}</p>",
        "attachments": [],
    }


async def queue(pool: Pool, payloads: list[dict[str, Any]], *, now: Any = NOW) -> None:
    async with connection(pool) as conn:
        await outbox_db.insert_many(conn, "email", payloads, now=now)


async def test_server_down_for_a_while_then_delivered_once(
    api: httpx.AsyncClient,
    smtp: SmtpServer,
    pool: Pool,
    smtp_conf: SmtpConfig,
    alice: Student,
    seat: Seat,
    db: asyncpg.Connection,
) -> None:
    smtp.stop()
    await booked(api, alice, seat.seat_id)

    result = await outbox_job.deliver_email(pool, smtp_conf, now=NOW)

    assert result == outbox_job.DeliveryResult(retried=1)
    [row] = await outbox_rows(db)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    # 30 s doubled per attempt, jittered down to half: the first wait is 15 to 30 s.
    assert NOW + timedelta(seconds=15) <= row["next_attempt_at"] <= NOW + timedelta(seconds=30)
    assert "ConnectionError" in row["last_error"] or "SMTP" in row["last_error"]
    first_retry = row["next_attempt_at"]

    # Still down at the next try: a longer wait.
    result = await outbox_job.deliver_email(pool, smtp_conf, now=first_retry)
    assert result == outbox_job.DeliveryResult(retried=1)
    [row] = await outbox_rows(db)
    assert row["attempts"] == 2
    assert first_retry + timedelta(seconds=30) <= row["next_attempt_at"]

    smtp.start()
    # Back up, but the message is not due yet: nothing is sent before its time.
    assert await outbox_job.deliver_email(pool, smtp_conf, now=first_retry) == (
        outbox_job.DeliveryResult()
    )
    later = row["next_attempt_at"]
    assert await outbox_job.deliver_email(pool, smtp_conf, now=later) == (
        outbox_job.DeliveryResult(sent=1)
    )
    assert await outbox_job.deliver_email(pool, smtp_conf, now=later + HOUR) == (
        outbox_job.DeliveryResult()
    )
    assert [r.rcpt_tos for r in smtp.received] == [["alice@example.edu"]]
    [row] = await outbox_rows(db)
    assert (row["status"], row["attempts"], row["sent_at"], row["last_error"]) == (
        "sent",
        3,
        later,
        None,
    )


async def test_two_instances_deliver_each_message_once(
    smtp: SmtpServer, pool: Pool, second_pool: Pool, smtp_conf: SmtpConfig, db: asyncpg.Connection
) -> None:
    count = 3 * outbox_job.BATCH + 17
    await queue(pool, [payload(n) for n in range(count)])

    first, second = await asyncio.gather(
        outbox_job.deliver_email(pool, smtp_conf, now=NOW),
        outbox_job.deliver_email(second_pool, smtp_conf, now=NOW),
    )

    assert first.sent + second.sent == count
    assert first.sent > 0 and second.sent > 0, (first, second)  # both took a share
    subjects = sorted(str(r.message["Subject"]) for r in smtp.received)
    assert subjects == sorted(f"message {n}" for n in range(count))  # each once
    message_ids = {str(r.message["Message-ID"]) for r in smtp.received}
    assert len(message_ids) == count
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE status = 'sent'") == count
    assert await db.fetchval("SELECT max(attempts) FROM outbox") == 1


async def test_dead_after_the_retry_window(
    smtp: SmtpServer,
    pool: Pool,
    smtp_conf: SmtpConfig,
    db: asyncpg.Connection,
    make_client: Any,
) -> None:
    smtp.stop()
    await queue(pool, [payload(1)])
    now = NOW
    while True:
        result = await outbox_job.deliver_email(pool, smtp_conf, now=now)
        row = (await outbox_rows(db))[0]
        if row["status"] == "dead":
            break
        assert result == outbox_job.DeliveryResult(retried=1)
        assert row["next_attempt_at"] - now <= outbox_job.MAX_DELAY
        now = row["next_attempt_at"]
    assert result == outbox_job.DeliveryResult(dead=1)
    # Dead once the next attempt would fall past 24 hours after it was queued.
    assert now >= NOW + outbox_job.RETRY_WINDOW - outbox_job.MAX_DELAY
    assert now <= NOW + outbox_job.RETRY_WINDOW
    assert row["attempts"] > 10
    assert row["last_error"]

    smtp.start()  # a dead message is never sent, however long one waits
    assert await outbox_job.deliver_email(pool, smtp_conf, now=now + 2 * HOUR) == (
        outbox_job.DeliveryResult()
    )
    assert smtp.received == []


async def test_a_permanent_refusal_is_dead_at_once_and_staff_see_it(
    smtp: SmtpServer,
    pool: Pool,
    smtp_conf: SmtpConfig,
    db: asyncpg.Connection,
    api: httpx.AsyncClient,
) -> None:
    smtp.handler.refuse.add("gone@example.edu")
    broken = payload(3)
    del broken["html"]  # a payload no retry will mend
    # More messages than connections: a connection goes on after a refusal.
    others = [payload(n) for n in range(4, 4 + 3 * outbox_job.SENDERS)]
    await queue(pool, [payload(1, "gone@example.edu"), payload(2), broken, *others])

    result = await outbox_job.deliver_email(pool, smtp_conf, now=NOW)

    assert result == outbox_job.DeliveryResult(sent=1 + len(others), dead=2)
    assert sorted(str(r.message["Subject"]) for r in smtp.received) == sorted(
        ["message 2"] + [p["subject"] for p in others]
    )
    assert await outbox_job.deliver_email(pool, smtp_conf, now=NOW + 2 * HOUR) == (
        outbox_job.DeliveryResult()
    )

    admin = await add_student(db, "ADMIN01", role=Role.ADMIN)
    response = await api.get("/admin/outbox?status=dead", headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2
    [unusable, dead] = body["items"]  # newest first
    assert unusable["subject"] == "message 3"
    assert "unusable payload" in unusable["last_error"]
    assert dead["recipient"] == "gone@example.edu"
    assert dead["subject"] == "message 1"
    assert (dead["status"], dead["attempts"], dead["channel"]) == ("dead", 1, "email")
    assert "550" in dead["last_error"] or "No such user" in dead["last_error"]

    sent = (await api.get("/admin/outbox?status=sent", headers=admin.headers)).json()
    assert sent["total"] == 1 + len(others)
    everything = (await api.get("/admin/outbox?limit=3", headers=admin.headers)).json()
    total = 3 + len(others)
    assert everything["total"] == total
    assert [m["id"] for m in everything["items"]] == [total, total - 1, total - 2]

    student = await add_student(db, "S0000099")
    assert (await api.get("/admin/outbox", headers=student.headers)).status_code == 403
    bad = await api.get("/admin/outbox?status=lost", headers=admin.headers)
    assert bad.status_code == 422


async def test_metrics_count_the_queue_and_its_oldest(
    smtp: SmtpServer, pool: Pool, smtp_conf: SmtpConfig
) -> None:
    smtp.stop()
    await queue(pool, [payload(1)], now=NOW - 5 * MINUTE)
    await queue(pool, [payload(2)])
    await outbox_job.tick(pool, smtp_conf, now=NOW)
    metrics = render().decode()
    assert 'dlsms_outbox_messages{channel="email",status="pending"} 2.0' in metrics
    assert 'dlsms_outbox_oldest_pending_age_seconds{channel="email"} 300.0' in metrics
    assert 'dlsms_outbox_deliveries_total{channel="email",outcome="retry"}' in metrics

    smtp.start()
    await outbox_job.tick(pool, smtp_conf, now=NOW + HOUR)
    metrics = render().decode()
    assert 'dlsms_outbox_messages{channel="email",status="pending"} 0.0' in metrics
    assert 'dlsms_outbox_oldest_pending_age_seconds{channel="email"} 0.0' in metrics


def test_backoff_grows_exponentially_with_jitter_and_stops_at_the_cap() -> None:
    rng = random.Random(7)  # noqa: S311 (jitter, not secrets)
    for attempts in range(1, 15):
        ceiling = min(outbox_job.BASE_DELAY * 2 ** (attempts - 1), outbox_job.MAX_DELAY)
        waits = {outbox_job.backoff(attempts, rng=rng) for _ in range(20)}
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(waits) > 1  # jittered: instances retrying together spread out
