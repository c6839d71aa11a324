"""Delivery of the outbox's e-mail: a job of ``now``, safe to run on any number of
instances at once (each message is claimed by one: app/db/outbox.py).

Each tick claims due messages in batches of ``BATCH`` (FOR UPDATE SKIP LOCKED, a lease
of ``LEASE``) and sends a batch over ``SENDERS`` SMTP connections at once. A message the
relay accepts is ``sent``. A failure (relay down, timeout, 4xx) leaves it ``pending``
with its attempt counted, the error kept and the next attempt after an exponential
backoff with jitter: ``BASE_DELAY`` doubled per attempt up to ``MAX_DELAY``, times a
random factor in [0.5, 1]. A message still failing ``RETRY_WINDOW`` (24 h) after it was
queued, or refused for good (5xx), is ``dead``: it stays in the table for staff
(``GET /admin/outbox?status=dead``) and is never sent. Sent messages are deleted after
``KEEP_SENT``. Nothing is lost while the relay is down: messages wait, pending.

A message is sent at least once, and once in all but one case: a process that dies
between the relay's acceptance and marking the row sent leaves it to be sent again when
its lease ends (its Message-ID is the same, so a reader's client can drop the copy).

The claiming loop (``deliver``), the retry-or-give-up step (``failed``, ``backoff``) and
the metrics (``refresh_metrics``) serve every channel: webhooks use them too
(app/jobs/webhooks.py).
"""

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from opentelemetry import trace
from opentelemetry.trace import Span
from prometheus_client import Counter, Gauge

from app.db import outbox as outbox_db
from app.db.pool import Pool, connection
from app.services.mail import PermanentFailure, SmtpConfig, SmtpSender, build_message, message_id
from app.tracing import delivery_span, set_outcome, start_delivery_span

log = logging.getLogger(__name__)

BATCH = 100
# SMTP connections a batch is sent over at once (relays take a few in parallel).
SENDERS = 4
LEASE = timedelta(minutes=5)
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=1)
RETRY_WINDOW = timedelta(hours=24)
KEEP_SENT = timedelta(days=7)
# How often the delivery job runs (the sweeps' interval is for slower work).
INTERVAL_SECONDS = 1.0

DELIVERIES = Counter(
    "dlsms_outbox_deliveries_total",
    "Outbox delivery attempts by outcome (sent, retry: failed and rescheduled, dead)",
    ["channel", "outcome"],
)
MESSAGES = Gauge(
    "dlsms_outbox_messages",
    "Outbox messages by status, as the last delivery tick of this process counted them",
    ["channel", "status"],
)
OLDEST_PENDING = Gauge(
    "dlsms_outbox_oldest_pending_age_seconds",
    "Age of the oldest pending outbox message at the last delivery tick (0: none)",
    ["channel"],
)


@dataclass(frozen=True)
class DeliveryResult:
    sent: int = 0
    retried: int = 0
    dead: int = 0


