"""Delivery of the outbox's webhooks (Standard Webhooks), a job of ``now`` safe on any
number of instances: the outbox's claim, lease, backoff and 24-hour window
(app/jobs/outbox.py ``deliver`` and ``failed``) with an HTTP POST as the sending.

Each delivery: the endpoint (gone or inactive: the delivery is given up), its URL's
name resolved and every address checked again (DNS rebinding; refused: retried later,
the URL not called), then a POST to the checked address itself (the name in the Host
header and for TLS: SNI and the certificate), with ``webhook-id`` (the same on every
retry), ``webhook-timestamp`` and ``webhook-signature`` (``v1,`` + base64 HMAC-SHA256
by the ``standardwebhooks`` library) and the JSON body ``{type, timestamp, data}``.
No redirect is followed; short timeouts. A 2xx is delivered; anything else is retried
with the outbox's backoff until 24 hours after it was queued, then ``dead`` (failed).

An endpoint whose deliveries have all failed for 24 hours (``failing_since``, cleared by
any success) is set inactive and its pending deliveries given up; so is one whose
delivery failed every attempt of its whole 24-hour window.
"""

import asyncio
import json
import logging
import time
from datetime import datetime, timedelta

import httpx2
from opentelemetry import trace
from standardwebhooks import Webhook

from app.db import outbox as outbox_db
from app.db import webhooks as webhooks_db
from app.db.pool import Pool, connection
from app.jobs import outbox as outbox_job
from app.jobs.outbox import DeliveryResult
from app.services import webhooks as webhooks_service
from app.services.webhooks import UnsafeTarget, resolve_target
from app.settings import Settings
from app.tracing import delivery_span, inject_traceparent, set_outcome

log = logging.getLogger(__name__)

# Requests at once (a batch is spread over them; a slow endpoint holds up one each).
SENDERS = 16
TIMEOUT = httpx2.Timeout(10.0, connect=5.0)
DISABLE_AFTER = timedelta(hours=24)
INTERVAL_SECONDS = outbox_job.INTERVAL_SECONDS
USER_AGENT = "DL-SMS-Webhooks/1"


def new_client() -> httpx2.AsyncClient:
    """No redirects, no proxies from the environment (the checked address is called)."""
    return httpx2.AsyncClient(
        timeout=TIMEOUT,
        follow_redirects=False,
        trust_env=False,
        limits=httpx2.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS),
    )


def body_of(payload: dict[str, object]) -> bytes:
    return json.dumps(
        {"type": payload["type"], "timestamp": payload["timestamp"], "data": payload["data"]},
        separators=(",", ":"),
    ).encode()


async def deliver_webhooks(
    pool: Pool, settings: Settings, *, now: datetime, client: httpx2.AsyncClient | None = None
) -> DeliveryResult:
    """Post every due webhook delivery (batch after batch until none is left)."""
    if client is None:
        async with new_client() as own:
            return await deliver_webhooks(pool, settings, now=now, client=own)

    async def send_batch(batch: list[outbox_db.Claimed]) -> DeliveryResult:
        return await _send_batch(pool, settings, client, batch, now=now)

    # One endpoint down does not hold up the others: the tick goes on after a failure.
    return await outbox_job.deliver(pool, "webhook", send_batch, now=now, stop_on_retry=False)


async def _send_batch(
    pool: Pool,
    settings: Settings,
    client: httpx2.AsyncClient,
    batch: list[outbox_db.Claimed],
    *,
    now: datetime,
) -> DeliveryResult:
    async with connection(pool) as conn:
        targets = await webhooks_db.targets(
            conn, sorted({m.endpoint_id for m in batch if m.endpoint_id is not None})
        )
    gate = asyncio.Semaphore(SENDERS)

    async def one(message: outbox_db.Claimed) -> str:
        async with gate:
            target = targets.get(message.endpoint_id or 0)
            return await _deliver_one(pool, settings, client, message, target, now=now)

    outcomes = await asyncio.gather(*(one(m) for m in batch))
    return DeliveryResult(
        sent=outcomes.count("sent"), retried=outcomes.count("retry"), dead=outcomes.count("dead")
    )


async def _deliver_one(
    pool: Pool,
    settings: Settings,
    client: httpx2.AsyncClient,
    message: outbox_db.Claimed,
    endpoint: webhooks_db.Target | None,
    *,
    now: datetime,
) -> str:
    """One attempt: ``sent``, ``retry`` or ``dead``; a span of its own (tracing on),
    whose context the receiver gets in ``traceparent``."""
    with delivery_span("webhook", message.attempts) as span:
        outcome, error = await _attempt(pool, settings, client, message, endpoint, now=now)
        set_outcome(span, outcome, error=error)
        return outcome


async def _attempt(
    pool: Pool,
    settings: Settings,
    client: httpx2.AsyncClient,
    message: outbox_db.Claimed,
    endpoint: webhooks_db.Target | None,
    *,
    now: datetime,
) -> tuple[str, str | None]:
    """The outcome and, for a failure, why."""
    if endpoint is None or not endpoint.active:
        await outbox_job.failed(pool, message, now=now, error="endpoint inactive", permanent=True)
        return "dead", "endpoint inactive"
    status_code: int | None = None
    try:
        target = await resolve_target(endpoint.url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE)
        payload = message.payload
        msg_id = str(payload["webhook_id"])
        body = body_of(payload)
        headers = {
            "host": target.host_header,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(endpoint.secret).sign(msg_id, now, body),
        }
        inject_traceparent(headers)  # nothing with tracing off
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        # Streamed, and the answer's body never read: only its status counts.
        async with client.stream(
            "POST", target.connect_url, content=body, headers=headers, extensions=extensions
        ) as response:
            status_code = response.status_code
        trace.get_current_span().set_attribute("http.response.status_code", status_code)
        if 200 <= status_code < 300:
            async with connection(pool) as conn:
                await outbox_db.mark_sent(conn, message.id, now=now, status_code=status_code)
                await webhooks_db.succeeded(conn, endpoint.id)
            return "sent", None
        error = f"HTTP {status_code}"
    except UnsafeTarget as exc:
        error = f"refused: {exc}"
    except httpx2.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    dead = await outbox_job.failed(
        pool, message, now=now, error=error, permanent=False, status_code=status_code
    )
    async with connection(pool) as conn:
        disabled = await webhooks_db.failed(
            conn,
            endpoint.id,
            now=now,
            disable_after=DISABLE_AFTER,
            gave_up_since=message.created_at if dead else None,
        )
    if disabled:
        log.warning("webhook endpoint %d set inactive after 24 h of failures", endpoint.id)
    return ("dead" if dead else "retry"), error


async def tick(
    pool: Pool, settings: Settings, *, now: datetime, client: httpx2.AsyncClient | None = None
) -> DeliveryResult:
    """One run of the job; failures are logged and the next tick tries again."""
    started = time.perf_counter()
    try:
        async with connection(pool) as conn:
            await webhooks_service.refresh_hint(conn)
        result = await deliver_webhooks(pool, settings, now=now, client=client)
        await outbox_job.refresh_metrics(pool, now=now, channel="webhook")
    except Exception:
        log.exception("webhook delivery failed; retrying at the next tick")
        return DeliveryResult()
    if result.sent or result.dead:
        log.info(
            "webhooks: %d delivered, %d retried later, %d failed for good in %.2f s",
            result.sent,
            result.retried,
            result.dead,
            time.perf_counter() - started,
        )
    return result