def backoff(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: exponential, capped, jittered."""
    ceiling = min(BASE_DELAY * (1 << min(max(attempts - 1, 0), 20)), MAX_DELAY)
    factor: float = (rng or random).uniform(0.5, 1.0)
    return ceiling * factor


SendBatch = Callable[[list[outbox_db.Claimed]], Awaitable[DeliveryResult]]


async def deliver(
    pool: Pool,
    channel: outbox_db.Channel,
    send_batch: SendBatch,
    *,
    now: datetime,
    stop_on_retry: bool,
) -> DeliveryResult:
    """Claim the channel's due messages batch after batch (until none is left) and hand
    each batch to ``send_batch``; ``stop_on_retry``: a batch with a failure ends the tick
    (one relay for all: it is likely down, and is tried again at the next tick)."""
    sent = retried = dead = 0
    while True:
        async with connection(pool) as conn:
            batch = await outbox_db.claim_due(conn, channel, now=now, lease=LEASE, batch=BATCH)
        if not batch:
            break
        result = await send_batch(batch)
        sent, retried, dead = sent + result.sent, retried + result.retried, dead + result.dead
        if len(batch) < BATCH or (stop_on_retry and result.retried):
            break
    DELIVERIES.labels(channel, "sent").inc(sent)
    DELIVERIES.labels(channel, "retry").inc(retried)
    DELIVERIES.labels(channel, "dead").inc(dead)
    return DeliveryResult(sent, retried, dead)


async def deliver_email(pool: Pool, config: SmtpConfig, *, now: datetime) -> DeliveryResult:
    """Send every due e-mail (batch after batch until none is left)."""

    async def send_batch(batch: list[outbox_db.Claimed]) -> DeliveryResult:
        return await _send_batch(pool, config, batch, now=now)

    return await deliver(pool, "email", send_batch, now=now, stop_on_retry=True)


async def _send_batch(
    pool: Pool, config: SmtpConfig, batch: list[outbox_db.Claimed], *, now: datetime
) -> DeliveryResult:
    """Send a claimed batch over up to ``SENDERS`` SMTP connections at once."""
    queue = deque(batch)
    results = await asyncio.gather(
        *(_sender(pool, config, queue, now=now) for _ in range(min(SENDERS, len(batch))))
    )
    return DeliveryResult(
        sent=sum(r.sent for r in results),
        retried=sum(r.retried for r in results),
        dead=sum(r.dead for r in results),
    )


async def _sender(
    pool: Pool, config: SmtpConfig, queue: deque[outbox_db.Claimed], *, now: datetime
) -> DeliveryResult:
    """One connection taking messages from ``queue`` until it is empty or the relay fails;
    on a failure the rest of the queue is rescheduled too (the relay is likely down).
    Each message's attempt is a span (tracing on), the rescheduled ones' included."""
    sent = retried = dead = 0
    # The message the relay failed on and its span, still open (its outcome comes below).
    current: outbox_db.Claimed | None = None
    failing: Span | None = None
    try:
        async with SmtpSender(config) as smtp:
            while queue:
                message = queue.popleft()  # the queue is shared by this batch's senders
                span = start_delivery_span("email", message.attempts)
                with trace.use_span(span, end_on_exit=False):
                    try:
                        outcome = await _send_one(pool, config, smtp, message, now=now)
                    except Exception:  # the relay: this one waits with the rest (below)
                        current, failing = message, span
                        raise
                set_outcome(span, outcome)
                span.end()
                sent, dead = sent + (outcome == "sent"), dead + (outcome == "dead")
    except Exception as exc:  # the relay is down or broke off: the rest waits
        error = f"{type(exc).__name__}: {exc}"
        waiting = ([current] if current is not None else []) + list(queue)
        queue.clear()
        if waiting:
            log.warning(
                "e-mail relay %s failed (%s); %d message(s) retried later",
                config.where,
                error,
                len(waiting),
            )
        for message in waiting:
            with delivery_span("email", message.attempts, failing) as span:
                gave_up = await failed(pool, message, now=now, error=error, permanent=False)
                set_outcome(span, "dead" if gave_up else "retry", error=error)
            failing = None
            dead, retried = dead + gave_up, retried + (not gave_up)
    return DeliveryResult(sent, retried, dead)


async def _send_one(
    pool: Pool, config: SmtpConfig, smtp: SmtpSender, message: outbox_db.Claimed, *, now: datetime
) -> str:
    """``sent`` or ``dead`` (refused for good); a relay failure raises."""
    try:
        try:
            mime = build_message(
                message.payload,
                sender=config.sender,
                message_id=message_id(message.id, config.sender),
            )
        except Exception as exc:  # no retry mends it; the relay is not at fault
            raise PermanentFailure(f"unusable payload: {exc!r}") from exc
        await smtp.send(mime)
    except PermanentFailure as exc:
        await failed(pool, message, now=now, error=str(exc), permanent=True)
        return "dead"
    async with connection(pool) as conn:
        await outbox_db.mark_sent(conn, message.id, now=now)
    return "sent"


async def failed(
    pool: Pool,
    message: outbox_db.Claimed,
    *,
    now: datetime,
    error: str,
    permanent: bool,
    status_code: int | None = None,
) -> bool:
    """Reschedule a failed message (backoff with jitter), or give it up after the retry
    window or a permanent failure; True when it is now dead."""
    next_attempt = now + backoff(message.attempts)
    dead = permanent or next_attempt > message.created_at + RETRY_WINDOW
    async with connection(pool) as conn:
        await outbox_db.mark_failed(
            conn,
            message.id,
            dead=dead,
            next_attempt_at=next_attempt,
            error=error,
            status_code=status_code,
        )
    if dead:
        log.error("outbox message %d is dead after %d attempt(s)", message.id, message.attempts)
    return dead


async def refresh_metrics(
    pool: Pool, *, now: datetime, channel: outbox_db.Channel = "email"
) -> outbox_db.Stats:
    """Queue depth and the oldest pending message's age, for /metrics; sent rows pruned."""
    async with connection(pool) as conn:
        stats = await outbox_db.stats(conn, channel)
        await outbox_db.purge_sent(conn, before=now - KEEP_SENT, batch=1000)
    MESSAGES.labels(channel, "pending").set(stats.pending)
    MESSAGES.labels(channel, "dead").set(stats.dead)
    age = (now - stats.oldest_pending).total_seconds() if stats.oldest_pending else 0.0
    OLDEST_PENDING.labels(channel).set(max(age, 0.0))
    return stats


async def tick(pool: Pool, config: SmtpConfig, *, now: datetime) -> DeliveryResult:
    """One run of the job; failures are logged and the next tick tries again."""
    started = time.perf_counter()
    try:
        result = await deliver_email(pool, config, now=now)
        await refresh_metrics(pool, now=now)
    except Exception:
        log.exception("outbox delivery failed; retrying at the next tick")
        return DeliveryResult()
    if result.sent or result.dead:
        log.info(
            "outbox: %d e-mail(s) sent, %d retried later, %d dead in %.2f s",
            result.sent,
            result.retried,
            result.dead,
            time.perf_counter() - started,
        )
    return result
